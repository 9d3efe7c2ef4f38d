"""`tools/gain_bound_sweep.py`: bad arguments stop it before any loading or compiling, with
the argument named (the sweep itself runs the model, as `tests/models/test_model.py`'s
gain-bound test does; the README gives its measured output)."""
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import gain_bound_sweep  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("args, message", [
    (["--bounds", "2,0"], "--bounds must be numbers > 0"),
    (["--bounds", "2,x"], "is not a comma-separated list of numbers"),
    (["--bounds", ""], "--bounds must be numbers > 0"),
])
def test_bad_bounds_are_named(tmp_path, capsys, args, message):
  with pytest.raises(SystemExit) as exit_info:
    gain_bound_sweep.main(["--sources", str(tmp_path)] + args)
  assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_source_folder_is_named(tmp_path, capsys):
  with pytest.raises(SystemExit):
    gain_bound_sweep.main(["--sources", str(tmp_path / "nowhere")])
  assert "nowhere' is not a folder" in capsys.readouterr().err


def test_a_model_of_the_other_pattern_is_refused(tmp_path, capsys):
  with pytest.raises(SystemExit):
    gain_bound_sweep.main(["--sources", str(tmp_path), "--pattern", "3exp", "--checkpoint",
                           str(REPO / "dealthdr_jax/assets/models/dealthdr_2exp")])
  assert "is a 2exp model; pass --pattern 2exp" in capsys.readouterr().err
