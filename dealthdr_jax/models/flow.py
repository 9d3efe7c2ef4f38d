"""Coarse-to-fine pyramid optical flow (SpyNet family), trained from scratch.

Inputs are exposure-matched, response-encoded images (the reference re-exposed to the
neighbour's exposure), so brightness differences between exposures do not masquerade as
motion. Each level refines the upsampled coarser flow with a residual predicted from
`[reference, warped neighbour, flow]`; every level has its own weights.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from dealthdr_jax.models import layers
from dealthdr_jax.models import warp as warp_lib


class FlowLevel(nn.Module):
  """Residual flow at one level. x: [N, h, w, 2C+2] → [N, h, w, 2]."""
  channels: Sequence[int]
  kernel: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    for i, c in enumerate(self.channels):
      x = layers.ConvAct(c, self.kernel, dtype=self.dtype, name=f"conv{i}")(x)
    # Zero-initialised output: an untrained level leaves the coarser flow unchanged.
    out = nn.Conv(2, (self.kernel, self.kernel), padding="SAME", dtype=self.dtype,
                  kernel_init=nn.initializers.zeros, name="out")(x)
    return out.astype(jnp.float32)


class PyramidFlow(nn.Module):
  """Estimates flow from `ref` to `nbr` at `levels` scales.

  Attributes:
    levels: number of pyramid levels.
    finest_log2: the finest level works at 1/2**finest_log2 of the input resolution.
    channels: hidden channels of each level's conv stack.
    kernel: conv kernel size.
  """
  levels: int
  finest_log2: int
  channels: Sequence[int]
  kernel: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ref: jnp.ndarray, nbr: jnp.ndarray) -> list[jnp.ndarray]:
    """Flow from `ref` to `nbr`.

    Args:
      ref: [N, H, W, C] float32, H and W divisible by 2**(finest_log2 + levels - 1).
      nbr: [N, H, W, C] float32.
    Returns:
      flows, coarse to fine: `levels` arrays [N, H/2**l, W/2**l, 2] float32 in pixels of
      their own level, l = finest_log2 + levels - 1 down to finest_log2.
    """
    pyramid = [(ref, nbr)]
    for _ in range(self.finest_log2 + self.levels - 1):
      r, n = pyramid[-1]
      pyramid.append((layers.avg_pool2(r), layers.avg_pool2(n)))
    flows = []
    flow = None
    for level in reversed(range(self.finest_log2, self.finest_log2 + self.levels)):
      r, n = pyramid[level]
      if flow is None:
        flow = jnp.zeros(r.shape[:3] + (2,), jnp.float32)
      else:
        flow = warp_lib.resize_flow(flow, r.shape[1], r.shape[2])
      warped = warp_lib.warp(n, flow, border="edge")
      x = jnp.concatenate([r, warped, flow], axis=-1)
      flow = flow + FlowLevel(self.channels, self.kernel, self.dtype, name=f"level{level}")(x)
      flows.append(flow)
    return flows
