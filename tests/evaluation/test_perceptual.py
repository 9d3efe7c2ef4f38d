"""ColorVideoVDP through `dealthdr eval --perceptual` (the optional `perceptual` extra).

Without the extra these tests skip, except where DEALTHDR_REQUIRE_PERCEPTUAL=1 (CI installs
the extra and sets it): then its absence fails them.
"""
import json
import os

import numpy as np
import pytest

from data_pipeline import hdr_io
from data_pipeline import sources
from dealthdr_jax import cli
from dealthdr_jax.evaluation import perceptual


@pytest.fixture
def need_extra():
  if not perceptual.available():
    if os.environ.get("DEALTHDR_REQUIRE_PERCEPTUAL") == "1":
      pytest.fail("the perceptual extra (cvvdp) is required here but not installed")
    pytest.skip(perceptual.INSTALL_HINT)


def _clip(folder, frames):
  folder.mkdir(parents=True)
  for i, frame in enumerate(frames):
    hdr_io.write_exr(folder / f"frame_{i:03d}.exr", frame)
  return folder


@pytest.fixture
def clips(tmp_path):
  """GT (a panning procedural HDR scene, 4 frames 64×96), and predictions with growing
  noise."""
  scene = sources.procedural_scene(np.random.default_rng(1), 64, 96 + 12)
  gt = [scene[:, 3 * i:3 * i + 96] for i in range(4)]
  rng = np.random.default_rng(2)
  noisy = {s: [np.maximum(f * (1 + s * rng.standard_normal(f.shape)), 0).astype(np.float32)
               for f in gt] for s in (0.05, 0.3)}
  return (_clip(tmp_path / "gt", gt), _clip(tmp_path / "same", gt),
          _clip(tmp_path / "noisy", noisy[0.05]), _clip(tmp_path / "noisier", noisy[0.3]))


def test_jod_falls_with_visible_error(need_extra, clips, tmp_path):
  gt, same, noisy, noisier = clips
  out = tmp_path / "eval.json"
  assert cli.main(["eval", "--pred", str(noisy), "--gt", str(gt), "--perceptual",
                   "--json", str(out)]) == 0
  result = json.loads(out.read_text())
  p = result["perceptual"]
  assert p["display"]["name"] == "standard_hdr_linear" and p["display"]["peak_nits"] == 1500
  assert p["frames"] == 4 and p["fps"] == 25
  # The stated scaling: GT diffuse white (median / 0.18) at 203 cd/m².
  assert p["scaling"]["nits_per_unit"] == pytest.approx(
      203 * 0.18 / p["scaling"]["gt_median_luminance"])
  assert result["mean"]["jod"] == p["jod"]
  def frames(folder):
    return sorted(folder.glob("*.exr"))
  identical = perceptual.color_video_vdp(frames(same), frames(gt))["jod"]
  noisier_jod = perceptual.color_video_vdp(frames(noisier), frames(gt))["jod"]
  assert identical == pytest.approx(10.0, abs=1e-3)
  assert identical > p["jod"] > noisier_jod


def test_mismatched_clips_are_refused(need_extra, clips):
  gt, same, _, _ = clips
  with pytest.raises(ValueError, match="3 predicted frames for 4 GT frames"):
    perceptual.color_video_vdp(sorted(same.glob("*.exr"))[:3], sorted(gt.glob("*.exr")))


def test_without_the_extra_eval_says_how_to_install(clips, monkeypatch, capsys):
  gt, same, _, _ = clips
  monkeypatch.setattr(perceptual, "available", lambda: False)
  assert cli.main(["eval", "--pred", str(same), "--gt", str(gt), "--perceptual"]) == 2
  assert "pip install -e '.[perceptual]'" in capsys.readouterr().err
  with pytest.raises(RuntimeError, match="optional extra"):
    perceptual.color_video_vdp(sorted(same.glob("*.exr")), sorted(gt.glob("*.exr")))
