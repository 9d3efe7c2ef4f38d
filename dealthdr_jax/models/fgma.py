"""Flow-Guided Masked Attention (FGMA), DESIGN.md §4.

Flow alignment is cheap but wrong at occlusions, saturation and blur. FGMA keeps the
flow-warped neighbour features `F_w` everywhere except at the `k = round(ratio * N)` tokens
with the highest flow-unreliability score. Only those are **gathered**: each selected query
(reference features) attends over a `window × window` key/value patch of the neighbour
features centred on its flow-displaced position; the results are **scattered** back into
`F_w`. Compute is O(k · window² · C), so it follows the ratio: `ratio=0` is pure flow
(no attention is even traced) and `ratio=1` is attention at every token.

Window positions are integers: the centre is `round(p + flow(p))` clamped into the image,
and window pixels beyond the border repeat the border (the same rule in both paths).

`FGMA(..., dense=True)` is the reference implementation for tests: it computes the window
attention at every token, the plain way, and selects with the same mask.

With `with_tokens=True` FGMA also hands back, per selected token, where its attention
looked (its window's centre, each head's softmax weights over the window, their expected
offset and peak) and the attended features;
`FlowCorrection` turns these into a correction of the flow at those tokens, so that the
attention can move the full-resolution candidates that the reconstruction blends, not only
the features it reads (`DeAltHDR.fgma_flow_correction`).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dealthdr_jax.models import warp as warp_lib


def num_selected(ratio: float, num_tokens: int) -> int:
  """k = round(ratio * N), at least 1 when ratio > 0. `ratio` must be a Python float."""
  if not 0.0 <= ratio <= 1.0:
    raise ValueError(f"attention ratio must be in [0, 1], got {ratio}")
  if ratio == 0.0:
    return 0
  return min(num_tokens, max(1, int(round(ratio * num_tokens))))


def window_offsets(window: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(dy, dx), each [window²] int32, row-major over the window."""
  if window < 1 or window % 2 == 0:
    raise ValueError(f"FGMA window must be a positive odd number, got {window}")
  r = window // 2
  dy, dx = jnp.meshgrid(jnp.arange(-r, r + 1), jnp.arange(-r, r + 1), indexing="ij")
  return dy.reshape(-1).astype(jnp.int32), dx.reshape(-1).astype(jnp.int32)


def window_grid(window: int) -> jnp.ndarray:
  """[window², 2] float32 (x, y) offset of each window pixel from its centre, row-major."""
  dy, dx = window_offsets(window)
  return jnp.stack([dx, dy], axis=-1).astype(jnp.float32)


def gather_tokens(x: jnp.ndarray, selected: jnp.ndarray) -> jnp.ndarray:
  """Per-position values at the selected tokens.

  Args:
    x: [N, h, w, ...]; selected: [N, k] int flat indices into h·w.
  Returns:
    [N, k, ...].
  """
  n, h, w = x.shape[:3]
  index = selected.reshape(selected.shape + (1,) * (x.ndim - 3))
  return jnp.take_along_axis(x.reshape((n, h * w) + x.shape[3:]), index, axis=1)


def expected_offsets(weights: jnp.ndarray, window: int) -> jnp.ndarray:
  """Attention-weighted mean offset (dx, dy) inside the window.

  Args:
    weights: [..., H, window²] softmax weights over the window (row-major).
  Returns:
    [..., H, 2] float32 (x, y) in pixels of the feature scale: 0 for uniform weights.
  """
  return jnp.einsum("...j,jc->...c", weights.astype(jnp.float32), window_grid(window))


def token_descriptor(weights: jnp.ndarray, attended: jnp.ndarray, window: int) -> jnp.ndarray:
  """What FlowCorrection reads per token: [offsets, offsets · peak, peak, attended].

  Args:
    weights: [..., H, window²] softmax weights; attended: [..., C] the attention output.
  Returns:
    [..., 5H + C] float32.
  """
  offsets = expected_offsets(weights, window)                                   # [..., H, 2]
  peak = jnp.max(weights, axis=-1).astype(jnp.float32)                          # [..., H]
  lead = offsets.shape[:-2]
  return jnp.concatenate([offsets.reshape(lead + (-1,)),
                          (offsets * peak[..., None]).reshape(lead + (-1,)), peak,
                          attended.astype(jnp.float32)], axis=-1)


CORRECTION_INITS = ("zero", "mean_offset")


