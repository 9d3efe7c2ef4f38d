"""Training steps lowered for other platforms (`jax.export`), from any machine.

`export_train_step(config, ("cuda", "tpu"))` traces the config's step function (stage 0, 1
or 2) exactly as `train.py` compiles it: the state donated, the state's shardings from the
config's mesh and partition rules, the batch split over `data`; and lowers it to StableHLO
for the named platforms. Lowering needs no accelerator, so a CPU machine proves that the
sharded step (top-k, gathers, scatters, donation, the mesh) lowers for GPU and TPU; only
compiling and running it needs the device. The mesh is built from this machine's devices
(`--xla_force_host_platform_device_count` gives several CPU devices).
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from dealthdr_jax.training import sharding as sharding_lib
from dealthdr_jax.training import train
from dealthdr_jax.training import train_state


def abstract_batch(config: ml_collections.ConfigDict, window: int, mesh
                   ) -> dict[str, jax.ShapeDtypeStruct]:
  """The global batch a step receives, as ShapeDtypeStructs split over `data`.

  Stage 1 and the flow stage get frames, stops, hdr, flow and valid; stage 2 frames and
  stops (`input_pipeline.device_batch`). Crops are `config.data.crop` square.
  """
  b, t, s = config.batch_size, window, config.data.crop
  shapes = {"frames": (b, t, s, s, 3), "stops": (b, t)}
  if config.stage != 2:
    shapes.update(hdr=(b, s, s, 3), flow=(b, t, s, s, 2), valid=(b, t, s, s))
  sharding = sharding_lib.batch_sharding(mesh)
  return {k: jax.ShapeDtypeStruct(v, jnp.float32, sharding=sharding)
          for k, v in shapes.items()}


class StepSetup(NamedTuple):
  """What `train.py` builds before its first step, without any device work."""
  model: Any
  mesh: jax.sharding.Mesh
  tx: Any
  init: Callable[[], Any]  # () → fresh parameters
  state: Any  # abstract train state (ShapeDtypeStructs)
  state_shardings: Any
  step_fn: Callable  # the stage's step function


def step_setup(config: ml_collections.ConfigDict) -> StepSetup:
  """The config's model, mesh, optimizer, abstract state with its shardings (the config's
  partition rules) and step function, as `train.train_and_evaluate` builds them."""
  model = train.check_config(config)
  mesh = sharding_lib.make_mesh(config.mesh.shape, config.mesh.axes)
  sharding_lib.check_batch_size(config.batch_size, mesh)
  tx = train_state.make_optimizer(config)
  rules = [tuple(r) for r in config.mesh.param_rules]
  init = functools.partial(train._random_init, model, config.seed)  # pylint: disable=protected-access
  state, state_shardings = train_state.abstract_state(init, tx, mesh, rules)
  step_fn = {train_state.FLOW_STAGE: train.flow_step, 1: train.stage1_step,
             2: train.stage2_step}[config.stage]
  return StepSetup(model, mesh, tx, init, state, state_shardings, step_fn)


def export_train_step(config: ml_collections.ConfigDict, platforms: tuple[str, ...],
                      ratio: float | None = None) -> jax.export.Exported:
  """The config's train step, sharded as in training, lowered for `platforms`.

  Args:
    config: an experiment config (its stage, model, mesh, batch size and crop decide).
    platforms: e.g. ("cuda", "tpu"); lowering for several gives one multi-platform program.
    ratio: the static FGMA attention ratio of the step (default: `config.attn_ratio`).
  Returns:
    the `jax.export.Exported` (serialize with `.serialize()`).
  """
  model, mesh, tx, _, state, state_shardings, step_fn = step_setup(config)
  ratio = float(config.attn_ratio if ratio is None else ratio)
  batch = abstract_batch(config, model.window, mesh)
  step = functools.partial(step_fn, model=model, tx=tx, config=config, ratio=ratio)
  # The program takes and returns flat leaves (optax and clu containers are not
  # serializable pytrees); the order is jax.tree.leaves of (state, batch).
  state_leaves, state_def = jax.tree.flatten(state)
  batch_leaves, batch_def = jax.tree.flatten(batch)

  def flat_step(state_leaves, batch_leaves):
    new_state, metrics = step(jax.tree.unflatten(state_def, state_leaves),
                              jax.tree.unflatten(batch_def, batch_leaves))
    return jax.tree.leaves((new_state, metrics))

  state_sh = jax.tree.leaves(state_shardings)
  batch_sh = [x.sharding for x in batch_leaves]
  with jax.set_mesh(mesh):
    n_out = len(jax.eval_shape(flat_step, state_leaves, batch_leaves))
    out_sh = state_sh + [sharding_lib.replicated(mesh)] * (n_out - len(state_sh))
    # keep_unused: one program argument per leaf, so arguments and results line up.
    jitted = jax.jit(flat_step, in_shardings=(state_sh, batch_sh), out_shardings=out_sh,
                     donate_argnums=(0,), keep_unused=True)
    exported = jax.export.export(jitted, platforms=platforms)(state_leaves, batch_leaves)
  args, results = sharding_specs(exported)
  # The new state keeps the state's shardings (as `train.py` asks with out_shardings).
  if results[:len(state_sh)] != args[:len(state_sh)]:
    raise AssertionError("the lowered step changes the state's shardings")
  return exported


_SPEC = re.compile(r"sdy\.sharding<@mesh, \[(.*?)\]>")


def sharding_specs(exported: jax.export.Exported) -> tuple[list[str], list[str]]:
  """Per argument and per result of the lowered program, its sharding over the mesh as
  written in the StableHLO (Shardy): e.g. '{"data"}, {}, {}' (split over `data` on the
  first axis); '' when replicated."""
  text = exported.mlir_module()
  start = text.index("func.func public @main(")
  end = text.index("\n", start)
  signature = text[start:end]
  arg_part, _, result_part = signature.partition(") -> (")

  def specs(part, splitter):
    chunks = re.split(splitter, part)[1:]
    out = []
    for chunk in chunks:
      if "jax.global_constant" in chunk:
        continue  # The platform index of a multi-platform program, not a leaf.
      match = _SPEC.search(chunk)
      spec = match.group(1) if match else ""
      out.append("" if not spec.replace("{}", "").replace(",", "").strip() else spec)
    return out

  return specs(arg_part, r"%arg\d+: "), specs(result_part, r"tensor<")
