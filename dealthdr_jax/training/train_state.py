"""The training state (a plain pytree), its optimizer, and creating it sharded.

The optimizer is AdamW with linear warm-up then cosine decay to `optim.end_lr`, global-
norm gradient clipping, and an optional EMA of the parameters (`optim.ema_decay` > 0),
which is exported for inference and serves as the stage-2 teacher. A model with a
learned response calibration (`model.response_calibration` > 0) trains that curve with
its own Adam (`optim.calibration_lr`, same schedule shape, no weight decay): the curve
must move far in a short fine-tune whose network learning rate is tiny; so does FGMA's
flow correction (`model.fgma_flow_correction`, `optim.correction_lr`), which starts
inside a trained model (at zero or as the attention's soft argmax), and, when
`optim.attention_lr` > 0, FGMA's attention (the `fgma<level>` groups). In flow pre-training
(stage 0) only the flow network's parameters are updated.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax

from dealthdr_jax.training import sharding as sharding_lib

# Top-level parameter names: the response calibration curve, the flow network.
CALIBRATION = "response_calibration"
CORRECTION = "fgma_flow_correction"
FLOW = "flow"
# `config.stage` of flow pre-training (stage 1 is supervised HDR, stage 2 self-supervised).
FLOW_STAGE = 0


@flax.struct.dataclass
class TrainState:
  """step: int32 scalar; params, ema_params: parameter pytrees (ema_params = params when
  EMA is off, so the structure never depends on the config); opt_state: optax state."""
  step: jnp.ndarray
  params: Any
  opt_state: Any
  ema_params: Any


def learning_rate_schedule(optim: ml_collections.ConfigDict, total_steps: int,
                           peak: float | None = None, end: float | None = None
                           ) -> optax.Schedule:
  """Linear warm-up from 0 to `peak` (default `optim.lr`), then cosine decay to `end`
  (default `optim.end_lr`)."""
  warmup = max(0, min(int(optim.warmup_steps), total_steps - 1))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=optim.lr if peak is None else peak, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1),
      end_value=optim.end_lr if end is None else end)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """AdamW on the schedule; the response calibration (if any) on its own; the parameter
  groups named in `config.frozen` (and, in flow pre-training, every group but the flow)
  keep their values (their gradients are unused, so XLA drops their computation)."""
  optim = config.optim
  parts = []
  if optim.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(optim.grad_clip))
  network = optax.adamw(learning_rate_schedule(optim, config.total_steps),
                        b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay)
  transforms = {"network": network, "frozen": optax.set_to_zero()}
  # Added parameter groups on their own Adam: the schedule's shape, their own peak.
  own_adam = lambda lr: optax.adam(
      learning_rate_schedule(optim, config.total_steps, peak=lr, end=lr * 0.01),
      b1=optim.b1, b2=optim.b2)
  if config.model.get("response_calibration", 0) > 0:
    transforms["curve"] = own_adam(optim.calibration_lr)
  if config.model.get("fgma_flow_correction", False):
    transforms["correction"] = own_adam(optim.get("correction_lr", optim.lr))
  attention = optim.get("attention_lr", 0.0) > 0
  if attention:
    transforms["attention"] = own_adam(optim.attention_lr)
  frozen = tuple(config.get("frozen", ()))
  flow_stage = config.stage == FLOW_STAGE
  if not frozen and not flow_stage and set(transforms) == {"network", "frozen"}:
    parts.append(network)
  else:
    parts.append(optax.multi_transform(
        transforms, functools.partial(_labels, frozen=frozen, flow_stage=flow_stage,
                                      attention=attention)))
  return optax.chain(*parts)


def is_attention(name: str) -> bool:
  """Whether a top-level parameter group is one of FGMA's attentions (`fgma<level>`)."""
  return name.startswith("fgma") and name[4:].isdigit()


def _labels(params, frozen: tuple[str, ...] = (), flow_stage: bool = False,
            attention: bool = False):
  """Per parameter group: "frozen" (named in `frozen`, or anything but the flow network in
  flow pre-training), "curve" (the calibration logits), "correction" (FGMA's flow
  correction), "attention" (FGMA's attentions, with `attention`) or "network"."""
  def label(name):
    if name in frozen or (flow_stage and name != FLOW):
      return "frozen"
    if attention and is_attention(name):
      return "attention"
    return {CALIBRATION: "curve", CORRECTION: "correction"}.get(name, "network")
  return {name: jax.tree.map(lambda _, n=name: label(n), sub) for name, sub in params.items()}


def create(params, tx: optax.GradientTransformation) -> TrainState:
  """A fresh state from parameters (pure; jit it to create it sharded)."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), ema_params=params)


def apply_gradients(state: TrainState, grads, tx: optax.GradientTransformation,
                    ema_decay: float) -> TrainState:
  """One optimizer step plus the EMA update (pure)."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  if ema_decay > 0:
    ema = jax.tree.map(lambda e, p: ema_decay * e + (1.0 - ema_decay) * p,
                       state.ema_params, params)
  else:
    ema = params
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       ema_params=ema)


def abstract_state(init_params_fn, tx, mesh, rules=()) -> tuple[TrainState, Any]:
  """The state's shapes and shardings, from `jax.eval_shape` (nothing is computed).

  Args:
    init_params_fn: () -> params, traceable (e.g. `model.init` on zeros).
    tx: the optimizer.
    mesh: the device mesh; rules: `sharding.tree_shardings` partition rules.
  Returns:
    (target, shardings): ShapeDtypeStructs carrying their shardings (a restore target),
    and the pytree of NamedShardings (`jit(create, out_shardings=...)` builds the state
    directly sharded, with no single-device copy).
  """
  abstract = jax.eval_shape(lambda: create(init_params_fn(), tx))
  shardings = sharding_lib.tree_shardings(mesh, abstract, rules)
  target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)
  return target, shardings
