"""`dealthdr train`: stage-1 (supervised) and stage-2 (self-supervised) training.

  dealthdr train --config configs/dealthdr_2exp.py:size=small --workdir runs/2exp
  dealthdr train --config configs/dealthdr_2exp_stage2.py --workdir runs/2exp_s2 \
      --config.init_from=runs/2exp --config.data.clips=/data/clips

The run resumes automatically from the workdir's latest checkpoint (same data position,
same per-step attention ratios and random keys, so an interrupted run ends with the same
parameters as an uninterrupted one). See DESIGN.md §5 and `checkpoints.py` for the
workdir layout.

The core is two pure step functions, `stage1_step` and `stage2_step`
`(state, batch, *, ratio) -> (state, metrics)`, jitted once per attention ratio (a
compile-time constant of the model) with the state donated and its shardings explicit.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from data_pipeline import patterns
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import metrics as metrics_lib
from dealthdr_jax.models import dealthdr as dealthdr_lib
from dealthdr_jax.models import response as response_lib
from dealthdr_jax.models import self_ensemble as self_ensemble_lib
from dealthdr_jax.models import warp as warp_lib
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import checkpoints
from dealthdr_jax.training import input_pipeline
from dealthdr_jax.training import logs
from dealthdr_jax.training import losses
from dealthdr_jax.training import sharding as sharding_lib
from dealthdr_jax.training import train_state

EXIT_DIVERGED = 3


class TrainingDiverged(RuntimeError):
  """A loss or metric became NaN/Inf."""


# --------------------------------------------------------------------------- step functions


def _neighbours(t: int) -> list[int]:
  return [i for i in range(t) if i != t // 2]


def _neighbour_flow(batch: dict[str, jnp.ndarray]) -> tuple[jnp.ndarray, jnp.ndarray | None]:
  """GT flow reference → each neighbour [B, M, H, W, 2], and its weights [B, M, H, W]."""
  nbr = _neighbours(batch["frames"].shape[1])
  return batch["flow"][:, nbr], (batch["valid"][:, nbr] if "valid" in batch else None)


# Where the mirror-consistency and distillation terms count (`loss.mirror_region`,
# `loss.distill_region`): every pixel, or only those no exposure of the window recorded.
LOSS_REGIONS = ("all", "unrecorded")


def mirroring(step: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(left_right, upside_down) of a step's mirrored copy: the three mirrorings in turn."""
  turn = step % 3
  return turn != 1, turn != 0


def mirrored(x: jnp.ndarray, left_right: jnp.ndarray, upside_down: jnp.ndarray
             ) -> jnp.ndarray:
  """x [..., H, W, C] mirrored along W and/or H by traced flags (its own inverse)."""
  x = jnp.where(left_right, jnp.flip(x, axis=-2), x)
  return jnp.where(upside_down, jnp.flip(x, axis=-3), x)


def teacher_ensemble(model: DeAltHDR, params, frames: jnp.ndarray, stops: jnp.ndarray,
                     ratio: float, copies: int) -> jnp.ndarray:
  """Stop-gradient mean of the outputs on `copies` (1, 2 or 4) mirrored copies of the
  window, each mirrored back (as `infer --self-ensemble`). frames [B, T, H, W, 3], stops
  [B, T] → [B, H, W, 3] linear HDR."""
  total = 0.0
  for flips in self_ensemble_lib.MIRRORINGS[:copies]:
    hdr, _ = model.apply({"params": params}, self_ensemble_lib.mirror(frames, *flips), stops,
                         ratio=ratio)
    total = total + self_ensemble_lib.mirror(hdr, *flips)
  return jax.lax.stop_gradient(total / copies)


def teacher_ratio(config: ml_collections.ConfigDict, ratio: float) -> float:
  """The attention ratio of the distillation teacher in a step at `ratio`."""
  fixed = float(config.loss.get("distill_ratio", -1.0))
  return ratio if fixed < 0 else fixed