def mean_offset_init(heads: int):
  """Kernel initialiser [5·heads + C, 2] that reads the heads' mean expected offset from a
  `token_descriptor` (its first 2·heads entries): the soft argmax of the attention."""
  def init(key, shape, dtype=jnp.float32):
    del key
    kernel = jnp.zeros(shape, dtype)
    for h in range(heads):
      kernel = kernel.at[2 * h, 0].set(1.0 / heads).at[2 * h + 1, 1].set(1.0 / heads)
    return kernel
  return init


class FlowCorrection(nn.Module):
  """Flow correction at FGMA's selected tokens from where their attention looked.

  A linear map of `token_descriptor`, its output bounded to ±`max_offset` pixels of the
  feature scale by a soft clip. `start` "zero": no correction until trained (the map must
  learn to read the offsets, and the attention gets no gradient from the flow until it
  does); "mean_offset": the heads' mean expected offset from the start, so the flow's
  error teaches the attention to look at the match.
  """
  max_offset: float
  heads: int = 1
  start: str = "zero"

  @nn.compact
  def __call__(self, descriptor: jnp.ndarray) -> jnp.ndarray:
    """[N, k, D] → [N, k, 2] (x, y) correction in pixels of the feature scale."""
    if self.start not in CORRECTION_INITS:
      raise ValueError(f"FlowCorrection start must be one of {CORRECTION_INITS}, got "
                       f"{self.start!r}")
    kernel_init = (nn.initializers.zeros if self.start == "zero"
                   else mean_offset_init(self.heads))
    out = nn.Dense(2, kernel_init=kernel_init, name="offset")(descriptor.astype(jnp.float32))
    return self.max_offset * jnp.tanh(out / self.max_offset)


