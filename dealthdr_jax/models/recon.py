"""Dual (short/long) encoders and the fusion/reconstruction decoder."""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dealthdr_jax.models import layers


class DualEncoder(nn.Module):
  """Feature pyramid with exposure-specific stems and a shared body.

  Short exposures are noisy and long ones blurred, so each class gets its own stem (the
  first stride-2 conv and a residual block at 1/2); deeper levels are shared. Both stems
  run on every frame and a per-frame select keeps one: the stems are cheap, and this keeps
  one program for any exposure pattern and phase.

  Attributes:
    features: channels at scales 1/2, 1/4, 1/8, ... (one level per entry).
    dual: False = one shared stem for every frame (ablation).
  """
  features: Sequence[int]
  dtype: Any = jnp.float32
  dual: bool = True

  @nn.compact
  def __call__(self, x: jnp.ndarray, is_long: jnp.ndarray) -> list[jnp.ndarray]:
    """Encodes frames.

    Args:
      x: [N, H, W, 6] `[LDR, linearise(LDR) / e]` per frame.
      is_long: [N] bool, which stem to use per frame.
    Returns:
      one array per level l: [N, H / 2**(l+1), W / 2**(l+1), features[l]].
    """
    def stem(name):
      s = layers.ConvAct(self.features[0], stride=2, dtype=self.dtype, name=f"{name}_conv")(x)
      return layers.ResBlock(self.dtype, name=f"{name}_block")(s)

    if self.dual:
      h = jnp.where(is_long[:, None, None, None], stem("long"), stem("short"))
    else:
      h = stem("shared")
    pyramid = [h]
    for level, c in enumerate(self.features[1:], start=1):
      h = layers.ConvAct(c, stride=2, dtype=self.dtype, name=f"down{level}")(h)
      h = layers.ResBlock(self.dtype, name=f"block{level}")(h)
      pyramid.append(h)
    return pyramid


# Bound of each off-centre tap of the blend filter (`Reconstruction.kernel`): enough for a
# 3×3 box (1/9) or a 5×5 one (1/25), not for an unbounded ringing kernel.
MAX_TAP = 0.25
# The brightness below which `filter_with_taps`' clamp stops shrinking, in the blend's units
# (the shortest exposure's clipping level = 1): dark pixels keep their noise averaging.
RANGE_FLOOR = 0.01


def tap_offsets(size: int) -> list[tuple[int, int]]:
  """The off-centre (dy, dx) offsets of a size×size filter, row-major."""
  r = size // 2
  return [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dy or dx]


def filter_with_taps(x: jnp.ndarray, taps: jnp.ndarray, size: int,
                     value_range: float = 0.0) -> jnp.ndarray:
  """A per-pixel filter whose taps sum to one: x + Σ_j taps_j · (x at offset j − x).

  Args:
    x: [B, H, W, C] non-negative image (edges replicated).
    taps: [B, H, W, size² − 1] weights of the off-centre offsets (`tap_offsets`); the
      centre's weight is 1 − their sum. All zero = the identity.
    size: odd filter side.
    value_range: c > 0 clamps each difference (x at offset j − x) to ±c · (the centre's
      brightest channel + RANGE_FLOOR): a light beside a recorded pixel moves it by at most
      taps_j · c of its brightness, while differences of noise (dark pixels, colour noise
      in one channel) pass as before; 0 = no clamp.
  Returns:
    [B, H, W, C].
  """
  r = size // 2
  h, w = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
  if value_range > 0:
    reach = value_range * (x.max(axis=-1, keepdims=True) + RANGE_FLOOR)
  out = x
  for j, (dy, dx) in enumerate(tap_offsets(size)):
    difference = padded[:, r + dy:r + dy + h, r + dx:r + dx + w] - x
    if value_range > 0:
      difference = jnp.clip(difference, -reach, reach)
    out = out + taps[..., j:j + 1] * difference
  return out


