"""Flow pre-training (stage 0): the flow network alone equals the model's, it learns while
nothing else changes, its motion curriculum, and stage 1 taking only its flow."""
import functools

import jax
import numpy as np
import pytest

from data_pipeline import motion as motion_lib
from data_pipeline import pipeline
from data_pipeline import simulator as sim_lib
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models import dealthdr as dealthdr_lib
from dealthdr_jax.models import flow as flow_lib
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import checkpoints
from dealthdr_jax.training import toy_data
from dealthdr_jax.training import train
from dealthdr_jax.training import train_state


def _toy_batch(model, n=2, seed=7):
  samples = [toy_data.sample(seed, i, frames=model.window, crop=32) for i in range(n)]
  return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


def test_flow_network_alone_is_the_models_flow():
  config = config_loading.load_config("flow_pretrain:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = jax.jit(lambda: train._random_init(model, 0))()
  # Give the zero-initialised output convs some weight, so the check is not trivial.
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.01 if "out" in jax.tree_util.keystr(path) else x, params)
  batch = _toy_batch(model)
  _, aux = jax.jit(lambda p, f, s: model.apply({"params": p}, f, s, ratio=0.0))(
      params, batch["frames"], batch["stops"])
  alone = jax.jit(functools.partial(train._flow_pyramid, model))(
      params, batch["frames"], batch["stops"])
  assert len(alone) == len(aux["flow_pyramid"]) == model.flow_levels
  for a, b in zip(alone, aux["flow_pyramid"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert np.abs(np.asarray(alone[-1])).max() > 0


def test_flow_stage_learns_and_changes_only_the_flow():
  config = config_loading.load_config("flow_pretrain:size=tiny")
  config_loading.apply_overrides(config, ["total_steps=40", "optim.lr=0.003",
                                          "optim.warmup_steps=2"])
  model = DeAltHDR.from_config(config.model)
  batch = _toy_batch(model, n=4)
  tx = train_state.make_optimizer(config)
  state = jax.jit(lambda: train_state.create(train._random_init(model, config.seed), tx))()
  before = jax.device_get(state.params)
  step = jax.jit(functools.partial(train.flow_step, model=model, tx=tx, config=config,
                                   ratio=0.0))
  losses, epes = [], []
  for _ in range(40):
    state, m = step(state, batch)
    values = m.compute()
    losses.append(float(values["loss"]))
    epes.append(float(values["epe"]))
  print(f"flow stage: loss {losses[0]:.3f} → {losses[-1]:.3f}, EPE {epes[0]:.2f} → {epes[-1]:.2f}")
  assert np.mean(losses[-5:]) < 0.92 * losses[0], losses
  assert np.mean(epes[-5:]) < epes[0]
  after = jax.device_get(state.params)
  for name in before:
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before[name]),
                                                     jax.tree.leaves(after[name])))
    assert same == (name != train_state.FLOW), name
  metrics, _ = train.flow_eval_step(state.params, batch, model=model, ratio=0.0, mu=1.0)
  assert np.isfinite(float(metrics.compute()["epe"]))


def test_motion_curriculum_scales_ranges_by_sample_index():
  base = sim_lib.SimulatorConfig(size=(32, 32))
  half = motion_lib.scale_motion(base.motion, 0.5)
  assert half.camera_speed == (0.0, 2.0) and half.layer_speed == (0.0, 4.0)
  assert half.camera_rotation == base.motion.camera_rotation / 2
  render = pipeline.RenderSample(base, seed=0, augment=pipeline.NO_AUGMENT,
                                 curriculum=((0, 0.0), (8, 0.5), (16, 1.0)))
  assert render.config_at(7).motion.camera_speed == (0.0, 0.0)
  assert render.config_at(8).motion == half
  assert render.config_at(100).motion == base.motion
  assert render(3)["flow"].max() == 0.0  # no motion at all in the first step
  with pytest.raises(ValueError, match="start at sample 0"):
    pipeline.RenderSample(base, seed=0, augment=pipeline.NO_AUGMENT, curriculum=((5, 1.0),))
  with pytest.raises(ValueError, match="≥ 0"):
    motion_lib.scale_motion(base.motion, -1)


