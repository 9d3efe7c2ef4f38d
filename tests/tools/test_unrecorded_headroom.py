"""`tools/unrecorded_headroom.py`: bad arguments stop it before any loading, with the
argument named; its window scoring and summary on a stand-in predictor (the tool runs the
model as `tools/gain_bound_sweep.py` does; the README gives its measured output)."""
import pathlib
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import unrecorded_headroom  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("args, message", [
    (["--max-log-gain", "0"], "--max-log-gain must be > 0"),
    (["--ratio", "1.5"], "--ratio must be in [0, 1]"),
    (["--windows", "0"], "--windows must be >= 1"),
    (["--recon-kernel-range", "-1"], "--recon-kernel-range must be >= 0"),
    (["--flow-fill-consistency", "-1"], "--flow-fill-consistency must be >= 0"),
    (["--sets", "gentle,night"], "unknown ones ['night']"),
    (["--sets", ","], "names no set"),
])
def test_bad_arguments_are_named(tmp_path, capsys, args, message):
  with pytest.raises(SystemExit) as exit_info:
    unrecorded_headroom.main(["--sources", str(tmp_path)] + args)
  assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_missing_source_folder_is_named(tmp_path, capsys):
  with pytest.raises(SystemExit):
    unrecorded_headroom.main(["--sources", str(tmp_path / "nowhere")])
  assert "nowhere' is not a folder" in capsys.readouterr().err


def test_windows_are_scored_at_their_reference():
  """Two windows (short, long, short): the reference (middle) frame's unrecorded pixels are
  those clipped in both short frames; a predictor 4x too dark there is undone by the best
  factor, and the summary averages the windows."""
  frames = np.full((2, 3, 4, 6, 3), 0.3, np.float32)
  frames[:, 0, :2] = frames[:, 2, :2] = 1.0  # Top two rows clipped in both short frames.
  frames[1, 2, :2] = 0.5                      # ... except in window 1's second one.
  gt = np.full((2, 4, 6, 3), 0.2, np.float32)
  gt[:, :2] = 50.0
  batch = {"frames": frames, "stops": np.array([[0.0, 2.0, 0.0]] * 2, np.float32), "hdr": gt}
  dark = lambda b: np.where(b["hdr"] > 1, b["hdr"] / 4, b["hdr"])
  rows = unrecorded_headroom.score_windows(dark, [batch])
  assert [r["unrecorded_fraction"] for r in rows] == [0.5, 0.0]
  assert rows[0]["best_scale"] == pytest.approx(4.0) and rows[1]["best_scale"] == 1.0
  assert rows[0]["psnr_t_best_scale"] == rows[0]["psnr_t_gt_filled"] == 100.0
  assert rows[1]["psnr_t"] < 60 and rows[1]["psnr_t_rec"] == rows[1]["psnr_t"]
  mean = unrecorded_headroom.summary(rows)
  assert mean["psnr_t"] == pytest.approx((rows[0]["psnr_t"] + rows[1]["psnr_t"]) / 2)
  assert mean["psnr_t_rec"] == pytest.approx(100.0 / 2 + rows[1]["psnr_t_rec"] / 2)
  assert mean["median_best_scale"] == pytest.approx(2.5)
