"""Which stage-2 terms train the learned response curve (`loss.curve_from`).

With "all" every term reaches the curve through the network's input; with "reexposure"
only the re-exposure comparison does, so the EMA teacher and the sub-window terms hold the
network and leave the curve where it is.
"""
import functools

import jax
import numpy as np
import pytest

from dealthdr_jax import config_loading
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import toy_data
from dealthdr_jax.training import train
from dealthdr_jax.training import train_state


@pytest.fixture(scope="module")
def setup():
  config = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  model = DeAltHDR.from_config(config.model)
  samples = [toy_data.sample(5, i, frames=model.window, crop=32) for i in range(2)]
  batch = {k: np.stack([s[k] for s in samples]) for k in ("frames", "stops")}
  params = train._random_init(model, config.seed)
  # A teacher that differs from the student, as after some steps of adaptation: the EMA
  # network is the student's with every weight perturbed; both start from a bent curve.
  rng = np.random.default_rng(0)
  params = dict(params)
  params[train_state.CALIBRATION] = np.asarray(
      rng.normal(0.0, 0.3, params[train_state.CALIBRATION].shape), np.float32)
  ema = jax.tree.map(lambda p: p + 0.05 * rng.normal(size=p.shape).astype(p.dtype)
                     * (np.std(p) + 1e-3), params)
  ema[train_state.CALIBRATION] = params[train_state.CALIBRATION]
  return config, model, batch, params, ema


def _curve_step(setup, **loss):
  """One stage-2 step with the given `loss.*` settings → (largest move of the curve's
  logits, largest move of any network weight)."""
  config, model, batch, params, ema = setup
  config = config.copy_and_resolve_references()
  for k, v in loss.items():
    config.loss[k] = v
  config.optim.warmup_steps = 0
  tx = train_state.make_optimizer(config)
  state = train_state.create(params, tx).replace(ema_params=ema)
  step = jax.jit(functools.partial(train.stage2_step, model=model, tx=tx, config=config,
                                   ratio=0.0))
  new_state, m = step(state, batch)
  assert np.isfinite(float(m.compute()["loss"]))
  moved = np.abs(np.asarray(new_state.params[train_state.CALIBRATION])
                 - params[train_state.CALIBRATION]).max()
  network_moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                      for name in params if name != train_state.CALIBRATION
                      for a, b in zip(jax.tree.leaves(new_state.params[name]),
                                      jax.tree.leaves(params[name])))
  return float(moved), network_moved


def test_only_the_reexposure_terms_train_the_curve_when_asked(setup):
  no_reexposure = dict(reexpose_weight=0.0, reexpose_left_out_weight=0.0,
                       curve_smoothness=0.0, curve_prior=0.0)
  # Teacher and sub-window terms alone: they bend the curve under "all" …
  moved_all, _ = _curve_step(setup, curve_from="all", **no_reexposure)
  assert moved_all > 1e-4
  # … and under "reexposure" they still train the network but leave the curve untouched.
  moved, network_moved = _curve_step(setup, curve_from="reexposure", **no_reexposure)
  assert moved == 0.0 and network_moved > 1e-6
  # The re-exposure term still trains it.
  moved_reexposure, _ = _curve_step(setup, curve_from="reexposure", reexpose_weight=0.5,
                                    curve_smoothness=0.0, curve_prior=0.0)
  assert moved_reexposure > 1e-4


def test_an_unknown_curve_source_is_refused(setup):
  with pytest.raises(ValueError, match="curve_from"):
    _curve_step(setup, curve_from="teacher")
  config = setup[0].copy_and_resolve_references()
  config.loss.curve_from = "teacher"
  with pytest.raises(ValueError, match="loss.curve_from must be 'all' or 'reexposure'"):
    train.check_config(config)