def test_stage1_takes_only_the_flow_from_a_flow_run(tmp_path):
  flow_config = config_loading.load_config("flow_pretrain:size=tiny")
  flow_model = DeAltHDR.from_config(flow_config.model)
  trained = dict(train.initial_params(flow_model, 5))
  trained[train_state.FLOW] = jax.tree.map(lambda x: x + 0.5, trained[train_state.FLOW])
  model_files.save_params(tmp_path / "flow", trained, flow_config)
  # A 3-exposure model (radius 2, unlike the flow run's) starts from that flow only.
  config = config_loading.load_config("dealthdr_3exp:size=tiny")
  config_loading.apply_overrides(config, [f"init_from={tmp_path / 'flow'}",
                                          "init_parts=('flow',)"])
  model, params = train.prepare(config, tmp_path / "w")
  fresh = train.initial_params(model, config.seed)
  for name in fresh:
    want = trained[name] if name == train_state.FLOW else fresh[name]
    for a, b in zip(jax.tree.leaves(params[name]), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b, err_msg=name)
  # Without init_parts the radius mismatch is refused, naming it.
  config.init_parts = ()
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match="model.radius"):
    train.prepare(config, tmp_path / "w")
  config.init_parts = ("nope",)
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match="nope"):
    train.prepare(config, tmp_path / "w")
  assert dealthdr_lib.flow_network(model).levels == model.flow_levels


def test_a_trained_model_takes_a_new_flow_network_of_another_architecture(tmp_path):
  # A model with the old image-pyramid flow ("spynet", as models up to v1 shipped) ...
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config.model.flow_arch = "spynet"
  old_model = DeAltHDR.from_config(config.model)
  old = jax.tree.map(lambda x: x + 0.25, dict(train.initial_params(old_model, 1)))
  model_files.save_params(tmp_path / "old", old, config)
  # ... and a flow run with the cost-volume flow of the presets.
  flow_config = config_loading.load_config("flow_pretrain:size=tiny")
  flow_model = DeAltHDR.from_config(flow_config.model)
  flow_run = jax.tree.map(lambda x: x - 0.5, dict(train.initial_params(flow_model, 2)))
  model_files.save_params(tmp_path / "flow", flow_run, flow_config)

  new = config_loading.load_config("dealthdr_2exp:size=tiny")
  assert new.model.flow_arch == "pwc"
  config_loading.apply_overrides(new, [f"init_from={tmp_path / 'old'}",
                                       f"flow_init_from={tmp_path / 'flow'}"])
  _, params = train.prepare(new, tmp_path / "w")
  for name in params:
    want = flow_run[name] if name == train_state.FLOW else old[name]
    assert jax.tree.structure(params[name]) == jax.tree.structure(want), name
    for a, b in zip(jax.tree.leaves(params[name]), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b, err_msg=name)
  # Without flow_init_from, the architecture change is refused, naming it.
  new.flow_init_from = ""
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match="model.flow_arch"):
    train.prepare(new, tmp_path / "w2")
  # A flow run whose flow does not fit the model is refused, naming flow_init_from.
  new.flow_init_from = str(tmp_path / "old")
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match="flow_init_from"):
    train.prepare(new, tmp_path / "w3")