def stage1_step(state: train_state.TrainState, batch: dict[str, jnp.ndarray], *,
                model: DeAltHDR, tx: optax.GradientTransformation,
                config: ml_collections.ConfigDict, ratio: float
                ) -> tuple[train_state.TrainState, logs.Stage1Metrics]:
  """One supervised step: μ-law L1 on HDR + decaying flow-pyramid EPE + the EPE of the
  flow that aligns (`aux["flow_aligned"]`, weight `loss.aligned_flow_weight`, 0 = off)
  + FGMA's attention looking at the ground-truth match (`losses.attention_match_loss`
  at every FGMA level, weight `loss.attention_match_weight`, 0 = off). With
  `loss.mirror_weight` > 0 the window also runs mirrored (`mirroring(step)`), its output
  mirrored back: the HDR loss is the two copies' mean, plus the weight times their
  difference (`losses.prediction_difference`) over every pixel or, with
  `loss.mirror_region="unrecorded"`, over those no exposure recorded. With
  `loss.distill_weight` > 0, plus the weight times the difference from a teacher: the
  mean of `state.ema_params`' outputs on `loss.distill_copies` mirrored copies of the
  window (`teacher_ensemble`; with `optim.ema_decay=1` the starting model, frozen), run at
  `loss.distill_ratio` (< 0: this step's `ratio`), over every pixel or, with
  `loss.distill_region="unrecorded"`, only where no exposure recorded the scene (each such
  pixel weighed as with "all"; the others left to the ground truth alone).

  Args:
    state: the train state.
    batch: frames [B, T, H, W, 3], stops [B, T], hdr [B, H, W, 3], flow [B, T, H, W, 2]
      (reference → frame t), optional valid [B, T, H, W] flow weights.
    ratio: static FGMA attention ratio of this step.
  """
  gt_flow, valid = _neighbour_flow(batch)
  flow_w = losses.flow_weight(state.step, config.loss.flow_weight, config.loss.flow_weight_end,
                              int(config.loss.flow_decay_frac * config.total_steps))

  match_w = config.loss.get("attention_match_weight", 0.0)
  mirror_w = config.loss.get("mirror_weight", 0.0)
  distill_w = config.loss.get("distill_weight", 0.0)
  teacher = (teacher_ensemble(model, state.ema_params, batch["frames"], batch["stops"],
                              teacher_ratio(config, ratio), config.loss.distill_copies)
             if distill_w > 0 else None)

  def loss_fn(params):
    hdr, aux = model.apply({"params": params}, batch["frames"], batch["stops"], ratio=ratio,
                           attention_tokens=match_w > 0)
    hdr_l = losses.hdr_loss(hdr, batch["hdr"], config.loss.mu)
    consistency = jnp.zeros(())
    if mirror_w > 0:
      flips = mirroring(state.step)
      hdr_m, _ = model.apply({"params": params}, mirrored(batch["frames"], *flips),
                             batch["stops"], ratio=ratio)
      hdr_m = mirrored(hdr_m, *flips)
      hdr_l = 0.5 * (hdr_l + losses.hdr_loss(hdr_m, batch["hdr"], config.loss.mu))
      region = (losses.unrecorded_mask(batch["frames"], batch["stops"])
                if config.loss.mirror_region == "unrecorded" else None)
      consistency = losses.prediction_difference(hdr, hdr_m, batch["hdr"], config.loss.mu,
                                                 region)
    epe = losses.flow_pyramid_loss(aux["flow_pyramid"], gt_flow, valid)
    loss = hdr_l + flow_w * epe + mirror_w * consistency
    distill = jnp.zeros(())
    if teacher is not None:
      if config.loss.get("distill_region", "all") == "unrecorded":
        region = losses.unrecorded_mask(batch["frames"], batch["stops"])
        distill = losses.prediction_difference(hdr, teacher, batch["hdr"], config.loss.mu,
                                               region) * jnp.mean(region)
      else:
        distill = losses.prediction_difference(hdr, teacher, batch["hdr"], config.loss.mu)
      loss += distill_w * distill
    if config.loss.get("aligned_flow_weight", 0.0) > 0:
      loss += config.loss.aligned_flow_weight * losses.flow_pyramid_loss(
          [aux["flow_aligned"]], gt_flow, valid)
    match = _attention_match(aux.get("attention", {}), aux["masks"], gt_flow, valid,
                             model.fgma_window)
    loss += match_w * match[0]
    return loss, (hdr, hdr_l, epe, match, consistency, distill)

  (loss, (hdr, hdr_l, epe, match, consistency, distill)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  new_state = train_state.apply_gradients(state, grads, tx, config.optim.ema_decay)
  lr = train_state.learning_rate_schedule(config.optim, config.total_steps)(state.step)
  m = logs.Stage1Metrics.single_from_model_output(
      loss=loss, hdr_loss=hdr_l, flow_epe=epe, flow_weight=flow_w,
      psnr_t=jnp.mean(metrics_lib.psnr_t_jnp(hdr, batch["hdr"])),
      attention_match=match[0], attention_reach=match[1], attention_hit=match[2],
      mirror_consistency=consistency, distill=distill, grad_norm=optax.tree.norm(grads),
      learning_rate=lr)
  return new_state, m


def _attention_match(attention: dict, masks: dict, gt_flow: jnp.ndarray,
                     valid: jnp.ndarray | None, window: int
                     ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
  """`losses.attention_match_loss` averaged over FGMA's levels (zeros without tokens).

  attention, masks: the model's aux["attention"] and aux["masks"] (whose [B, M, h, w]
  give each level's size); gt_flow [B, M, H, W, 2]; valid [B, M, H, W] or None (the
  training crop is never padded: H, W are multiples of every level's size).
  """
  if not attention:
    return (jnp.zeros((), jnp.float32),) * 3
  b, m = gt_flow.shape[:2]
  terms = []
  for level, tokens in attention.items():
    fh, fw = masks[level].shape[-2:]
    level_flow = losses.downsample_flow(gt_flow, fh, fw).reshape(b * m, fh, fw, 2)
    visible = None if valid is None else losses.downsample_weights(
        valid, fh, fw).reshape(b * m, fh, fw)
    terms.append(losses.attention_match_loss(tokens, level_flow, visible, window))
  return tuple(jnp.mean(jnp.stack(t)) for t in zip(*terms))


def _flow_pyramid(model: DeAltHDR, params, frames, stops) -> list[jnp.ndarray]:
  """The flow network alone on a window: coarse → fine, each [B, M, h, w, 2]."""
  b, t = frames.shape[:2]
  ref, nbr = dealthdr_lib.flow_inputs(model, frames, stops)
  flows = dealthdr_lib.flow_network(model).apply({"params": params[train_state.FLOW]}, ref, nbr)
  return [f.reshape((b, t - 1) + f.shape[1:]) for f in flows]


def _full_res_epe(pyramid, gt_flow, valid) -> jnp.ndarray:
  """Mean EPE (input pixels) of the finest level, upsampled, over `valid` pixels [B]."""
  b, m, h, w, _ = gt_flow.shape
  fine = pyramid[-1]
  fine = warp_lib.resize_flow(fine.reshape((b * m,) + fine.shape[2:]), h, w)
  err = jnp.linalg.norm(fine.reshape(b, m, h, w, 2) - gt_flow, axis=-1)
  weight = jnp.ones_like(err) if valid is None else valid
  return jnp.sum(err * weight, axis=(1, 2, 3)) / jnp.maximum(
      jnp.sum(weight, axis=(1, 2, 3)), 1.0)


def flow_step(state: train_state.TrainState, batch: dict[str, jnp.ndarray], *,
              model: DeAltHDR, tx: optax.GradientTransformation,
              config: ml_collections.ConfigDict, ratio: float
              ) -> tuple[train_state.TrainState, logs.FlowMetrics]:
  """One flow pre-training step (stage 0): the flow network alone, on the model's
  exposure-matched pairs, supervised by the simulator's flow (pyramid EPE over visible
  pixels). Only `params["flow"]` change (`train_state.make_optimizer`). `ratio` is unused
  (no attention runs). Args: as `stage1_step`; frames, stops, flow and valid are used.
  """
  del ratio
  gt_flow, valid = _neighbour_flow(batch)

  def loss_fn(params):
    pyramid = _flow_pyramid(model, params, batch["frames"], batch["stops"])
    return losses.flow_pyramid_loss(pyramid, gt_flow, valid), pyramid

  (loss, pyramid), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = train_state.apply_gradients(state, grads, tx, config.optim.ema_decay)
  lr = train_state.learning_rate_schedule(config.optim, config.total_steps)(state.step)
  m = logs.FlowMetrics.single_from_model_output(
      loss=loss, epe=jnp.mean(_full_res_epe(jax.lax.stop_gradient(pyramid), gt_flow, valid)),
      grad_norm=optax.tree.norm(grads), learning_rate=lr)
  return new_state, m


def flow_eval_step(params, batch: dict[str, jnp.ndarray], *, model: DeAltHDR, ratio: float,
                   mu: float) -> tuple[logs.FlowEvalMetrics, None]:
  """Validation of the flow network → (EPE metrics, None): full-resolution EPE of the
  finest level over visible pixels, and the pyramid loss."""
  del ratio, mu
  gt_flow, valid = _neighbour_flow(batch)
  pyramid = _flow_pyramid(model, params, batch["frames"], batch["stops"])
  b = gt_flow.shape[0]
  m = logs.FlowEvalMetrics.single_from_model_output(
      epe=_full_res_epe(pyramid, gt_flow, valid),
      pyramid_epe=jnp.broadcast_to(losses.flow_pyramid_loss(pyramid, gt_flow, valid), (b,)))
  return m, None


def subset_window(frames: jnp.ndarray, stops: jnp.ndarray, key: jax.Array, radius: int,
                  period: int | None = None
                  ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
  """Per sample, a random `losses.subset_index_maps` sub-window of the input window.

  frames: [B, T, H, W, 3], stops: [B, T] → the same shapes, frames/stops re-indexed, and
  [B, T] float: 1 for the frames the sub-window left out (`left_out_frames`).
  period: frames per exposure cycle (edges keep each slot's exposure), or None.
  """
  maps = jnp.asarray(losses.subset_index_maps(radius, period))             # [K, T]
  choice = jax.random.randint(key, (frames.shape[0],), 0, maps.shape[0])
  idx = maps[choice]                                                       # [B, T]
  return (jnp.take_along_axis(frames, idx[:, :, None, None, None], axis=1),
          jnp.take_along_axis(stops, idx, axis=1), left_out_frames(idx))


def left_out_frames(idx) -> jnp.ndarray:
  """[..., T] sub-window index maps → [..., T] float, 1 where the frame is not an input.

  A kept frame maps to itself and the dropped positions are filled from kept frames
  (`losses.subset_index_maps`), so frame j is left out exactly where idx[j] != j.
  """
  idx = jnp.asarray(idx)
  return (idx != jnp.arange(idx.shape[-1])).astype(jnp.float32)


def _curve_from(config: ml_collections.ConfigDict) -> str:
  """`loss.curve_from`, checked: which stage-2 terms train the response curve."""
  curve_from = config.loss.get("curve_from", "all")
  if curve_from not in ("all", "reexposure"):
    raise ValueError(f"loss.curve_from must be 'all' or 'reexposure', got {curve_from!r}")
  return curve_from


def stage2_step(state: train_state.TrainState, batch: dict[str, jnp.ndarray], *,
                model: DeAltHDR, tx: optax.GradientTransformation,
                config: ml_collections.ConfigDict, ratio: float
                ) -> tuple[train_state.TrainState, logs.Stage2Metrics]:
  """One self-supervised step on windows without GT (DESIGN.md §5, stage 2).

  (a) the full-window output (stop-gradient) supervises the output of a random sub-window;
  (b) the EMA teacher's full-window output supervises the student's;
  (c) the output re-exposed to every frame of the window matches the well-exposed LDR;
  (d) the sub-window's output re-exposed to the frames it left out matches them
  (`loss.reexpose_left_out_weight`): those frames' noise is independent of its input, so
  unlike (c) this is matched by predicting the scene, not by passing noise through.
  (e) where no frame records the scene (`losses.unrecorded_mask`) no term above says
  anything true, so the teacher holds the output there (`loss.teacher_unrecorded_weight`).
  With a response calibration (`model.response_calibration`), (c) also trains the curve,
  `loss.curve_smoothness` keeps it smooth (losses.curve_roughness) and `loss.curve_prior`
  near the declared response (losses.curve_prior). Every term trains the curve through the
  network's input, unless `loss.curve_from` is "reexposure": then only (c) and (d) train it,
  where they render the output back to the frames, and (a), (b), (e) hold the network alone.
  Args: as `stage1_step`; only frames and stops are used.
  """
  frames, stops = batch["frames"], batch["stops"]
  b = frames.shape[0]
  key = jax.random.fold_in(jax.random.key(config.seed), state.step)
  sub_frames, sub_stops, left_out = subset_window(frames, stops, key, model.radius,
                                                 patterns.period(config.pattern))
  left_out_weight = float(config.loss.get("reexpose_left_out_weight", 0.0))
  unrecorded_weight = float(config.loss.get("teacher_unrecorded_weight", 0.0))
  # The teacher is the EMA of the network, read through the student's current response
  # calibration (a property of the camera, not something to smooth over time).
  teacher_params = dict(state.ema_params)
  if train_state.CALIBRATION in teacher_params:
    teacher_params[train_state.CALIBRATION] = state.params[train_state.CALIBRATION]
  teacher, _ = model.apply({"params": teacher_params}, frames, stops, ratio=ratio)
  teacher = jax.lax.stop_gradient(teacher)

  curve_from = _curve_from(config)

  def loss_fn(params):
    network_params = params
    if curve_from == "reexposure" and train_state.CALIBRATION in params:
      network_params = dict(params)
      network_params[train_state.CALIBRATION] = jax.lax.stop_gradient(
          params[train_state.CALIBRATION])
    hdr, aux = model.apply({"params": network_params}, jnp.concatenate([frames, sub_frames]),
                           jnp.concatenate([stops, sub_stops]), ratio=ratio)
    if curve_from == "reexposure" and "response_curve" in aux:
      # The same knots, but live only where the output is rendered back to the frames.
      aux = dict(aux, response_curve=response_lib.curve_knots(
          params[train_state.CALIBRATION], model.response_min_slope))
    full, sub = hdr[:b], hdr[b:]
    subset_l = losses.hdr_loss(sub, jax.lax.stop_gradient(full), config.loss.mu)
    teacher_l = losses.hdr_loss(full, teacher, config.loss.mu)
    reexpose_l = losses.reexposure_loss(full, frames, stops, aux["flow"][:b],
                                        response=model.response,
                                        curve=aux.get("response_curve"))
    loss = (config.loss.subset_weight * subset_l + config.loss.teacher_weight * teacher_l
            + config.loss.reexpose_weight * reexpose_l)
    left_out_l = jnp.zeros((), jnp.float32)
    if left_out_weight:  # The full window's flow places the left-out frames (geometry only).
      left_out_l = losses.reexposure_loss(sub, frames, stops,
                                          jax.lax.stop_gradient(aux["flow"][:b]),
                                          response=model.response,
                                          curve=aux.get("response_curve"),
                                          frame_weights=left_out)
      loss += left_out_weight * left_out_l
    unrecorded_l = jnp.zeros((), jnp.float32)
    if unrecorded_weight:
      unrecorded_l = losses.hdr_loss(full, teacher, config.loss.mu,
                                     weights=losses.unrecorded_mask(frames, stops))
      loss += unrecorded_weight * unrecorded_l
    if "response_curve" in aux:
      loss += (config.loss.curve_smoothness * losses.curve_roughness(aux["response_curve"])
               + config.loss.get("curve_prior", 0.0) * losses.curve_prior(aux["response_curve"]))
    distance = (jnp.sqrt(losses.curve_prior(aux["response_curve"]))
                if "response_curve" in aux else jnp.zeros((), jnp.float32))
    return loss, (subset_l, teacher_l, reexpose_l, left_out_l, unrecorded_l, distance)

  (loss, (subset_l, teacher_l, reexpose_l, left_out_l, unrecorded_l, distance)), grads = (
      jax.value_and_grad(loss_fn, has_aux=True)(state.params))
  new_state = train_state.apply_gradients(state, grads, tx, config.optim.ema_decay)
  lr = train_state.learning_rate_schedule(config.optim, config.total_steps)(state.step)
  m = logs.Stage2Metrics.single_from_model_output(
      loss=loss, subset_loss=subset_l, teacher_loss=teacher_l, reexpose_loss=reexpose_l,
      reexpose_left_out_loss=left_out_l, teacher_unrecorded_loss=unrecorded_l,
      curve_distance=jax.lax.stop_gradient(distance), grad_norm=optax.tree.norm(grads), learning_rate=lr)
  return new_state, m


def criterion_step(params, batch: dict[str, jnp.ndarray], *, model: DeAltHDR,
                   config: ml_collections.ConfigDict, ratio: float) -> jnp.ndarray:
  """Stage 2's no-reference held-out criterion on one batch → [B] per-window values.

  The self-supervised losses that depend on the parameters alone, weighted as in training:
  sub-window consistency (every sub-window map of `losses.subset_index_maps`, averaged),
  re-exposure consistency (through the model's response calibration) and, with
  `loss.reexpose_left_out_weight`, each sub-window's re-exposure to the frames it left out.
  The EMA teacher term is left out: it compares the parameters with their own average.
  """
  frames, stops = batch["frames"], batch["stops"]
  hdr, aux = model.apply({"params": params}, frames, stops, ratio=ratio)
  per_window = lambda x, y: jnp.stack([losses.hdr_loss(x[i:i + 1], y[i:i + 1], config.loss.mu)
                                       for i in range(x.shape[0])])
  maps = losses.subset_index_maps(model.radius, patterns.period(config.pattern))
  left_out_weight = float(config.loss.get("reexpose_left_out_weight", 0.0))
  def reexpose_per_window(x, frame_weights=None):
    return jnp.stack([
        losses.reexposure_loss(x[i:i + 1], frames[i:i + 1], stops[i:i + 1],
                               aux["flow"][i:i + 1], response=model.response,
                               curve=aux.get("response_curve"),
                               frame_weights=(None if frame_weights is None
                                              else frame_weights[i:i + 1]))
        for i in range(frames.shape[0])])
  subset = left_out = 0.0
  for idx in maps:
    sub, _ = model.apply({"params": params}, frames[:, idx], stops[:, idx], ratio=ratio)
    subset += per_window(sub, hdr) / len(maps)
    if left_out_weight:
      weights = jnp.broadcast_to(left_out_frames(idx), stops.shape)
      left_out += reexpose_per_window(sub, frame_weights=weights) / len(maps)
  reexpose = reexpose_per_window(hdr)
  return (config.loss.subset_weight * subset + config.loss.reexpose_weight * reexpose
          + left_out_weight * left_out)


def eval_step(params, batch: dict[str, jnp.ndarray], *, model: DeAltHDR, ratio: float,
              mu: float) -> tuple[logs.EvalMetrics, jnp.ndarray]:
  """Validation on a batch with GT → (metrics, hdr [B, H, W, 3])."""
  hdr, _ = model.apply({"params": params}, batch["frames"], batch["stops"], ratio=ratio)
  m = logs.EvalMetrics.single_from_model_output(
      psnr_t=metrics_lib.psnr_t_jnp(hdr, batch["hdr"]),
      psnr_l=metrics_lib.psnr_l_jnp(hdr, batch["hdr"]),
      hdr_loss=jnp.broadcast_to(losses.hdr_loss(hdr, batch["hdr"], mu), hdr.shape[:1]))
  return m, hdr


class StepFunctions:
  """Train steps, one program per attention ratio, compiled on first use and cached.

  `steps(ratio, state, batch)` runs one step. A ratio's first use compiles its program
  ahead of time and says so (with the time it took), so the long pause before the first
  steps is not silent and the compile time is not mistaken for step time.
  """

  def __init__(self, step_fn: Callable, state_shardings, mesh, log: Callable[[str], None],
               **kwargs):
    self._fn = step_fn
    self._kwargs = kwargs
    self._shardings = state_shardings
    self._mesh = mesh
    self._log = log
    self._cache: dict[float, Callable] = {}
    self.compile_seconds = 0.0

  def __call__(self, ratio: float, state, batch):
    ratio = float(ratio)
    if ratio not in self._cache:
      self._log(f"compiling the {self._fn.__name__} program for attention ratio {ratio:g} "
                f"(once per ratio; {len(self._cache)} compiled so far) ...")
      start = time.perf_counter()
      jitted = jax.jit(
          functools.partial(self._fn, ratio=ratio, **self._kwargs),
          in_shardings=(self._shardings, sharding_lib.batch_sharding(self._mesh)),
          out_shardings=(self._shardings, sharding_lib.replicated(self._mesh)),
          donate_argnums=(0,))
      self._cache[ratio] = jitted.lower(state, batch).compile()
      seconds = time.perf_counter() - start
      self.compile_seconds += seconds
      self._log(f"compiled in {seconds:.1f} s")
    return self._cache[ratio](state, batch)


def sample_ratio(seed: int, step: int, ratios) -> float:
  """The attention ratio of `step`: a pure function of (seed, step), the same on every
  process and after a resume."""
  rng = np.random.default_rng([seed, step, 0x7A7])
  return float(ratios[int(rng.integers(len(ratios)))])


# --------------------------------------------------------------------------- checks


def check_config(config: ml_collections.ConfigDict) -> DeAltHDR:
  """Checks everything that can be checked without compute; returns the model.

  Raises:
    ValueError (or a subclass) naming the offending config key.
  """
  model = DeAltHDR.from_config(config.model)
  crop = int(config.data.crop)
  if crop % model.pad_multiple or crop < model.min_size:
    raise ValueError(f"data.crop={crop} must be a multiple of the model's pad multiple "
                     f"{model.pad_multiple} (and ≥ {model.min_size})")
  if config.stage not in (train_state.FLOW_STAGE, 1, 2):
    raise ValueError(f"stage must be 0 (flow pre-training), 1 or 2, got {config.stage}")
  if not config.train_ratios or any(not 0.0 <= float(r) <= 1.0 for r in config.train_ratios):
    raise ValueError(f"train_ratios must be a non-empty list of values in [0, 1], got "
                     f"{config.train_ratios}")
  if not 0.0 <= config.attn_ratio <= 1.0:
    raise ValueError(f"attn_ratio must be in [0, 1], got {config.attn_ratio}")
  if config.total_steps <= 0 or config.batch_size <= 0:
    raise ValueError("total_steps and batch_size must be positive")
  for key in ("log_every", "eval_every", "checkpoint_every", "image_every"):
    if config[key] <= 0:
      raise ValueError(f"{key} must be positive, got {config[key]}")
  if config.export_params not in ("ema", "params"):
    raise ValueError(f"export_params must be 'ema' or 'params', got {config.export_params!r}")
  if config.loss.get("mirror_weight", 0.0) < 0:
    raise ValueError(f"loss.mirror_weight must be ≥ 0, got {config.loss.mirror_weight}")
  if config.loss.get("mirror_weight", 0.0) > 0 and config.stage != 1:
    raise ValueError(f"loss.mirror_weight={config.loss.mirror_weight} has no effect in stage "
                     f"{config.stage}: the mirrored copy is a stage-1 term")
  if config.loss.get("distill_weight", 0.0) < 0 or (
      config.loss.get("distill_weight", 0.0) > 0 and config.stage != 1):
    raise ValueError(f"loss.distill_weight={config.loss.distill_weight} must be ≥ 0, and "
                     "> 0 only in stage 1")
  if config.loss.get("distill_copies", 1) not in self_ensemble_lib.SIZES:
    raise ValueError(f"loss.distill_copies must be one of {self_ensemble_lib.SIZES}, got "
                     f"{config.loss.distill_copies}")
  if config.loss.get("distill_ratio", -1.0) > 1:
    raise ValueError(f"loss.distill_ratio must be < 0 (the step's own ratio) or in [0, 1], "
                     f"got {config.loss.distill_ratio}")
  if config.loss.get("distill_weight", 0.0) > 0 and config.optim.ema_decay <= 0:
    raise ValueError("loss.distill_weight > 0 needs a teacher: optim.ema_decay > 0 (1 = the "
                     "starting model, frozen)")
  if config.optim.ema_decay >= 1 and config.export_params == "ema":
    raise ValueError("optim.ema_decay=1 keeps the EMA at the starting model: with "
                     "export_params='ema' the run would export and validate it unchanged; "
                     "set export_params='params'")
  for name in ("mirror_region", "distill_region"):
    if config.loss.get(name, "all") not in LOSS_REGIONS:
      raise ValueError(f"loss.{name} must be one of {LOSS_REGIONS}, got "
                       f"{config.loss[name]!r}")
  if config.stage == 2:
    if not 0.0 < config.optim.ema_decay < 1.0:
      raise ValueError("stage 2 needs optim.ema_decay in (0, 1): the EMA is the teacher")
    _curve_from(config)
  if config.stage == 2 and not config.init_from:
    logs.log("warning: stage 2 without init_from starts from random weights")
  input_pipeline.check(config)
  return model


def _same_shapes(tree, expected) -> bool:
  """Same names and leaf shapes as `expected` (a tree of ShapeDtypeStructs)."""
  return jax.tree.structure(tree) == jax.tree.structure(expected) and all(
      np.shape(a) == e.shape for a, e in zip(jax.tree.leaves(tree), jax.tree.leaves(expected)))


def _load_init_params(model: DeAltHDR, config: ml_collections.ConfigDict):
  """`init_from` (and `flow_init_from`) parameters as host arrays (None without either),
  shape-checked."""
  flow_from = config.get("flow_init_from", "")
  if not config.init_from and not flow_from:
    return None
  parts = tuple(config.get("init_parts", ()))
  expected = jax.eval_shape(lambda: _random_init(model, config.seed))
  if config.init_from:
    loaded = checkpoints.load_init_params(
        config.init_from, config, check_model=not parts,
        ignore=checkpoints.FLOW_KEYS if flow_from else ())
  else:
    loaded, parts = {}, ("flow",)
  if parts:
    absent = [p for p in parts if p not in expected or (p not in loaded and not (
        p == "flow" and flow_from))]
    if absent:
      raise checkpoints.IncompatibleCheckpointError(
          f"init_parts={parts}: {absent} not in both init_from={config.init_from!r} "
          f"(has {sorted(loaded)}) and this model (has {sorted(expected)})")
    fresh = initial_params(model, config.seed)
    loaded = {k: loaded[k] if k in parts and k in loaded else v for k, v in fresh.items()}
    if config.init_from:
      logs.log(f"init_from {config.init_from}: took {list(parts)}, the rest starts fresh")
  if flow_from:
    flow = checkpoints.load_init_params(flow_from, config, check_model=False).get("flow")
    flow = _with_added_subparts("flow", flow, model, config, expected)
    if flow is None or not _same_shapes(flow, expected["flow"]):
      raise checkpoints.IncompatibleCheckpointError(
          f"flow_init_from={flow_from!r}: its params['flow'] are missing or differ in names or "
          f"shapes from this model's flow network (model.flow_* keys)")
    loaded = {**loaded, "flow": flow}
    logs.log(f"flow_init_from {flow_from}: took params['flow']")
  for part in checkpoints.ADDED_SUBPARTS:
    if part in loaded and not (part == "flow" and flow_from):
      loaded = {**loaded, part: _with_added_subparts(part, loaded[part], model, config,
                                                     expected)}
  missing = [k for k in expected if k not in loaded]
  if missing and set(missing) <= set(checkpoints.ADDED_PARAMETERS):
    # e.g. a stage-1 model fine-tuned with a response calibration it did not have.
    fresh = initial_params(model, config.seed)
    loaded = {**loaded, **{k: jax.tree.map(np.asarray, fresh[k]) for k in missing}}
    logs.log(f"init_from lacks {missing}: they start at their initialiser's values")
  if not _same_shapes(loaded, expected):
    raise checkpoints.IncompatibleCheckpointError(
        f"init_from={config.init_from!r}: parameter names or shapes differ from the model's")
  return jax.tree.map(lambda x, e: np.asarray(x, e.dtype), loaded, expected)


def _with_added_subparts(part: str, tree, model: DeAltHDR, config, expected):
  """params[`part`] (`tree`) with the sub-parts this model adds there
  (`checkpoints.ADDED_SUBPARTS`: the flow's "refine", the reconstruction's "head_kernel")
  and `tree` lacks, at their initialiser's values (zero output: the model is unchanged)."""
  if tree is None or part not in expected:
    return tree
  missing = [k for k in checkpoints.ADDED_SUBPARTS[part]
             if k in expected[part] and k not in tree]
  if not missing:
    return tree
  fresh = initial_params(model, config.seed)[part]
  logs.log(f"the loaded params[{part!r}] lack {missing}: they start at their initialiser's "
           f"values")
  return {**tree, **{k: jax.tree.map(np.asarray, fresh[k]) for k in missing}}


@functools.lru_cache(maxsize=4)
def initial_params(model: DeAltHDR, seed: int):
  """Freshly initialised parameters as host arrays (computed once per model and seed)."""
  return jax.device_get(jax.jit(lambda: _random_init(model, seed))())


def _random_init(model: DeAltHDR, seed: int):
  size = model.pad_multiple
  frames = jnp.zeros((1, model.window, size, size, 3), jnp.float32)
  stops = jnp.zeros((1, model.window), jnp.float32)
  return model.init(jax.random.key(seed), frames, stops, ratio=1.0)["params"]


def _put_global(tree, shardings):
  """Host arrays (the same on every process) → global arrays with the given shardings."""
  return jax.tree.map(
      lambda x, s: jax.make_array_from_callback(x.shape, s, lambda idx: x[idx]), tree,
      shardings)


def prepare(config: ml_collections.ConfigDict, workdir: str | pathlib.Path):
  """All checks that need no compute → (model, init params or None).

  Sets in `config.model` the switches of the model it continues that it leaves off
  (`checkpoints.adopt_switches`), so the workdir's config.json records them.

  Raises:
    ValueError / KeyError / FileNotFoundError naming the bad key, file or checkpoint.
  """
  adopted = checkpoints.adopt_switches(config)
  if adopted:
    logs.log(f"init_from {config.init_from} has switches this config leaves off; the run "
             f"keeps them: {', '.join(adopted)}")
  model = check_config(config)
  frozen = tuple(config.get("frozen", ()))
  if frozen:
    groups = sorted(jax.eval_shape(lambda: _random_init(model, config.seed)))
    if set(frozen) - set(groups) or set(frozen) == set(groups):
      raise ValueError(f"frozen={frozen}: name some, not all, of the model's parameter "
                       f"groups {groups}")
  checkpoints.check_workdir(pathlib.Path(workdir), config)
  return model, _load_init_params(model, config)


# --------------------------------------------------------------------------- the loop


def _finite(values: dict[str, float]) -> bool:
  return all(np.isfinite(v) for v in values.values())


def _evaluate(eval_fn, params, val_batches, mesh) -> tuple[dict[str, float], Any]:
  total = None
  first_hdr = None
  for batch in val_batches:
    m, hdr = eval_fn(params, sharding_lib.make_global_batch(batch, mesh))
    total = m if total is None else total.merge(m)
    if first_hdr is None:
      first_hdr = hdr
  values = {k: float(v) for k, v in jax.device_get(total.compute()).items()}
  return values, first_hdr


def _criterion(criterion_fn, params, batches, mesh) -> float:
  """Mean held-out criterion over `batches` (equal sizes), the same on every process."""
  values = [criterion_fn(params, sharding_lib.make_global_batch(b, mesh)) for b in batches]
  return float(np.mean([float(v) for v in jax.device_get(values)]))


# Stage 2: the parameters of the last step (`export/` holds the best held-out step's).
EXPORT_LAST_DIR = "export_last"


class HeldOutCriterion:
  """Stage 2's held-out criterion over a run: the start value, the best and its step,
  every measurement; the best parameters live in `export_best/` (the starting model until
  a step beats it). A step beats the start only when its criterion is at least
  `min_gain` (relative) below the start's: a change within the criterion's noise is not
  evidence that the model got better. `heldout.json` in the workdir carries it across a
  resume."""

  FILE = "heldout.json"

  def __init__(self, workdir: pathlib.Path, min_gain: float = 0.0):
    if not 0.0 <= min_gain < 1.0:
      raise ValueError(f"data.heldout_min_gain must be in [0, 1), got {min_gain}")
    self.path = workdir / self.FILE
    self.min_gain = min_gain
    data = json.loads(self.path.read_text()) if self.path.exists() else {}
    self.start = data.get("start")
    self.best = data.get("best")
    self.best_step = data.get("best_step")
    self.history = data.get("history", [])

  @property
  def bar(self) -> float | None:
    """The value a step must reach (≤) to beat the start."""
    return None if self.start is None else self.start * (1.0 - self.min_gain)

  def record(self, step: int, value: float) -> bool:
    """Adds a measurement; True when it is a new best: the first (the starting model), or
    one that clears `bar` and is below the best so far."""
    self.history.append([step, value])
    if self.start is None:
      self.start = value
      better = True
    else:
      better = value <= self.bar and value < self.best
    if better:
      self.best, self.best_step = value, step
    if jax.process_index() == 0:
      tmp = self.path.with_suffix(".json.tmp")
      tmp.write_text(json.dumps({"start": self.start, "best": self.best,
                                 "best_step": self.best_step, "history": self.history},
                                indent=1))
      os.replace(tmp, self.path)
    return better

  def card(self) -> dict:
    return {"heldout_criterion": {"start": self.start, "best": self.best,
                                  "best_step": self.best_step, "min_gain": self.min_gain,
                                  "last": self.history[-1] if self.history else None}}


def _local_first(x) -> np.ndarray:
  """The first sample held by this process of a batch-sharded global array."""
  return np.asarray(x.addressable_shards[0].data)[0]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
                       prepared: tuple[DeAltHDR, Any] | None = None) -> dict[str, Any]:
  """Trains (resuming from `workdir`), validates, checkpoints and exports.

  Args:
    config: the experiment config.
    workdir: the run folder.
    prepared: what `prepare(config, workdir)` returned, if the caller already ran the
      checks (they are not repeated); None runs them here.
  Returns:
    summary: {"step", "train": last train metrics, "val": last validation metrics,
    "export": path}.
  Raises:
    TrainingDiverged: a NaN/Inf loss; the message names the step and the last good
      checkpoint.
  """
  workdir = pathlib.Path(workdir)
  model, init_params = prepared if prepared is not None else prepare(config, workdir)
  random_init = functools.partial(_random_init, model, config.seed)

  is_main = jax.process_index() == 0
  mesh = sharding_lib.make_mesh(config.mesh.shape, config.mesh.axes)
  local_batch = sharding_lib.check_batch_size(config.batch_size, mesh)
  tx = train_state.make_optimizer(config)
  rules = [tuple(r) for r in config.mesh.param_rules]
  abstract, state_shardings = train_state.abstract_state(random_init, tx, mesh, rules)

  train_iter = input_pipeline.make_train_iterator(
      config, seed=config.seed, batch_size=local_batch, shard_index=jax.process_index(),
      shard_count=jax.process_count())
  val_batches = input_pipeline.make_val_batches(
      config, batch_size=local_batch, shard_index=jax.process_index(),
      shard_count=jax.process_count())
  heldout_batches = (input_pipeline.make_heldout_batches(
      config, batch_size=local_batch, shard_index=jax.process_index(),
      shard_count=jax.process_count()) if config.stage == 2 else [])

  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json(indent=1))
  manager = checkpoints.make_manager(workdir, config.keep_checkpoints)
  writer = logs.MetricWriter(workdir, active=is_main)
  log = functools.partial(logs.log, active=is_main)

  with jax.set_mesh(mesh):
    start = manager.latest_step()
    if start is not None:
      state, train_iter = checkpoints.restore(manager, start, abstract, train_iter)
      log(f"resumed from {workdir / checkpoints.CHECKPOINT_DIR / str(start)}")
    else:
      if init_params is None:
        state = jax.jit(lambda: train_state.create(random_init(), tx),
                        out_shardings=state_shardings)()
      else:
        state = jax.jit(lambda p: train_state.create(p, tx), out_shardings=state_shardings)(
            _put_global(init_params, state_shardings.params))
        log(f"initialised from {config.init_from or config.get('flow_init_from')}")
      start = 0
      log(f"new run in {workdir}: {model_files.count_params(abstract.params)} parameters, "
          f"mesh {dict(mesh.shape)}, {jax.process_count()} process(es), stage {config.stage}")

    step_fn = {train_state.FLOW_STAGE: flow_step, 1: stage1_step, 2: stage2_step}[config.stage]
    steps = StepFunctions(step_fn, state_shardings, mesh, log, model=model, tx=tx,
                          config=config)
    validate = flow_eval_step if config.stage == train_state.FLOW_STAGE else eval_step
    eval_fn = jax.jit(functools.partial(validate, model=model, ratio=float(config.attn_ratio),
                                        mu=config.loss.mu),
                      in_shardings=(state_shardings.params,
                                    sharding_lib.batch_sharding(mesh)))
    # The parameters that are validated and exported: the EMA if there is one (and wanted).
    use_ema = checkpoints.exports_ema(config)
    pick = lambda st: st.ema_params if use_ema else st.params
    heldout = None
    if heldout_batches:
      criterion_fn = jax.jit(
          lambda p, b: jnp.mean(criterion_step(p, b, model=model, config=config,
                                               ratio=float(config.attn_ratio))),
          in_shardings=(state_shardings.params, sharding_lib.batch_sharding(mesh)))
      heldout = HeldOutCriterion(workdir, float(config.data.get("heldout_min_gain", 0.0)))
      if heldout.start is None:  # A new run: measure and keep the starting model.
        log(f"held-out criterion of the starting model ({len(heldout_batches)} batch(es)) ...")
        heldout.record(start, _criterion(criterion_fn, pick(state), heldout_batches, mesh))
        checkpoints.export_params(workdir / model_files.EXPORT_BEST_DIR, pick(state), config,
                                  {"step": start, "stage": 2, **heldout.card()})
        log(f"held-out criterion at the start: {heldout.start:.5g}")
    progress = logs.Progress(start, config.total_steps, config.batch_size)
    accumulated = None
    train_values: dict[str, float] = {}
    val_values: dict[str, float] = {}
    last_saved = start if manager.latest_step() is not None else None
    step = start
    validated = False
    try:
      while step < config.total_steps:
        batch = sharding_lib.make_global_batch(
            input_pipeline.device_batch(next(train_iter), ground_truth=config.stage != 2),
            mesh)
        ratio = sample_ratio(config.seed, step, config.train_ratios)
        state, m = steps(ratio, state, batch)
        accumulated = m if accumulated is None else accumulated.merge(m)
        step += 1
        final = step == config.total_steps
        do_ckpt = step % config.checkpoint_every == 0 or final
        if step % config.log_every == 0 or do_ckpt:
          # The only host sync of the loop (besides validation and checkpoints).
          train_values = {k: float(v) for k, v in jax.device_get(accumulated.compute()).items()}
          accumulated = None
          if not _finite(train_values):
            raise TrainingDiverged(
                f"non-finite training metrics at step {step} (averaged since the previous "
                f"log step): {train_values}. Last good checkpoint: "
                + (str(workdir / checkpoints.CHECKPOINT_DIR / str(last_saved))
                   if last_saved is not None else "none")
                + ". Lower optim.lr or raise optim.warmup_steps, then resume.")
          rates = progress.update(step, steps.compile_seconds)
          writer.scalars(step, {**train_values, **rates}, prefix="train/")
          log(logs.Progress.line(step, config.total_steps, train_values, rates))
        eval_params = state.ema_params if use_ema else state.params
        save_metrics = None
        if step % config.eval_every == 0 or final:
          if not validated:
            log("compiling the validation program (first validation) ...")
            validated = True
          val_values, val_hdr = _evaluate(eval_fn, eval_params, val_batches, mesh)
          writer.scalars(step, val_values, prefix="val/")
          log(f"[step {step}] validation (ratio {config.attn_ratio}): "
              + " ".join(f"{k}={v:.4g}" for k, v in val_values.items()))
          if checkpoints.BEST_METRIC in val_values:  # HDR validation (not stage 0's flow)
            save_metrics = {checkpoints.BEST_METRIC: val_values[checkpoints.BEST_METRIC]}
          if heldout is not None:
            value = _criterion(criterion_fn, eval_params, heldout_batches, mesh)
            if heldout.record(step, value):
              checkpoints.export_params(workdir / model_files.EXPORT_BEST_DIR, eval_params,
                                        config, {"step": step, "stage": 2, **heldout.card()})
            writer.scalars(step, {"criterion": value}, prefix="heldout/")
            log(f"[step {step}] held-out criterion {value:.5g} (start {heldout.start:.5g}, "
                f"to beat it ≤ {heldout.bar:.5g}; best {heldout.best:.5g} at step "
                f"{heldout.best_step})")
          if val_hdr is not None and (step % config.image_every == 0 or final):
            vb = val_batches[0]
            writer.images(step, {"val/input_output_gt": logs.tonemap_triplet(
                vb["frames"][0, vb["frames"].shape[1] // 2], _local_first(val_hdr),
                vb["hdr"][0])})
        if do_ckpt:
          checkpoints.save(manager, step, state, train_iter, config, metrics=save_metrics,
                             force=final)
          last_saved = step
        writer.flush()
    finally:
      manager.wait_until_finished()
      writer.close()
      if hasattr(train_iter, "close"):  # Stops grain worker processes, if any.
        train_iter.close()

    card = {"step": step, "stage": config.stage, "val": val_values, "train": train_values,
            "params": "ema" if use_ema else "raw", "workdir": str(workdir.absolute())}
    export_dir = workdir / model_files.EXPORT_DIR
    if heldout is not None:
      # Stage 2 exports the step with the best held-out criterion: the parameters in
      # export_best/ (written when that step was measured).
      best_params, _ = model_files.load_params(workdir / model_files.EXPORT_BEST_DIR)
      card.update(heldout.card(), exported_step=heldout.best_step, final_step=step)
      if heldout.best_step == heldout.history[0][0]:
        lowest = min(v for _, v in heldout.history)
        log(f"the held-out criterion never beat the starting model's ({heldout.start:.5g}) "
            f"by {100 * heldout.min_gain:g} % (lowest {lowest:.5g}, last "
            f"{heldout.history[-1][1]:.5g}): exporting the starting model")
      else:
        log(f"exporting step {heldout.best_step}, the best held-out criterion "
            f"({heldout.best:.5g}, start {heldout.start:.5g})")
      checkpoints.export_params(export_dir, best_params, config, card)
      # The last step too, for comparison (not what `--checkpoint W` reads).
      checkpoints.export_params(workdir / EXPORT_LAST_DIR, pick(state), config,
                                {**card, "exported_step": step})
    else:
      checkpoints.export_params(export_dir, pick(state), config, card)
    best = checkpoints.best_step(manager, workdir) if config.stage == 1 else None
    if best is not None:
      best_state = state if best == step else checkpoints.restore_state(manager, best,
                                                                          abstract)
      checkpoints.export_params(
          workdir / model_files.EXPORT_BEST_DIR, pick(best_state), config,
          {**card, "step": best, "val": val_values if best == step else None})
    manager.close()
  log(f"done: step {step}; params-only export in {export_dir}")
  return {"step": step, "train": train_values, "val": val_values, "export": str(export_dir)}


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--config", required=True,
                      help="config file or name, with an optional :arg (e.g. "
                           "configs/dealthdr_2exp.py:size=small)")
  parser.add_argument("--workdir", required=True,
                      help="run folder: checkpoints, logs, export; resumed if it exists")
  # `--config.a.b=value` overrides arrive as `args.config_overrides` (dealthdr_jax.cli).
  parser.epilog = ("Override any config key with --config.a.b=value (e.g. "
                   "--config.batch_size=8 --config.data.crop=128); unknown keys are errors. "
                   "Multi-process and cluster launches: launch/README.md.")


def load_config(spec: str, overrides: list[str]) -> ml_collections.ConfigDict:
  config = config_loading.load_config(spec)
  config_loading.apply_overrides(config, overrides)
  return config


def main(args: argparse.Namespace) -> int:
  sharding_lib.maybe_initialize_distributed()
  try:
    config = load_config(args.config, getattr(args, "config_overrides", None) or [])
    prepared = prepare(config, args.workdir)
  except (ValueError, KeyError, FileNotFoundError, TypeError, AttributeError) as e:
    message = e.args[0] if isinstance(e, KeyError) and e.args else e
    print(f"dealthdr train: error: {message}", file=sys.stderr)
    return 2
  try:
    summary = train_and_evaluate(config, args.workdir, prepared)
  except TrainingDiverged as e:
    print(f"dealthdr train: training diverged: {e}", file=sys.stderr)
    return EXIT_DIVERGED
  if jax.process_index() == 0:
    print(f"trained to step {summary['step']}; val {summary['val']}; export "
          f"{summary['export']}")
  return 0