def window_centres(flow: jnp.ndarray, ys: jnp.ndarray, xs: jnp.ndarray, height: int,
                   width: int) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Integer window centres `round(p + flow)` clamped into the image.

  Args:
    flow: [..., 2] flow at the query positions; ys, xs: [...] int query positions.
  Returns:
    (cy, cx): [...] int32.
  """
  cx = jnp.clip(jnp.round(xs + flow[..., 0]), 0, width - 1).astype(jnp.int32)
  cy = jnp.clip(jnp.round(ys + flow[..., 1]), 0, height - 1).astype(jnp.int32)
  return cy, cx


class FGMA(nn.Module):
  """Flow-guided masked cross-attention for one neighbour at one feature scale.

  Attributes:
    heads: attention heads (must divide the feature channels).
    window: odd key/value window side.
    dense: use the dense reference path (tests only; same parameters).
    dtype: compute dtype of the projections; logits, softmax and top-k stay float32.
  """
  heads: int
  window: int
  dense: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ref_feat: jnp.ndarray, nbr_feat: jnp.ndarray, flow: jnp.ndarray,
               score: jnp.ndarray, ratio: float, window_flow: jnp.ndarray | None = None,
               with_tokens: bool = False):
    """Aligns `nbr_feat` to `ref_feat`.

    Args:
      ref_feat: [N, h, w, C] reference features (queries).
      nbr_feat: [N, h, w, C] neighbour features (keys/values), unaligned.
      flow: [N, h, w, 2] float32 reference → neighbour, in pixels of this scale.
      score: [N, h, w] float32 flow unreliability; the top `ratio` share gets attention.
      ratio: static Python float in [0, 1].
      window_flow: [N, h, w, 2] where the key/value windows are centred (default: `flow`;
        zeros for the "no flow guidance" ablation).
      with_tokens: also return the selected tokens (static).
    Returns:
      aligned: [N, h, w, C] flow-warped features with attention results at selected tokens.
      mask: [N, h, w, 1] float32, 1 at selected tokens.
      tokens (only `with_tokens`; None at ratio 0): dict with "selected" [N, k] int32 flat
        indices, "descriptor" [N, k, 5·heads + C] (`token_descriptor`), "weights"
        [N, k, heads, window²] float32 softmax weights over the window (row-major) and
        "centres" [N, k, 2] float32 (x, y) the window's centre (`window_centres`).
    """
    n, h, w, c = ref_feat.shape
    if c % self.heads:
      raise ValueError(f"FGMA: {self.heads} heads do not divide {c} feature channels")
    warped = warp_lib.warp(nbr_feat, flow, border="edge")
    if window_flow is None:
      window_flow = flow
    k = num_selected(ratio, h * w)
    if k == 0:
      empty = warped, jnp.zeros((n, h, w, 1), jnp.float32)
      return empty + (None,) if with_tokens else empty

    _, selected = jax.lax.top_k(jax.lax.stop_gradient(score).reshape(n, h * w), k)  # [N, k]
    batch = jnp.arange(n)[:, None]
    mask = jnp.zeros((n, h * w), jnp.float32).at[batch, selected].set(1.0)
    mask = mask.reshape(n, h, w, 1)

    proj = lambda name: nn.DenseGeneral((self.heads, c // self.heads), dtype=self.dtype,
                                        name=name)
    q_proj, k_proj, v_proj = proj("query"), proj("key"), proj("value")
    out_proj = nn.DenseGeneral(c, axis=(-2, -1), dtype=self.dtype, name="out")
    bias = self.param("rel_pos_bias", nn.initializers.zeros, (self.heads, self.window ** 2))

    if self.dense:
      attended, weights = self._dense(ref_feat, nbr_feat, window_flow, q_proj, k_proj, v_proj,
                                      out_proj, bias)
      aligned = jnp.where(mask > 0, attended, warped)
      if not with_tokens:
        return aligned, mask
      at_selected = lambda x: gather_tokens(x, selected)
      ys, xs = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
      cy, cx = window_centres(window_flow, ys[None], xs[None], h, w)               # [N, h, w]
      return aligned, mask, {
          "selected": selected,
          "descriptor": at_selected(token_descriptor(weights, attended, self.window)),
          "weights": at_selected(weights),
          "centres": at_selected(jnp.stack([cx, cy], -1).astype(jnp.float32))}

    # Gather the selected queries and their flow-centred key/value windows.
    nbr_flat = nbr_feat.reshape(n, h * w, c)
    queries = gather_tokens(ref_feat, selected)                                    # [N, k, C]
    sel_flow = gather_tokens(window_flow, selected)                                # [N, k, 2]
    cy, cx = window_centres(sel_flow, selected // w, selected % w, h, w)            # [N, k]
    dy, dx = window_offsets(self.window)
    wy = jnp.clip(cy[..., None] + dy, 0, h - 1)
    wx = jnp.clip(cx[..., None] + dx, 0, w - 1)
    win_idx = (wy * w + wx).reshape(n, k * self.window ** 2, 1)
    windows = jnp.take_along_axis(nbr_flat, win_idx, axis=1)
    windows = windows.reshape(n, k, self.window ** 2, c)                           # [N, k, w², C]

    q = q_proj(queries).astype(jnp.float32)                                        # [N, k, H, D]
    keys = k_proj(windows).astype(jnp.float32)                                     # [N, k, w², H, D]
    values = v_proj(windows).astype(jnp.float32)
    logits = jnp.einsum("nkhd,nkjhd->nkhj", q, keys) / jnp.sqrt(q.shape[-1]) + bias
    weights = jax.nn.softmax(logits, axis=-1)
    attended = jnp.einsum("nkhj,nkjhd->nkhd", weights, values)
    attended = out_proj(attended.astype(self.dtype)).astype(warped.dtype)          # [N, k, C]

    out = warped.reshape(n, h * w, c).at[batch, selected].set(attended)
    if not with_tokens:
      return out.reshape(n, h, w, c), mask
    return out.reshape(n, h, w, c), mask, {
        "selected": selected, "descriptor": token_descriptor(weights, attended, self.window),
        "weights": weights, "centres": jnp.stack([cx, cy], -1).astype(jnp.float32)}

  def _dense(self, ref_feat, nbr_feat, flow, q_proj, k_proj, v_proj, out_proj, bias):
    """Window attention at every token, one window offset at a time.

    Returns: attended [N, h, w, C] and the softmax weights [N, h, w, H, window²]."""
    n, h, w, c = ref_feat.shape
    ys, xs = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    cy, cx = window_centres(flow, ys[None], xs[None], h, w)                        # [N, h, w]
    q = q_proj(ref_feat).astype(jnp.float32)                                       # [N, h, w, H, D]
    keys = k_proj(nbr_feat).astype(jnp.float32)                                    # [N, h, w, H, D]
    values = v_proj(nbr_feat).astype(jnp.float32)
    batch = jnp.arange(n)[:, None, None]
    logits, gathered_values = [], []
    dys, dxs = window_offsets(self.window)
    for j in range(self.window ** 2):
      y = jnp.clip(cy + dys[j], 0, h - 1)
      x = jnp.clip(cx + dxs[j], 0, w - 1)
      k_j = keys[batch, y, x]                                                      # [N, h, w, H, D]
      logits.append(jnp.sum(q * k_j, axis=-1) / jnp.sqrt(q.shape[-1]) + bias[:, j])
      gathered_values.append(values[batch, y, x])
    weights = jax.nn.softmax(jnp.stack(logits, axis=-1), axis=-1)                  # [N, h, w, H, w²]
    attended = sum(weights[..., j, None] * gathered_values[j] for j in range(self.window ** 2))
    return out_proj(attended.astype(self.dtype)).astype(nbr_feat.dtype), weights
