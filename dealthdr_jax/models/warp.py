"""Bilinear backward warping by a dense flow field, with explicit border handling.

Convention (DESIGN.md §3): `flow[..., y, x] = (dx, dy)` maps reference pixel p=(x, y) to
p + flow in the source image, so `warp(source, flow)[p] = source(p + flow[p])`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

BORDERS = ("edge", "zeros")


def warp(image: jnp.ndarray, flow: jnp.ndarray, border: str = "edge") -> jnp.ndarray:
  """Samples `image` at `p + flow[p]` with bilinear interpolation.

  Args:
    image: [N, H, W, C] source image or features.
    flow: [N, H, W, 2] (dx, dy) in pixels, float32.
    border: "edge" repeats the border pixels outside the image; "zeros" treats everything
      outside as 0 (per interpolation corner, like `map_coordinates(mode="constant")`).
  Returns:
    [N, H, W, C], dtype of `image`.
  """
  if border not in BORDERS:
    raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
  if image.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2:
    raise ValueError(f"warp expects image [N,H,W,C] and flow [N,H,W,2], got "
                     f"{image.shape} and {flow.shape}")
  if image.shape[:3] != flow.shape[:3]:
    raise ValueError(f"image {image.shape} and flow {flow.shape} differ in [N, H, W]")
  n, h, w, c = image.shape
  flow = flow.astype(jnp.float32)
  gy, gx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  x = gx[None] + flow[..., 0]
  y = gy[None] + flow[..., 1]
  x0 = jnp.floor(x)
  y0 = jnp.floor(y)
  fx = x - x0
  fy = y - y0
  x0 = x0.astype(jnp.int32)
  y0 = y0.astype(jnp.int32)
  flat = image.reshape(n, h * w, c)

  def corner(yi, xi, weight):
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    idx = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
    vals = jnp.take_along_axis(flat, idx.reshape(n, h * w, 1), axis=1).reshape(n, h, w, c)
    if border == "zeros":
      weight = jnp.where(inside, weight, 0.0)
    return vals.astype(jnp.float32) * weight[..., None]

  out = (corner(y0, x0, (1 - fx) * (1 - fy)) + corner(y0, x0 + 1, fx * (1 - fy))
         + corner(y0 + 1, x0, (1 - fx) * fy) + corner(y0 + 1, x0 + 1, fx * fy))
  return out.astype(image.dtype)


def resize_flow(flow: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """Resizes a flow field and rescales its vectors to the new pixel size.

  Args:
    flow: [N, h, w, 2] in pixels of the (h, w) grid.
  Returns:
    [N, height, width, 2] in pixels of the (height, width) grid.
  """
  n, h, w, _ = flow.shape
  if (h, w) == (height, width):
    return flow
  resized = jax.image.resize(flow, (n, height, width, 2), method="linear")
  scale = jnp.array([width / w, height / h], jnp.float32)
  return resized * scale


def forward_backward_error(flow_fwd: jnp.ndarray, flow_bwd: jnp.ndarray) -> jnp.ndarray:
  """|f_fwd(p) + f_bwd(p + f_fwd(p))| in pixels: 0 where the two flows agree.

  Args:
    flow_fwd: [N, H, W, 2] reference → neighbour.
    flow_bwd: [N, H, W, 2] neighbour → reference.
  Returns:
    [N, H, W] float32.
  """
  round_trip = flow_fwd + warp(flow_bwd, flow_fwd, border="edge")
  return jnp.sqrt(jnp.sum(round_trip ** 2, axis=-1) + 1e-12)


def straddle_flow(flow_ab: jnp.ndarray, flow_ba: jnp.ndarray, fraction
                  ) -> jnp.ndarray:
  """The displacement from frame a to frame b of what a frame between them shows, from
  their mutual flows, under constant velocity.

  The frame lies `fraction` of the way from a to b (1/2: half-way). Its content at p is at
  p - fraction·d(p) in a and p + (1 - fraction)·d(p) in b. This solves d(p) = f_ab(p -
  fraction·d) and d(p) = -f_ba(p + (1 - fraction)·d) by three fixed-point steps from d =
  f_ab (resp. -f_ba) at p, and averages the two answers. The flow from that frame to b is
  (1 - fraction)·d, to a it is -fraction·d.

  Args:
    flow_ab: [N, H, W, 2] a → b on a's grid; flow_ba: [N, H, W, 2] b → a on b's grid.
    fraction: scalar or [N] in (0, 1).
  Returns:
    [N, H, W, 2] float32, in the same pixels, on the in-between frame's grid.
  """
  if flow_ab.shape != flow_ba.shape or flow_ab.ndim != 4 or flow_ab.shape[-1] != 2:
    raise ValueError(f"straddle_flow expects two flows [N,H,W,2] of one shape, got "
                     f"{flow_ab.shape} and {flow_ba.shape}")
  flow_ab = flow_ab.astype(jnp.float32)
  flow_ba = flow_ba.astype(jnp.float32)
  to_a = jnp.broadcast_to(jnp.asarray(fraction, jnp.float32).reshape(-1, 1, 1, 1),
                          (flow_ab.shape[0], 1, 1, 1))
  to_b = 1.0 - to_a
  from_a, from_b = flow_ab, -flow_ba
  for _ in range(3):
    from_a = warp(flow_ab, -to_a * from_a, border="edge")
    from_b = -warp(flow_ba, to_b * from_b, border="edge")
  return (from_a + from_b) / 2


def round_trip_weight(miss: jnp.ndarray, scale: float) -> jnp.ndarray:
  """exp(-miss / scale): 1 where the forward and backward flows agree, e^-1 where their
  round trip (`forward_backward_error`, in the same pixels as `scale`) misses by `scale`.

  Args:
    miss: [N, H, W] round-trip error; scale: > 0.
  Returns:
    [N, H, W] float32 in (0, 1], without gradient (a weight for `fill_flow`).
  """
  if not scale > 0:
    raise ValueError(f"round_trip_weight needs a scale > 0, got {scale}")
  return jnp.exp(-jax.lax.stop_gradient(miss.astype(jnp.float32)) / scale)


def fill_flow(flow: jnp.ndarray, reliability: jnp.ndarray) -> jnp.ndarray:
  """Replaces unreliable flow by the reliable flow around it (push-pull interpolation).

  Saturated or black regions show no texture to match, so the flow there is a guess; the
  motion of the well-exposed pixels around them is the better estimate (the same rule as
  the DIS baseline's `baselines.fill_flow`, here smooth and differentiable). The weights
  and weighted flow are summed over 2×2 blocks up to a single pixel; going back down,
  each level keeps its own weighted mean where its mean weight is ≥ 0.5 and blends in
  the coarser estimate where it is lower.

  Args:
    flow: [N, H, W, 2] in pixels.
    reliability: [N, H, W] in [0, 1]; pixels ≥ 0.5 keep their flow.
  Returns:
    [N, H, W, 2] float32. Where nothing is reliable, the mean flow fills the gaps.
  """
  if flow.ndim != 4 or flow.shape[-1] != 2 or reliability.shape != flow.shape[:3]:
    raise ValueError(f"fill_flow expects flow [N,H,W,2] and reliability [N,H,W], got "
                     f"{flow.shape} and {reliability.shape}")
  flow = flow.astype(jnp.float32)
  # A small floor: with nothing reliable, every pixel counts and the mean flow results.
  weight = jax.lax.stop_gradient(reliability.astype(jnp.float32))[..., None] + 1e-4
  sums = [(flow * weight, weight)]                  # level l (2^l-pixel blocks): Σw·f, Σw
  while max(sums[-1][1].shape[1:3]) > 1:
    sums.append(tuple(jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1),
                                            "SAME") for x in sums[-1]))
  estimate = sums[-1][0] / sums[-1][1]
  for level in range(len(sums) - 2, -1, -1):
    weighted, total = sums[level]
    n, h, w, _ = total.shape
    coarse = jax.image.resize(estimate, (n, h, w, 2), method="linear")
    keep = jnp.clip(2.0 * total / 4.0 ** level, 0.0, 1.0)    # Mean weight ≥ 0.5: own flow.
    estimate = keep * weighted / total + (1.0 - keep) * coarse
  return estimate
