"""`jnp` twins of `data_pipeline.response` (camera responses, §3 radiance units), and the
learnable monotone curve that stage 2 uses to calibrate an unknown camera's response.

Tested against the NumPy versions in tests/test_warp_response.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from data_pipeline import response as np_response

RESPONSES = np_response.RESPONSES
GAMMA = np_response.GAMMA


def linearise(ldr: jnp.ndarray, response: str = "gamma2.2") -> jnp.ndarray:
  """Inverse camera response. ldr: [..., 3] in [0, 1] → linear [..., 3] in [0, 1]."""
  x = jnp.clip(ldr, 0.0, 1.0)
  if response == "gamma2.2":
    # Gradient of x**2.2 is finite at 0; no epsilon needed.
    return x ** GAMMA
  if response == "srgb":
    return jnp.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
  if response == "linear":
    return x
  raise ValueError(f"unknown camera response {response!r}; expected one of {RESPONSES}")


def apply_response(linear: jnp.ndarray, response: str = "gamma2.2") -> jnp.ndarray:
  """Camera response. linear: [..., 3] (clipped to [0, 1]) → encoded [..., 3] in [0, 1]."""
  x = jnp.clip(linear, 0.0, 1.0)
  if response == "gamma2.2":
    # x**(1/2.2) has an infinite slope at 0; keep gradients finite.
    return jnp.where(x > 1e-6, jnp.maximum(x, 1e-6) ** (1.0 / GAMMA), x * (1e-6 ** (1 / GAMMA - 1)))
  if response == "srgb":
    safe = jnp.maximum(x, 0.0031308)
    return jnp.where(x <= 0.0031308, 12.92 * x, 1.055 * safe ** (1 / 2.4) - 0.055)
  if response == "linear":
    return x
  raise ValueError(f"unknown camera response {response!r}; expected one of {RESPONSES}")


def mu_law(hdr: jnp.ndarray, mu: float = np_response.MU) -> jnp.ndarray:
  """`T(x) = log(1 + mu x) / log(1 + mu)` (DESIGN.md §5)."""
  return jnp.log1p(mu * hdr) / jnp.log1p(mu)


def _smoothstep(lo: float, hi: float, x: jnp.ndarray) -> jnp.ndarray:
  t = jnp.clip((x - lo) / (hi - lo), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def well_exposedness(value: jnp.ndarray) -> jnp.ndarray:
  """Smooth weight in [0, 1] of an encoded LDR value (e.g. a pixel's largest channel):
  0 when saturated (≥ 0.97) or black (≤ 0.02), 1 between 0.20 and 0.80 (the same ramps as
  the baselines' merge)."""
  return (1.0 - _smoothstep(0.80, 0.97, value)) * _smoothstep(0.02, 0.20, value)


def curve_knots(logits: jnp.ndarray, min_slope: float = 0.0) -> jnp.ndarray:
  """[K] logits → [K+1] values of a monotone curve on [0, 1] at x = 0, 1/K, …, 1.

  The curve's increments are `min_slope / K + (1 - min_slope) · softmax(logits)`, so it
  starts at 0, ends at 1 and its slope is at least `min_slope` (in [0, 1)) everywhere: with
  `min_slope` > 0 it can neither flatten nor invert any range of the input's contrast.
  Zero logits give the identity.
  """
  if not 0.0 <= min_slope < 1.0:
    raise ValueError(f"min_slope must be in [0, 1), got {min_slope}")
  k = logits.shape[-1]
  steps = min_slope / k + (1.0 - min_slope) * jax.nn.softmax(logits.astype(jnp.float32))
  return jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(steps)])


def apply_curve(x: jnp.ndarray, knots: jnp.ndarray) -> jnp.ndarray:
  """The piecewise-linear curve through (i/K, knots[i]) at x (clipped to [0, 1])."""
  k = knots.shape[0] - 1
  pos = jnp.clip(x, 0.0, 1.0) * k
  i = jnp.clip(jnp.floor(pos), 0, k - 1).astype(jnp.int32)
  lo, hi = knots[i], knots[i + 1]
  return lo + (pos - i) * (hi - lo)


def invert_curve(y: jnp.ndarray, knots: jnp.ndarray) -> jnp.ndarray:
  """Inverse of `apply_curve` (on flat stretches, their left end); differentiable in both
  `y` and `knots`."""
  k = knots.shape[0] - 1
  y = jnp.clip(y, 0.0, 1.0)
  i = jnp.clip(jnp.searchsorted(knots, y, side="right") - 1, 0, k - 1)
  lo, hi = knots[i], knots[i + 1]
  frac = jnp.clip((y - lo) / jnp.maximum(hi - lo, 1e-12), 0.0, 1.0)
  return (i + frac) / k