def test_a_flow_run_without_refinement_serves_a_model_with_it(tmp_path):
  """`model.flow_refine` adds a dilated-conv pass over the finest flow. A flow network
  trained without it is taken as is, the refinement starting at its initialiser (zero
  output), so the flow is unchanged until it trains; once it has weight it moves only the
  finest level, and spreads over its receptive field."""
  flow_config = config_loading.load_config("flow_pretrain:size=tiny")
  flow_model = DeAltHDR.from_config(flow_config.model)
  trained = jax.tree_util.tree_map_with_path(  # a flow that moves pixels
      lambda path, x: x + 0.01 if "out" in jax.tree_util.keystr(path) else x,
      dict(train.initial_params(flow_model, 3)))
  model_files.save_params(tmp_path / "flow", trained, flow_config)
  config = config_loading.load_config("flow_pretrain:size=tiny")
  config_loading.apply_overrides(config, [f"init_from={tmp_path / 'flow'}",
                                          "init_parts=('flow',)", "model.flow_refine=(8, 8, 4)"])
  model, params = train.prepare(config, tmp_path / "w")
  refine = params[train_state.FLOW]["refine"]
  assert sorted(refine) == ["conv0", "conv1", "conv2", "out"]
  assert not np.any(refine["out"]["kernel"]) and not np.any(refine["out"]["bias"])
  for a, b in zip(jax.tree.leaves({k: v for k, v in params[train_state.FLOW].items()
                                   if k != "refine"}),
                  jax.tree.leaves(trained[train_state.FLOW])):
    np.testing.assert_array_equal(a, b)
  batch = _toy_batch(model)
  pyramid = jax.jit(functools.partial(train._flow_pyramid, model))
  before = jax.jit(functools.partial(train._flow_pyramid, flow_model))(
      trained, batch["frames"], batch["stops"])
  with_refine = pyramid(params, batch["frames"], batch["stops"])
  for a, b in zip(before, with_refine):
    np.testing.assert_array_equal(a, b)
  # With weight on its output, the refinement changes the finest level only.
  params[train_state.FLOW]["refine"]["out"]["bias"] = np.float32([0.5, -0.25])
  moved = pyramid(params, batch["frames"], batch["stops"])
  for a, b in zip(before[:-1], moved[:-1]):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(np.asarray(moved[-1] - before[-1]).mean((0, 1, 2, 3)), [0.5, -0.25],
                             atol=1e-4)
  # Dilations 1, 2 then 1 (3×3 each, and the output's): a change at one pixel of the
  # refinement's input reaches ±(1 + 2 + 1 + 1) pixels, no farther.
  net = flow_lib.FlowRefiner((4, 4, 4))
  x = np.zeros((1, 21, 21, 3), np.float32)
  p = net.init(jax.random.PRNGKey(0), x)
  p = jax.tree.map(lambda v: v + 0.1, p)
  x2 = x.copy()
  x2[0, 10, 10] = 1.0
  diff = np.abs(np.asarray(net.apply(p, x2) - net.apply(p, x))).sum(-1)[0]
  ys, xs = np.nonzero(diff > 0)
  assert (ys.min(), ys.max(), xs.min(), xs.max()) == (5, 15, 5, 15)


def test_frozen_groups_keep_their_values_while_the_rest_trains(tmp_path):
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  # With FGMA's flow correction, its own Adam group and the aligned flow's loss term; and
  # FGMA's attention on its own Adam, taught where the match is.
  config_loading.apply_overrides(config, ["frozen=('flow',)", "optim.warmup_steps=1",
                                          "model.fgma_flow_correction=True",
                                          "loss.aligned_flow_weight=0.01",
                                          "optim.correction_lr=0.01",
                                          "optim.attention_lr=0.03",
                                          "loss.attention_match_weight=0.1"])
  model, _ = train.prepare(config, tmp_path / "w")
  tx = train_state.make_optimizer(config)
  params = jax.tree_util.tree_map_with_path(  # a flow that moves pixels, so it matters
      lambda path, x: x + 0.01 if "out" in jax.tree_util.keystr(path) else x,
      train.initial_params(model, 0))
  state = jax.jit(lambda p: train_state.create(p, tx))(params)
  step = jax.jit(functools.partial(train.stage1_step, model=model, tx=tx, config=config,
                                   ratio=0.5))
  for _ in range(2):
    state, metrics = step(state, _toy_batch(model, n=4))
  metrics = metrics.compute()
  assert float(metrics["attention_reach"]) > 0.5, metrics  # toy motion is small
  assert float(metrics["attention_match"]) > 0.0
  after = jax.device_get(state.params)
  for name in params:
    same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params[name]),
                                                     jax.tree.leaves(after[name])))
    assert same == (name == train_state.FLOW), name
  # The correction starts at zero and steps at its own rate (Adam: ≈ lr per step).
  moved = np.abs(after[train_state.CORRECTION]["offset"]["kernel"]
                 - params[train_state.CORRECTION]["offset"]["kernel"]).max()
  np.testing.assert_allclose(moved, config.optim.correction_lr, rtol=0.2)  # lr is 1e-3
  for level in model.fgma_levels:
    assert train_state.is_attention(f"fgma{level}")
    moved = np.abs(after[f"fgma{level}"]["query"]["kernel"]
                   - params[f"fgma{level}"]["query"]["kernel"]).max()
    np.testing.assert_allclose(moved, config.optim.attention_lr, rtol=0.2)
  assert not train_state.is_attention(train_state.CORRECTION)
  for bad in (("nope",), tuple(params)):
    config.frozen = bad
    with pytest.raises(ValueError, match="frozen="):
      train.prepare(config, tmp_path / "w")
