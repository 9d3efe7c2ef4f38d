"""Training losses (DESIGN.md §5): pure `jnp` functions of predictions and targets.

Stage 1 (supervised by the simulator):
  * `hdr_loss`: L1 between μ-law tone-mapped HDR images, both divided per sample by the
    target's maximum (so bright and dark scenes weigh the same).
  * `flow_pyramid_loss`: end-point error of every level of the flow pyramid against the
    ground-truth flow, area-downsampled to that level with its vectors rescaled.
  * `flow_weight`: the flow term's weight, decaying over training.
  * `attention_match_loss`: FGMA's attention, at the selected tokens whose ground-truth
    match lies inside their window, must look at it (cross-entropy of the heads' mean
    window weights against the match, spread bilinearly over the window's pixels).
Stage 2 (self-supervised, no ground truth):
  * `hdr_loss` again, with a stop-gradient target (full window → window subset; EMA
    teacher → student, optionally weighted to `unrecorded_mask`, the pixels no frame of
    the window records).
  * `reexposure_loss`: the predicted HDR re-exposed to the reference (and, through the
    flow, to its neighbours) and passed through the camera response (and the inverse of
    the model's learned calibration curve, if it has one) must match the observed LDR
    wherever that LDR is well exposed. Exposure ratios are known, so this pins the curve:
    only the true response makes every exposure of a pixel agree. `frame_weights` picks
    frames, e.g. only those a sub-window's output did not see (noise it cannot copy).
    `reexposure_comparison` gives its pixels (rendered, observed, mask) before the mean
    (`tools/reexposure_residuals.py` reports them per level).
  * `curve_roughness`: keeps the learned calibration curve smooth, which also fixes the
    one thing re-exposure cannot see, the curve's scale (radiance × c with curve × c is
    just as consistent; a smooth curve cannot hide the factor in its clipped top segment).
  * `curve_prior`: holds the learned curve's shape near the declared (or default) response,
    with the strength `loss.curve_prior` (the model's `response_min_slope` keeps it from
    flattening or inverting any range of contrast).
  * `subset_index_maps`: the frame index maps that turn a window into a smaller one,
    filled at its new edges like a clip edge (data_pipeline.clips.window_indices).
"""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import clips
from data_pipeline import tone_calibration
from dealthdr_jax.models import fgma as fgma_lib
from dealthdr_jax.models import response as resp
from dealthdr_jax.models import warp as warp_lib

MU = resp.np_response.MU
WELL_EXPOSED_LOW = resp.np_response.WELL_EXPOSED_LOW
WELL_EXPOSED_HIGH = resp.np_response.WELL_EXPOSED_HIGH


