"""Camera responses and the radiance convention of DESIGN.md §3, in NumPy.

An LDR frame i with exposure `e_i = 2**stops_i` relates to HDR radiance `H` by
`ldr = response(clip(H * e_i, 0, 1))`, so `H = linearise(ldr) / e_i` where frame i is well
exposed. `dealthdr_jax.models.response` holds the `jnp` twins of these functions and is
tested against them.
"""
from __future__ import annotations

import numpy as np

RESPONSES = ("gamma2.2", "srgb", "linear")
GAMMA = 2.2
# Pixels whose LDR value (any channel) lies outside this band are called badly exposed.
WELL_EXPOSED_LOW = 0.05
WELL_EXPOSED_HIGH = 0.95


def _check_response(response: str) -> None:
  if response not in RESPONSES:
    raise ValueError(f"unknown camera response {response!r}; expected one of {RESPONSES}")


def linearise(ldr: np.ndarray, response: str = "gamma2.2") -> np.ndarray:
  """Inverse camera response.

  Args:
    ldr: [..., 3] float in [0, 1], response-encoded LDR values.
    response: one of RESPONSES.
  Returns:
    [..., 3] float32 linear values in [0, 1].
  """
  _check_response(response)
  x = np.clip(np.asarray(ldr, np.float32), 0.0, 1.0)
  if response == "gamma2.2":
    return x ** GAMMA
  if response == "srgb":
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)
  return x


def apply_response(linear: np.ndarray, response: str = "gamma2.2") -> np.ndarray:
  """Camera response: linear [0, 1] → encoded [0, 1] (values are clipped first)."""
  _check_response(response)
  x = np.clip(np.asarray(linear, np.float32), 0.0, 1.0)
  if response == "gamma2.2":
    return x ** (1.0 / GAMMA)
  if response == "srgb":
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)
  return x


def exposure(stops: np.ndarray | float) -> np.ndarray:
  """`e = 2**stops` (stops relative to the clip's shortest exposure)."""
  return np.power(2.0, np.asarray(stops, np.float32))


def ldr_to_radiance(ldr: np.ndarray, stops: np.ndarray | float,
                    response: str = "gamma2.2") -> np.ndarray:
  """`linearise(ldr) / e`: the §3 radiance estimate from one frame.

  Args:
    ldr: [..., H, W, 3] float in [0, 1].
    stops: scalar or [...] matching the leading axes of `ldr`.
  """
  e = exposure(stops)
  e = np.reshape(e, np.shape(e) + (1, 1, 1)) if np.ndim(e) else e
  return linearise(ldr, response) / e


def radiance_to_ldr(radiance: np.ndarray, stops: np.ndarray | float,
                    response: str = "gamma2.2") -> np.ndarray:
  """Ideal (noise-free, unquantised) LDR of radiance `H` at exposure `stops`."""
  e = exposure(stops)
  e = np.reshape(e, np.shape(e) + (1, 1, 1)) if np.ndim(e) else e
  return apply_response(np.asarray(radiance, np.float32) * e, response)


def well_exposed(ldr: np.ndarray, low: float = WELL_EXPOSED_LOW,
                 high: float = WELL_EXPOSED_HIGH) -> np.ndarray:
  """[..., H, W] bool: every channel of the LDR pixel lies within (low, high)."""
  ldr = np.asarray(ldr)
  return np.all((ldr > low) & (ldr < high), axis=-1)


MU = 5000.0


def mu_law(hdr: np.ndarray, mu: float = MU) -> np.ndarray:
  """Tone map `T(x) = log(1 + mu x) / log(1 + mu)` of DESIGN.md §5 (x ≥ 0, typically in [0, 1])."""
  return np.log1p(mu * np.asarray(hdr, np.float32)) / np.log1p(mu)
