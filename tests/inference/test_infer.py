"""`dealthdr infer` end to end on a small generated clip, and its bad-input handling."""
import json

import av
import numpy as np
import pytest

from data_pipeline import hdr_io
from dealthdr_jax import cli
from dealthdr_jax.inference import infer


def test_infer_writes_every_frame(static_clip, tmp_path):
  clip, _ = static_clip
  out = tmp_path / "out"
  rc = cli.main(["infer", "--input", str(clip), "--output", str(out),
                 "--config", "dealthdr_2exp:size=tiny", "--attn-ratio", "0.5",
                 "--self-ensemble", "2", "--flow-pair", "select"])
  assert rc == 0
  names = sorted(p.name for p in (out / "hdr").iterdir())
  assert names == [f"frame_{i:03d}.exr" for i in range(5)]
  for name in names:
    hdr = hdr_io.read_hdr(out / "hdr" / name)
    assert hdr.shape == (36, 52, 3) and np.all(np.isfinite(hdr)) and hdr.min() >= 0
  run = json.loads((out / "run.json").read_text())
  assert run["frames"] == 5 and run["programs_compiled"] == 1 and run["size"] == [36, 52]
  # The mirrored copy has the frame's shape: it reuses the one program.
  assert run["self_ensemble"] == 2 and "self-ensemble of 2" in run["model"]
  assert "flow_pair select" in run["model"]
  with av.open(str(out / "preview.mp4")) as video:
    assert sum(1 for _ in video.decode(video=0)) == 5
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


@pytest.mark.parametrize("method", ["reference_only", "dis_flow"])
def test_baselines_reproduce_radiance_units(static_clip, tmp_path, method):
  """On a static, well-exposed scene every method must return linearise(LDR)/e (§3)."""
  clip, radiance = static_clip
  infer.run_inference(str(clip), str(tmp_path / method), method=method, preview=False,
                      progress=False)
  for i in range(5):
    hdr = hdr_io.read_hdr(tmp_path / method / "hdr" / f"frame_{i:03d}.exr")
    np.testing.assert_allclose(hdr, radiance, rtol=0.03)


def test_bad_clips_leave_nothing(static_clip, tmp_path):
  clip, _ = static_clip
  out = tmp_path / "out"
  (clip / "exposures.txt").write_text("0\n3\n0\n")
  with pytest.raises(ValueError, match="exposures.txt"):
    infer.run_inference(str(clip), str(out), config="dealthdr_2exp:size=tiny")
  (clip / "exposures.txt").unlink()
  with pytest.raises(ValueError, match="exposures"):
    infer.run_inference(str(clip), str(out), config="dealthdr_2exp:size=tiny")
  assert not out.exists()
  assert [p.name for p in tmp_path.iterdir()] == ["clip"]


def test_existing_output_and_unknown_checkpoint(static_clip, tmp_path):
  clip, _ = static_clip
  out = tmp_path / "out"
  out.mkdir()
  (out / "mine.txt").write_text("keep")
  with pytest.raises(FileExistsError, match="not empty"):
    infer.run_inference(str(clip), str(out), config="dealthdr_2exp:size=tiny")
  assert (out / "mine.txt").read_text() == "keep"
  with pytest.raises(FileNotFoundError, match="neither a params-only checkpoint nor a training"):
    infer.run_inference(str(clip), str(tmp_path / "o2"), checkpoint=str(tmp_path / "nope"))
  assert not (tmp_path / "o2").exists()
  with pytest.raises(ValueError, match="video"):
    infer.run_inference(str(clip / "frame_000.png"), str(tmp_path / "o3"))
  with pytest.raises(ValueError, match="self-ensemble must be one of"):
    infer.run_inference(str(clip), str(tmp_path / "o4"), config="dealthdr_2exp:size=tiny",
                        self_ensemble=3)
  with pytest.raises(ValueError, match="model only, not to the dis_flow baseline"):
    infer.run_inference(str(clip), str(tmp_path / "o5"), method="dis_flow", self_ensemble=2)
  with pytest.raises(ValueError, match="--flow-pair must be one of"):
    infer.run_inference(str(clip), str(tmp_path / "o6"), config="dealthdr_2exp:size=tiny",
                        flow_pair="on")
  with pytest.raises(ValueError, match="model only, not to the dis_flow baseline"):
    infer.run_inference(str(clip), str(tmp_path / "o7"), method="dis_flow", flow_pair="all")
  for name in ("o4", "o5", "o6", "o7"):
    assert not (tmp_path / name).exists()
