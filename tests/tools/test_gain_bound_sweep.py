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


def test_the_camera_set_is_the_large_motion_set_through_camera_pipelines():
  """`--sets cameras`: the same windows' config as the large-motion set (crop, count,
  sources, motion) but every window written by a camera pipeline, against half."""
  parser = gain_bound_sweep.argparse.ArgumentParser()
  names = gain_bound_sweep.parse_sets(parser, "cameras,large,cameras")
  assert names == ("cameras", "large motion")
  configs = gain_bound_sweep.validation_configs("2exp", "/sources", 8, 128, names)
  cameras, large = configs["cameras"], configs["large motion"]
  assert cameras.data.camera_pipeline_fraction == 1.0
  assert large.data.camera_pipeline_fraction == 0.5
  for key in ("crop", "val_size", "source_dir", "simulator", "seed"):
    assert cameras.data.get(key) == large.data.get(key), key
  assert (cameras.data.crop, cameras.data.val_size, cameras.data.source_dir) == (128, 8, "/sources")
  with pytest.raises(ValueError, match="unknown validation set"):
    gain_bound_sweep.validation_configs("2exp", "/sources", 8, 128, ("night",))