def normalise_by_target(pred: jnp.ndarray, target: jnp.ndarray, eps: float = 1e-8
                        ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Divides both by the target's per-sample maximum.

  Args:
    pred, target: [B, H, W, 3] linear HDR (≥ 0).
  Returns:
    (pred, target) / max(target) per sample: the target in [0, 1]; the prediction is not
    clipped at 1 (unlike the evaluation metrics), so a too-bright prediction still gets
    a gradient.
  """
  peak = jnp.max(target, axis=(1, 2, 3), keepdims=True)
  scale = 1.0 / jnp.maximum(peak, eps)
  return jnp.maximum(pred * scale, 0.0), target * scale


def hdr_loss(pred: jnp.ndarray, target: jnp.ndarray, mu: float = MU,
             weights: jnp.ndarray | None = None) -> jnp.ndarray:
  """μ-law L1 of DESIGN.md §5. pred, target: [B, H, W, 3] linear HDR → scalar.

  weights: optional [B, H, W, 1] pixel weights (a weighted mean; 0 where they sum to 0).
  """
  p, t = normalise_by_target(pred.astype(jnp.float32), target.astype(jnp.float32))
  return _pixel_mean(jnp.abs(resp.mu_law(p, mu) - resp.mu_law(t, mu)), weights)


def _pixel_mean(err: jnp.ndarray, weights: jnp.ndarray | None) -> jnp.ndarray:
  """Mean of err [B, H, W, 3], weighted by optional [B, H, W, 1] pixel weights (0 where
  they sum to 0)."""
  if weights is None:
    return jnp.mean(err)
  weights = jnp.broadcast_to(weights.astype(jnp.float32), err.shape[:-1] + (1,))
  return jnp.sum(err * weights) / jnp.maximum(3.0 * jnp.sum(weights), 1e-12)


def prediction_difference(pred: jnp.ndarray, other: jnp.ndarray, target: jnp.ndarray,
                          mu: float = MU, weights: jnp.ndarray | None = None) -> jnp.ndarray:
  """μ-law L1 between two predictions of one window, both scaled by the target's peak
  (as `hdr_loss` scales a prediction): the mirror-consistency and distillation terms.

  Args:
    pred: [B, H, W, 3] linear HDR.
    other: [B, H, W, 3] linear HDR of the same window, e.g. the output on the mirrored
      window mirrored back, or a teacher's.
    target: [B, H, W, 3] the ground truth, for the scale only.
    weights: optional [B, H, W, 1] pixel weights (a weighted mean, as in `hdr_loss`).
  Returns:
    scalar: 0 where the two predictions agree.
  """
  p, _ = normalise_by_target(pred.astype(jnp.float32), target.astype(jnp.float32))
  q, _ = normalise_by_target(other.astype(jnp.float32), target.astype(jnp.float32))
  return _pixel_mean(jnp.abs(resp.mu_law(p, mu) - resp.mu_law(q, mu)), weights)


def downsample_flow(flow: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """Area-averages a flow field to (height, width) and rescales its vectors.

  Args:
    flow: [..., H, W, 2] in pixels of the (H, W) grid; H, W multiples of height, width.
  Returns:
    [..., height, width, 2] in pixels of the (height, width) grid.
  """
  *lead, h, w, _ = flow.shape
  if h % height or w % width:
    raise ValueError(f"flow of size {h}x{w} cannot be area-downsampled to {height}x{width}")
  fy, fx = h // height, w // width
  pooled = flow.reshape(*lead, height, fy, width, fx, 2).mean(axis=(-4, -2))
  return pooled * jnp.array([1.0 / fx, 1.0 / fy], flow.dtype)


def downsample_weights(weights: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """Area-averages per-pixel weights [..., H, W] to [..., height, width] (H, W multiples)."""
  *lead, h, w = weights.shape
  return weights.astype(jnp.float32).reshape(*lead, height, h // height, width,
                                             w // width).mean(axis=(-3, -1))


def flow_pyramid_loss(pyramid: list[jnp.ndarray], gt_flow: jnp.ndarray,
                      valid: jnp.ndarray | None = None) -> jnp.ndarray:
  """Mean end-point error over the levels of a flow pyramid.

  Args:
    pyramid: coarse → fine, each [B, M, h, w, 2] in pixels of its level (the model's
      `aux["flow_pyramid"]`).
    gt_flow: [B, M, H, W, 2] reference → neighbour flow at full resolution (H, W
      multiples of every level's size).
    valid: optional [B, M, H, W] weights (e.g. 1 - occlusion), downsampled like the flow.
  Returns:
    scalar: the average over levels of the (weighted) mean EPE of that level, in pixels
    of that level.
  """
  gt_flow = gt_flow.astype(jnp.float32)
  errors = []
  for flow in pyramid:
    h, w = flow.shape[-3:-1]
    gt = downsample_flow(gt_flow, h, w)
    epe = jnp.sqrt(jnp.sum((flow.astype(jnp.float32) - gt) ** 2, axis=-1) + 1e-9)
    if valid is None:
      errors.append(jnp.mean(epe))
    else:
      weight = downsample_weights(valid, h, w)
      errors.append(jnp.sum(epe * weight) / jnp.maximum(jnp.sum(weight), 1.0))
  return jnp.mean(jnp.stack(errors))


def attention_match_loss(tokens: dict, gt_flow: jnp.ndarray, visible: jnp.ndarray | None,
                         window: int) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
  """Teaches FGMA's attention where the match is.

  A selected query at p, whose window is centred at c, has its ground-truth match at
  p + flow_gt(p), i.e. at offset o = p + flow_gt(p) - c in the window. Where o is inside the
  window (|o_x|, |o_y| ≤ window // 2) and p is visible in the neighbour, the target is o
  spread bilinearly over the window's pixels, and the loss is the cross-entropy of the
  heads' mean softmax weights against it: minimal when the attention puts its weight on
  the match (and its expected offset, `fgma.expected_offsets`, is o).

  Args:
    tokens: FGMA's tokens at one level (`fgma.FGMA` with_tokens): "selected" [N, k],
      "weights" [N, k, heads, window²], "centres" [N, k, 2] (x, y).
    gt_flow: [N, h, w, 2] ground-truth flow at that level's scale (pixels of the level).
    visible: optional [N, h, w] weights in [0, 1] (1 - occlusion, at the level's scale).
    window: FGMA's window side.
  Returns:
    (loss, share of selected tokens whose match is in reach, share of those where the
    heads' mean weight peaks at the window pixel nearest the match): scalars.
  """
  w = gt_flow.shape[2]
  selected = tokens["selected"]
  take = lambda x: fgma_lib.gather_tokens(x.astype(jnp.float32), selected)
  position = jnp.stack([selected % w, selected // w], -1).astype(jnp.float32)     # [N, k, 2]
  offset = position + take(gt_flow) - tokens["centres"]                          # [N, k, 2]
  grid = fgma_lib.window_grid(window)                                            # [w², 2]
  tent = jnp.prod(jax.nn.relu(1.0 - jnp.abs(offset[..., None, :] - grid)), axis=-1)  # [N, k, w²]
  reach = jnp.all(jnp.abs(offset) <= window // 2, axis=-1).astype(jnp.float32)  # [N, k]
  weight = reach if visible is None else reach * take(visible)
  attention = jnp.mean(tokens["weights"].astype(jnp.float32), axis=-2)           # [N, k, w²]
  cross_entropy = -jnp.sum(tent * jnp.log(attention + 1e-6), axis=-1)
  total = jnp.maximum(jnp.sum(weight), 1.0)
  hit = (jnp.argmax(attention, -1) == jnp.argmax(tent, -1)).astype(jnp.float32)
  return (jnp.sum(cross_entropy * weight) / total, jnp.mean(reach),
          jax.lax.stop_gradient(jnp.sum(hit * weight) / total))


def flow_weight(step, initial: float, final: float, decay_steps: int) -> jnp.ndarray:
  """Cosine decay of the flow-loss weight from `initial` to `final` over `decay_steps`."""
  if decay_steps <= 0:
    return jnp.asarray(final, jnp.float32)
  frac = jnp.clip(jnp.asarray(step, jnp.float32) / decay_steps, 0.0, 1.0)
  return final + (initial - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def well_exposed_mask(ldr: jnp.ndarray, low: float = WELL_EXPOSED_LOW,
                      high: float = WELL_EXPOSED_HIGH) -> jnp.ndarray:
  """[..., H, W, 3] LDR → [..., H, W, 1] float: 1 where every channel is in (low, high)."""
  ok = jnp.all((ldr > low) & (ldr < high), axis=-1, keepdims=True)
  return ok.astype(jnp.float32)


def unrecorded_mask(frames: jnp.ndarray, stops: jnp.ndarray,
                    clipped: float = tone_calibration.CLIPPED,
                    tolerance: float = clips.SAME_EXPOSURE_STOPS) -> jnp.ndarray:
  """Where no frame of the window records the scene: [B, T, H, W, 3] LDR in [0, 1] and
  [B, T] stops → [B, H, W, 1] float, 1 where every shortest exposure of the window has a
  channel at or above `clipped` (as `evaluation.headroom.unrecorded` for a window whose
  shortest frames are all nearest the reference, e.g. any window of radius 1)."""
  stops = stops.astype(jnp.float32)
  shortest = stops <= jnp.min(stops, axis=1, keepdims=True) + tolerance      # [B, T]
  hit = jnp.max(frames, axis=-1) >= clipped                                 # [B, T, H, W]
  return jnp.all(hit | ~shortest[:, :, None, None], axis=1)[..., None].astype(jnp.float32)


def reexposure_comparison(hdr: jnp.ndarray, frames: jnp.ndarray, stops: jnp.ndarray,
                          flow: jnp.ndarray | None = None, response: str = "gamma2.2",
                          low: float = WELL_EXPOSED_LOW, high: float = WELL_EXPOSED_HIGH,
                          curve: jnp.ndarray | None = None,
                          frame_weights: jnp.ndarray | None = None
                          ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
  """What `reexposure_loss` compares: the predicted HDR frame rendered to every frame of
  the window, the observed frames placed on the reference, and where they count.

  For the reference frame r: `response(clip(H · 2**stops_r))` vs `frames[:, r]`. For each
  neighbour j (when `flow` is given): the neighbour warped to the reference by the flow,
  `warp(frames[:, j], flow_j)`, vs `response(clip(H · 2**stops_j))`. Pixels count where
  the observed (warped) LDR is well exposed and the warp stays inside the image.

  Args:
    hdr: [B, H, W, 3] predicted linear HDR of the reference (§3 units).
    frames: [B, T, H, W, 3] observed LDR in [0, 1], reference at T // 2.
    stops: [B, T] exposures in stops (the same units the model saw).
    flow: optional [B, T-1, H, W, 2] reference → neighbour flow (neighbours in frame
      order, skipping the reference), e.g. the model's `aux["flow"]`.
    response: the clip's camera response.
    curve: optional [K+1] knots of the model's response calibration (aux
      "response_curve"): the model reads `curve(LDR)`, so its output is rendered through
      `response` and then the curve's inverse before the comparison. The comparison stays
      in observed-LDR units, where the curve cannot shrink the error by flattening.
    frame_weights: optional [B, T] weight of each frame of the window (frame order), e.g.
      1 only for the frames the prediction did not see (`stage2_step`'s left-out
      re-exposure): a frame the model saw can be matched by copying its noise, one it did
      not see only by predicting the scene.
  Returns:
    (predicted, observed, mask): [B, K, H, W, 3], [B, K, H, W, 3] and [B, K, H, W, 1]
    (stop-gradient), K = 1 (reference only) or T, the reference first, then the
    neighbours in frame order.
  """
  b, t, h, w, _ = frames.shape
  r = t // 2
  hdr = hdr.astype(jnp.float32)
  expo = 2.0 ** stops.astype(jnp.float32)                                  # [B, T]

  def rendered(i):
    ldr = resp.apply_response(hdr * expo[:, i, None, None, None], response)
    return ldr if curve is None else resp.invert_curve(ldr, curve)

  observed = [frames[:, r]]
  predicted = [rendered(r)]
  inside = [jnp.ones((b, h, w, 1), jnp.float32)]
  order = [r]
  if flow is not None:
    gy, gx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                          jnp.arange(w, dtype=jnp.float32), indexing="ij")
    for k, j in enumerate(i for i in range(t) if i != r):
      f = flow[:, k].astype(jnp.float32)
      observed.append(warp_lib.warp(frames[:, j], f, border="edge"))
      predicted.append(rendered(j))
      x, y = gx + f[..., 0], gy + f[..., 1]
      inside.append(((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1))
                    .astype(jnp.float32)[..., None])
      order.append(j)
  observed = jnp.stack(observed, 1)                                         # [B, K, H, W, 3]
  predicted = jnp.stack(predicted, 1)
  inside = jnp.stack(inside, 1)
  if frame_weights is not None:
    inside = inside * frame_weights.astype(jnp.float32)[:, jnp.asarray(order), None, None, None]
  mask = jax.lax.stop_gradient(well_exposed_mask(observed, low, high) * inside)
  return predicted, observed, mask


def reexposure_loss(hdr: jnp.ndarray, frames: jnp.ndarray, stops: jnp.ndarray,
                    flow: jnp.ndarray | None = None, response: str = "gamma2.2",
                    low: float = WELL_EXPOSED_LOW, high: float = WELL_EXPOSED_HIGH,
                    curve: jnp.ndarray | None = None,
                    frame_weights: jnp.ndarray | None = None) -> jnp.ndarray:
  """Re-exposure consistency of a predicted HDR frame with the observed LDR window: the
  masked mean L1 of `reexposure_comparison`'s rendered − observed (same arguments).

  Returns:
    scalar: masked mean L1 in LDR units.
  """
  predicted, observed, mask = reexposure_comparison(
      hdr, frames, stops, flow, response, low, high, curve, frame_weights)
  err = jnp.abs(predicted - observed) * mask
  return jnp.sum(err) / jnp.maximum(3.0 * jnp.sum(mask), 1.0)


def curve_roughness(curve: jnp.ndarray) -> jnp.ndarray:
  """Mean squared difference of neighbouring log-slopes of a `response.curve_knots`
  curve ([K+1] knots; for softmax increments, the differences of neighbouring logits)."""
  log_slope = jnp.log(jnp.maximum(jnp.diff(curve.astype(jnp.float32)), 1e-12))
  return jnp.mean(jnp.diff(log_slope) ** 2)


def curve_prior(curve: jnp.ndarray) -> jnp.ndarray:
  """Distance of a `response.curve_knots` curve ([K+1] knots) from the identity, i.e. of
  the calibrated response from the declared (or default) one, up to a scale.

  The mean squared distance, in LDR units, of the knots from the best-fitting multiple of
  the identity: 0 at the start of stage 2, 0.01 for a shape 0.1 away everywhere. Shape
  only, because a scale of the curve is an exposure scale of the radiance (for a gamma
  response), which re-exposure cannot see and `curve_roughness` already fixes; a prior on
  it would bias the radiance.
  """
  k = curve.shape[0] - 1
  identity = jnp.linspace(0.0, 1.0, k + 1, dtype=jnp.float32)
  curve = curve.astype(jnp.float32)
  scale = jnp.sum(curve * identity) / jnp.sum(identity * identity)
  return jnp.mean((curve - scale * identity) ** 2)


def subset_index_maps(radius: int, period: int | None = None) -> np.ndarray:
  """Frame index maps that shrink a window of 2r+1 frames to a sub-window.

  Each map keeps a contiguous sub-window `[r-a, r+b]` (0 ≤ a, b ≤ r, at least one
  neighbour kept, at least one dropped) and fills the dropped positions as at a clip edge
  (`data_pipeline.clips.window_indices`: mirrored, or with an exposure `period` the
  nearest kept frame of the slot's own exposure). `frames[:, map]` is then the input the
  model would see there. With a period, only sub-windows that still hold a whole exposure
  cycle are kept (a clip of at least one cycle never shows the model fewer exposures);
  when none does (a window of exactly one cycle), the mirrored maps.

  Args:
    radius: r ≥ 1.
    period: frames per exposure cycle (`data_pipeline.patterns.period`), or None.
  Returns:
    [K, 2r+1] int32 index maps, K ≥ 1.
  """
  maps = []
  for a, b in itertools.product(range(radius + 1), repeat=2):
    if a + b == 0 or (a, b) == (radius, radius):
      continue
    n = a + b + 1
    if period is not None and n < period:
      continue
    maps.append([radius - a + i for i in clips.window_indices(n, a, radius, period)])
  if not maps:  # The window is one cycle (3 exposures, radius 1): mirror as before.
    return subset_index_maps(radius)
  return np.asarray(maps, np.int32)
