"""A NaN loss stops training at the next log step with a message naming the step and the
last good checkpoint (which is never overwritten by a diverged state)."""
import pytest

from dealthdr_jax import config_loading
from dealthdr_jax.training import train


def test_nan_stops_with_last_good_checkpoint(tmp_path):
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config_loading.apply_overrides(config, [
      "total_steps=4", "log_every=1", "checkpoint_every=1", "eval_every=100",
      "image_every=100", "train_ratios=(0.0,)", "optim.warmup_steps=0"])
  config.optim.lr = 1e30  # Step 1 is computed from finite params; step 2 overflows.
  with pytest.raises(train.TrainingDiverged) as info:
    train.train_and_evaluate(config, tmp_path)
  message = str(info.value)
  assert "step 2" in message and str(tmp_path / "checkpoints" / "1") in message
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["1"]
