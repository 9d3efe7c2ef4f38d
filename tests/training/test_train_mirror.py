"""The stage-1 mirror-consistency and self-ensemble distillation terms (`loss.mirror_weight`,
`loss.distill_weight`) against a reference built from separate model calls: the mirrored
copy, its HDR loss, the consistency between copies, the frozen teacher's mean of four
mirrored copies and the distance from it."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from dealthdr_jax import config_loading
from dealthdr_jax.models import response as resp
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import losses
from dealthdr_jax.training import toy_data
from dealthdr_jax.training import train
from dealthdr_jax.training import train_state


def test_mirroring_takes_the_three_mirrorings_in_turn_and_each_undoes_itself():
  x = np.arange(2 * 3 * 4 * 5 * 3, dtype=np.float32).reshape(2, 3, 4, 5, 3)
  turns = [tuple(bool(f) for f in train.mirroring(jnp.asarray(s))) for s in range(6)]
  assert turns[:3] == [(True, False), (False, True), (True, True)]
  assert turns[3:] == turns[:3]
  expected = {(True, False): x[..., :, ::-1, :], (False, True): x[..., ::-1, :, :],
              (True, True): x[..., ::-1, ::-1, :]}
  for flips, want in expected.items():
    once = np.asarray(train.mirrored(jnp.asarray(x), *map(jnp.asarray, flips)))
    np.testing.assert_array_equal(once, want)
    twice = train.mirrored(jnp.asarray(once), *map(jnp.asarray, flips))
    np.testing.assert_array_equal(np.asarray(twice), x)


def test_prediction_difference_is_the_mu_law_l1_between_the_copies():
  rng = np.random.default_rng(0)
  target = rng.uniform(0.0, 4.0, (2, 6, 7, 3)).astype(np.float32)
  pred = target * rng.uniform(0.5, 1.5, target.shape).astype(np.float32)
  assert float(losses.prediction_difference(pred, pred, target)) == 0.0
  other = pred * 1.2
  peak = target.max(axis=(1, 2, 3), keepdims=True)
  want = np.mean(np.abs(np.asarray(resp.mu_law(jnp.asarray(pred / peak), losses.MU))
                        - np.asarray(resp.mu_law(jnp.asarray(other / peak), losses.MU))))
  np.testing.assert_allclose(float(losses.prediction_difference(pred, other, target)),
                             want, rtol=1e-5)
  # Symmetric, and scale-free as the HDR loss is.
  np.testing.assert_allclose(float(losses.prediction_difference(other, pred, target)),
                             want, rtol=1e-5)
  np.testing.assert_allclose(
      float(losses.prediction_difference(8 * pred, 8 * other, 8 * target)), want, rtol=1e-5)
  # Weighted: the mean over the weighted pixels only (the copies differ elsewhere too).
  region = np.zeros((2, 6, 7, 1), np.float32)
  region[0, 2:4, 1:5] = 1.0
  region[1, 5, 6] = 1.0
  differ = np.abs(np.asarray(resp.mu_law(jnp.asarray(pred / peak), losses.MU))
                  - np.asarray(resp.mu_law(jnp.asarray(other / peak), losses.MU)))
  want = differ[np.broadcast_to(region, differ.shape) > 0].mean()
  np.testing.assert_allclose(
      float(losses.prediction_difference(pred, other, target, weights=region)), want,
      rtol=1e-5)
  assert float(losses.prediction_difference(pred, other, target,
                                              weights=np.zeros_like(region))) == 0.0


def _distill_setup(overrides: list[str], seed: int):
  """A tiny 2exp config with a frozen teacher, two toy windows and perturbed weights (so
  that the output depends on the window's orientation and on the attention ratio):
  (config, model, batch, params, tx, state)."""
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config_loading.apply_overrides(config, overrides + ["optim.ema_decay=1.0",
                                                      "export_params='params'",
                                                      "optim.warmup_steps=1"])
  train.check_config(config)
  model = DeAltHDR.from_config(config.model)
  samples = [toy_data.sample(2 * seed + 1, i, frames=model.window, crop=32) for i in range(2)]
  batch = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
  params = jax.tree_util.tree_map(
      lambda x: x + 0.05 * jax.random.normal(jax.random.PRNGKey(seed), x.shape, x.dtype),
      train._random_init(model, config.seed))
  tx = train_state.make_optimizer(config)
  return config, model, batch, params, tx, train_state.create(params, tx)


def test_stage1_step_with_mirror_and_distill_terms_matches_separate_passes():
  weight, distill_weight = 0.7, 0.4
  config, model, batch, params, tx, state = _distill_setup(
      [f"loss.mirror_weight={weight}", f"loss.distill_weight={distill_weight}",
       "loss.distill_copies=4"], seed=1)
  flips = tuple(bool(f) for f in train.mirroring(state.step))

  apply = jax.jit(lambda p, frames: model.apply({"params": p}, frames, batch["stops"],
                                                ratio=0.0)[0])
  hdr = apply(params, batch["frames"])
  hdr_m = train.mirrored(apply(params, train.mirrored(batch["frames"], *flips)), *flips)
  hdr_loss = 0.5 * (losses.hdr_loss(hdr, batch["hdr"]) + losses.hdr_loss(hdr_m, batch["hdr"]))
  consistency = float(losses.prediction_difference(hdr, hdr_m, batch["hdr"]))
  assert consistency > 1e-4, "the copies must differ for the test to mean anything"
  # The teacher (the EMA, here the starting weights): the mean of the four mirrorings.
  copies = [train.mirrored(apply(params, train.mirrored(batch["frames"], lr, ud)), lr, ud)
            for lr, ud in ((False, False), (True, False), (False, True), (True, True))]
  teacher = sum(copies) / 4
  distill = float(losses.prediction_difference(hdr, teacher, batch["hdr"]))
  assert distill > 1e-4

  step = jax.jit(functools.partial(train.stage1_step, model=model, tx=tx, config=config,
                                   ratio=0.0))
  new_state, metrics = step(state, batch)
  got = metrics.compute()
  np.testing.assert_allclose(got["mirror_consistency"], consistency, rtol=1e-4)
  np.testing.assert_allclose(got["distill"], distill, rtol=1e-4)
  np.testing.assert_allclose(got["hdr_loss"], float(hdr_loss), rtol=1e-4)
  np.testing.assert_allclose(
      got["loss"], got["hdr_loss"] + got["flow_weight"] * got["flow_epe"]
      + weight * got["mirror_consistency"] + distill_weight * got["distill"], rtol=1e-4)
  # The teacher stays the starting model while the student moves (the first step's
  # learning rate is 0: warm-up).
  new_state, _ = step(new_state, batch)
  jax.tree.map(np.testing.assert_array_equal, new_state.ema_params, params)
  assert any(np.abs(np.asarray(a) - np.asarray(b)).max() > 0
             for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(params)))


def test_distill_ratio_runs_the_teacher_at_its_own_ratio_whatever_the_step_s():
  config, model, batch, params, tx, state = _distill_setup(
      ["loss.distill_weight=1.0", "loss.distill_copies=1", "loss.distill_ratio=1.0"], seed=2)
  assert train.teacher_ratio(config, 0.0) == 1.0

  def apply(ratio):
    return model.apply({"params": params}, batch["frames"], batch["stops"], ratio=ratio)[0]
  # The student starts as the teacher: at the step's ratio the distance would be 0.
  student, teacher_full = apply(0.0), apply(1.0)
  want = float(losses.prediction_difference(student, teacher_full, batch["hdr"]))
  assert want > 1e-4, "attention must change the output for the test to mean anything"
  step = jax.jit(functools.partial(train.stage1_step, model=model, tx=tx, config=config,
                                   ratio=0.0))
  _, metrics = step(state, batch)
  np.testing.assert_allclose(metrics.compute()["distill"], want, rtol=1e-4)
  # The default (< 0) is the step's own ratio.
  config.loss.distill_ratio = -1.0
  assert train.teacher_ratio(config, 0.25) == 0.25


def test_distill_region_unrecorded_follows_the_teacher_only_where_no_exposure_recorded():
  config, model, batch, params, tx, state = _distill_setup(
      ["loss.distill_weight=1.0", "loss.distill_copies=1", "loss.distill_ratio=1.0",
       "loss.distill_region='unrecorded'"], seed=3)
  # Clip every frame in the top-left corner of the first window: there no exposure records
  # the scene (the toy windows record most of the rest; checked below).
  batch["frames"] = batch["frames"].copy()
  batch["frames"][0, :, :8, :12] = 1.0
  region = np.asarray(losses.unrecorded_mask(batch["frames"], batch["stops"]))
  assert 0 < region.sum() < region.size, "the window needs both kinds of pixel"

  def apply(ratio):
    return model.apply({"params": params}, batch["frames"], batch["stops"], ratio=ratio)[0]
  student, teacher = np.asarray(apply(0.0)), np.asarray(apply(1.0))
  peak = np.asarray(batch["hdr"]).max(axis=(1, 2, 3), keepdims=True)
  differ = np.abs(np.asarray(resp.mu_law(jnp.asarray(student / peak), losses.MU))
                  - np.asarray(resp.mu_law(jnp.asarray(teacher / peak), losses.MU)))
  inside = float((differ * region).sum() / differ.size)
  outside = float((differ * (1 - region)).sum() / differ.size)
  assert inside > 1e-6 and outside > 1e-6, "teacher and student must differ in both places"
  step = jax.jit(functools.partial(train.stage1_step, model=model, tx=tx, config=config,
                                   ratio=0.0))
  _, metrics = step(state, batch)
  # Each unrecorded pixel weighs as it would over all pixels; the recorded ones not at all.
  np.testing.assert_allclose(metrics.compute()["distill"], inside, rtol=1e-4)