class Reconstruction(nn.Module):
  """Fuses reference and aligned neighbour features into linear HDR.

  A U-Net decoder over the feature levels predicts, at full resolution, softmax blending
  weights over the candidate radiances (the reference's and each aligned neighbour's
  `linearise(LDR) / e`) and a per-pixel log-gain bounded to ±`max_log_gain`. Output =
  blend · exp(gain): non-negative by construction and exactly scale-equivariant in the
  candidates. Where every candidate is clipped the blend is only a lower bound of the
  radiance (an emitter may be hundreds of times brighter); the gain is what can raise it.

  With `kernel` k > 0 the blend is first filtered, per pixel, by a k×k kernel whose taps
  sum to one (`filter_with_taps`): the head predicts the k² − 1 off-centre taps, each
  bounded by ±MAX_TAP, from a zero-initialised conv (`head_kernel`), so a model trained
  without it starts exactly where it was. A blend of candidates cannot remove the noise
  that all of them share (a short reference where the long neighbours are clipped) or a
  long reference's blur where no candidate is sharp; the kernel can average or sharpen
  over space. Still linear in the candidates (scale-equivariant); negative values that
  sharpening could give are clipped at 0.

  Attributes:
    features: channels per level, as in DualEncoder.
    head_features: channels of the full-resolution head.
    kernel: side of the per-pixel blend filter; 0 = none.
    max_log_gain: bound of the natural-log gain, `m · tanh(x / m)` of the head's output x
      (≈ x near 0, so models trained with one bound can be fine-tuned with another).
    kernel_range: the kernel's clamp of its differences (`filter_with_taps`' value_range);
      0 = none.
  """
  features: Sequence[int]
  head_features: int
  dtype: Any = jnp.float32
  kernel: int = 0
  max_log_gain: float = 2.0
  kernel_range: float = 0.0

  @nn.compact
  def __call__(self, ref_feats, aligned, masks, full_res, candidates, prior=None):
    """Reconstructs HDR.

    Args:
      ref_feats: per level, [B, h, w, C_l] reference features.
      aligned: per level, [B, M, h, w, C_l] aligned features of the M neighbours.
      masks: per level, [B, M, h, w, 1] FGMA selection masks.
      full_res: [B, H, W, Cf] full-resolution guidance (reference encoding and candidates).
      candidates: [B, T, H, W, 3] float32 candidate radiances, reference first.
      prior: optional [B, H, W, T] float32 added to the blend logits.
    Returns:
      hdr: [B, H, W, 3] float32 ≥ 0; blend weights [B, H, W, T].
    """
    fused = []
    for level, (r, a, m) in enumerate(zip(ref_feats, aligned, masks)):
      b, nb, h, w, c = a.shape
      a = jnp.moveaxis(a, 1, 3).reshape(b, h, w, nb * c)
      m = jnp.moveaxis(m, 1, 3).reshape(b, h, w, nb)
      x = jnp.concatenate([r, a, m.astype(r.dtype)], axis=-1)
      fused.append(layers.ConvAct(self.features[level], dtype=self.dtype,
                                  name=f"fuse{level}")(x))
    d = layers.ResBlock(self.dtype, name=f"dec{len(fused) - 1}")(fused[-1])
    for level in reversed(range(len(fused) - 1)):
      skip = fused[level]
      d = layers.upsample(d, skip.shape[1], skip.shape[2])
      d = layers.ConvAct(self.features[level], kernel=1, dtype=self.dtype,
                         name=f"up{level}")(d) + skip
      d = layers.ResBlock(self.dtype, name=f"dec{level}")(d)
    d = layers.ConvAct(self.head_features, kernel=1, dtype=self.dtype, name="head_reduce")(d)
    d = layers.upsample(d, full_res.shape[1], full_res.shape[2])
    x = jnp.concatenate([d, full_res.astype(d.dtype)], axis=-1)
    x = layers.ConvAct(self.head_features, dtype=self.dtype, name="head")(x)
    num_candidates = candidates.shape[1]
    out = nn.Conv(num_candidates + 3, (3, 3), padding="SAME", dtype=self.dtype,
                  kernel_init=nn.initializers.zeros, name="head_out")(x).astype(jnp.float32)
    logits, log_gain = out[..., :num_candidates], out[..., num_candidates:]
    # Untrained (zero) logits favour the reference 4:1 over each neighbour.
    logits = logits + jnp.zeros((num_candidates,), jnp.float32).at[0].set(jnp.log(4.0))
    if prior is not None:
      logits = logits + prior
    weights = jax.nn.softmax(logits, axis=-1)                             # [B, H, W, T]
    blend = jnp.einsum("bhwt,bthwc->bhwc", weights, candidates)
    if self.kernel:
      taps = nn.Conv(self.kernel ** 2 - 1, (3, 3), padding="SAME", dtype=self.dtype,
                     kernel_init=nn.initializers.zeros, name="head_kernel")(x)
      taps = MAX_TAP * jnp.tanh(taps.astype(jnp.float32))
      blend = jnp.maximum(filter_with_taps(blend, taps, self.kernel, self.kernel_range),
                          0.0)
    bound = float(self.max_log_gain)
    hdr = blend * jnp.exp(bound * jnp.tanh(log_gain / bound))
    return hdr, weights
