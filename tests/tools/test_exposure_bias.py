"""tools/exposure_bias.py: per-level ratio of the light a frame reports to its GT."""
import pathlib
import sys

import numpy as np
import pytest

from data_pipeline import hdr_io
from data_pipeline import response as resp
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import exposure_bias  # noqa: E402  pylint: disable=wrong-import-position

STOPS = [0.0, 2.0, 0.0]


def _scene(rng):
  """[128, 128, 3] grey radiance spread log-uniformly over 9 stops."""
  grey = np.exp(rng.uniform(np.log(2e-3), 0.0, (128, 128, 1)))
  return np.repeat(grey, 3, -1).astype(np.float32)


def test_noise_free_frames_report_the_gt_light_at_every_level():
  # Coloured light: red reaches white at a quarter of the exposure blue does, so many
  # pixels have one channel clipped while their level is still below white.
  gt = _scene(np.random.default_rng(0)) * np.float32([1.0, 0.5, 0.25])
  frames = [np.asarray(resp.apply_response(np.clip(gt * 2.0 ** s, 0, 1), "gamma2.2"))
            for s in STOPS]
  for by in ("ideal", "observed"):
    table = exposure_bias.level_ratios(frames, STOPS, [gt] * 3, "gamma2.2", by=by)
    for kind in ("short", "long"):
      values = [v for v in table[kind] if v is not None]
      assert len(values) >= 8, (by, kind, table[kind])
      np.testing.assert_allclose(values, 1.0, atol=1e-4)  # clipped channels left out


def test_noise_biases_the_dark_levels_of_the_channel_mean_up_not_the_midtones():
  rng = np.random.default_rng(1)
  gt = _scene(rng)
  frames = [np.clip(np.asarray(resp.apply_response(np.clip(gt * 2.0 ** s, 0, 1), "gamma2.2"))
                    + rng.normal(0, 0.03, gt.shape), 0, 1).astype(np.float32) for s in STOPS]
  table = exposure_bias.level_ratios(frames, STOPS, [gt] * 3, "gamma2.2")
  level = exposure_bias.LEVELS.index
  # Linearising is convex: in the shadows zero-mean noise reads as extra light.
  assert min(table["short"][level(0.03)], table["short"][level(0.06)]) > 1.1, table
  for kind in ("short", "long"):
    assert table[kind][level(0.12)] > 1.02, (kind, table[kind])
    np.testing.assert_allclose(table[kind][level(0.4):level(0.8)], 1.0, atol=0.015)


def test_bad_inputs_are_named(tmp_path):
  with pytest.raises(ValueError, match="'ideal' or 'observed'"):
    exposure_bias.level_ratios([], [], [], "gamma2.2", by="mean")
  clip = tmp_path / "clip"
  clip.mkdir()
  for i in range(3):
    hdr_io.write_ldr(clip / f"{i:05d}.png", np.full((8, 8, 3), 0.5, np.float32))
  (clip / "exposures.txt").write_text("0\n2\n0\n")
  with pytest.raises(SystemExit, match="no GT"):
    exposure_bias.main([str(clip)])
  (tmp_path / "empty").mkdir()
  with pytest.raises(SystemExit, match="no clip folder"):
    exposure_bias.main([str(tmp_path / "empty")])
