"""What trains the learned response curve in stage 2, and for how long.

`loss.curve_from`: with "all" every term reaches the curve through the network's input;
with "reexposure" only the re-exposure comparison does, so the EMA teacher and the
sub-window terms hold the network and leave the curve where it is.
`optim.calibration_steps`: the curve learns over that many steps, then stays.
"""
import functools

import jax
import numpy as np
import optax
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
  """One stage-2 step with the given `loss.*` settings → how far the curve's logits moved."""
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


def test_the_curve_stops_learning_after_its_steps_and_the_network_goes_on():
  config = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  config.total_steps = 20
  config.optim.warmup_steps = 2

  def run(calibration_steps):
    """20 steps of constant gradients → per-step moves of (curve, network) [20] each."""
    config.optim.calibration_steps = calibration_steps
    params = {train_state.CALIBRATION: np.zeros(4, np.float32),
              "encoder": {"kernel": np.zeros(3, np.float32)}}
    tx = train_state.make_optimizer(config)
    opt_state = tx.init(params)
    grads = jax.tree.map(np.ones_like, params)
    curve, network = [0.0], [0.0]
    for _ in range(config.total_steps):
      updates, opt_state = tx.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      curve.append(float(params[train_state.CALIBRATION][0]))
      network.append(float(params["encoder"]["kernel"][0]))
    return np.abs(np.diff(curve)), np.abs(np.diff(network))

  curve, network = run(8)
  # Step 0 is the warm-up's zero; then the curve learns for steps 1-7 and stops.
  assert np.all(curve[1:8] > 0) and np.all(curve[8:] == 0), curve
  assert np.all(network[1:] > 0), network
  # Without a limit it learns for the whole run.
  curve, _ = run(0)
  assert np.all(curve[1:] > 0), curve
  config.optim.calibration_steps = -1
  with pytest.raises(ValueError, match="steps"):
    train_state.make_optimizer(config)
