"""The stage-1 step learns: its loss falls when it overfits one fixed tiny batch."""
import functools

import jax
import numpy as np

from dealthdr_jax import config_loading
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import toy_data
from dealthdr_jax.training import train
from dealthdr_jax.training import train_state

STEPS = 50


def test_stage1_overfits_fixed_batch():
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config_loading.apply_overrides(config, ["total_steps=50", "optim.lr=0.003",
                                        "optim.warmup_steps=3", "optim.end_lr=0.0003"])
  model = DeAltHDR.from_config(config.model)
  samples = [toy_data.sample(7, i, frames=model.window, crop=32) for i in range(2)]
  batch = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
  tx = train_state.make_optimizer(config)
  state = jax.jit(lambda: train_state.create(train._random_init(model, config.seed), tx))()
  step = jax.jit(functools.partial(train.stage1_step, model=model, tx=tx, config=config,
                                   ratio=0.0), donate_argnums=(0,))
  losses = []
  for _ in range(STEPS):
    state, m = step(state, batch)
    losses.append(float(m.compute()["loss"]))
  print(f"overfit: first loss {losses[0]:.5f}, last loss {losses[-1]:.5f}")
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.6 * losses[0], losses
