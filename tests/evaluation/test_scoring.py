"""The scoring harness's prediction cache: kept across resumes, redone for another method
or another model (the results table must never score stale predictions)."""
import json
import pathlib
import shutil

import numpy as np

from data_pipeline import hdr_io
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import perceptual
from dealthdr_jax.evaluation import scoring
from dealthdr_jax.models.dealthdr import DeAltHDR


def test_cached_predictions_are_redone_for_another_method_or_model(static_clip, tmp_path):
  clip, radiance = static_clip
  for i in range(5):
    hdr_io.write_exr(clip / "gt" / f"frame_{i:03d}.exr", radiance)
  pred = tmp_path / "pred"

  def runs():
    return {p.parent.name: p.stat().st_mtime_ns for p in pred.glob("*/run.json")}

  ref = scoring.score(pred, [clip], method="reference_only")
  first = runs()
  assert list(first) == ["clip"] and ref["psnr_t"] > 20
  # The JOD column appears exactly when the perceptual extra is installed.
  assert ("jod" in ref) == perceptual.available()
  if "jod" in ref:
    assert 0 < ref["jod"] <= 10
  assert scoring.score(pred, [clip], method="reference_only") == ref
  assert runs() == first  # Same method: the cached prediction is scored again.
  # Another clip of the same name (another test set's clip_0000): predicted from itself.
  other = tmp_path / "other" / clip.name
  shutil.copytree(clip, other)
  scoring.score(pred, [other], method="reference_only")
  assert runs() != first
  made_from = lambda: json.loads((pred / clip.name / "run.json").read_text())["input"]
  assert pathlib.Path(made_from()).resolve() == other.resolve()
  again = runs()
  scoring.score(pred, [other], method="reference_only")
  assert runs() == again  # ... and cached for it.
  assert scoring.score(pred, [clip], method="reference_only") == ref
  assert pathlib.Path(made_from()).resolve() == clip.resolve()
  dis = scoring.score(pred, [clip], method="dis_flow")
  assert runs() != first  # Another method in the same folder: run again.

  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = model_files.init_params(model, seed=0)
  model_files.save_params(tmp_path / "model", params, config)
  kwargs = dict(method="dealthdr", checkpoint=str(tmp_path / "model"), attn_ratio=0.0)
  before = scoring.score(pred, [clip], **kwargs)
  cached = runs()
  assert scoring.score(pred, [clip], **kwargs) == before and runs() == cached
  # The same folder path now holds another model: its predictions are not reused.
  fingerprint = model_files.fingerprint(tmp_path / "model")
  model_files.save_params(tmp_path / "model", model_files.init_params(model, seed=1), config)
  assert model_files.fingerprint(tmp_path / "model") != fingerprint
  scoring.score(pred, [clip], **kwargs)
  assert runs() != cached
  assert np.isfinite(dis["psnr_t"])
