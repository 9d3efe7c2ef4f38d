"""tools/measure_adapt.py: stage 2's held-out criterion per clip, as adapt computes it."""
import pathlib
import sys

import numpy as np
import pytest

from data_pipeline import clips as clips_lib
from data_pipeline import synth
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import train
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import measure_adapt  # noqa: E402  pylint: disable=wrong-import-position


def test_criterion_per_clip_is_the_mean_over_the_clip_s_own_windows(tmp_path):
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = model_files.init_params(model, seed=3)
  model_files.save_params(tmp_path / "model", params, config)
  (clip,) = synth.write_clips(tmp_path / "clips", num_clips=1, num_frames=5, size=(48, 64),
                              seed=2)
  stage2 = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  (value,) = measure_adapt.criterion_per_clip(str(tmp_path / "model"), [clip], stage2)
  opened = clips_lib.open_clip(clip)
  per_window = []
  for t in (1, 2, 3):  # every window whose frames are all the clip's own (radius 1)
    frames, stops = opened.window(t, model.radius)
    per_window.append(float(train.criterion_step(
        params, {"frames": frames[None], "stops": stops[None]}, model=model, config=stage2,
        ratio=float(config.attn_ratio))[0]))
  assert value == pytest.approx(np.mean(per_window), rel=1e-5)
  # The run's loss weights are the criterion's: a left-out term adds its share.
  stage2.loss.reexpose_left_out_weight = 1.0
  (with_left_out,) = measure_adapt.criterion_per_clip(str(tmp_path / "model"), [clip], stage2)
  assert with_left_out > value > 0
