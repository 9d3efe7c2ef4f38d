"""The simulated camera: exposure integration, sensor noise, response curve, quantisation.

Signal chain for one frame with exposure `e = 2**stops` (DESIGN.md §3) over the exposure
interval [t0, t1]:

  1. integrate: the scene radiance averaged over sub-frame instants in [t0, t1]
     (`integrate_exposure`); a static scene gives exactly the sharp image;
  2. expose: `x = H_blurred * e` (1.0 = sensor white point = full well at this gain);
  3. noise (`add_sensor_noise`): Poisson shot noise on `x * W` electrons, `W` = electrons
     at white, plus Gaussian read noise; in normalised units variance `a*x + b` with
     `a = 1/W`, `b = (read_noise/W)**2` (the Poisson-Gaussian model of darktable's
     noise profiles);
  4. clip to [0, 1] (full well / white point);
  5. camera response (`CameraResponse`): gamma 2.2, sRGB, linear (from
     `data_pipeline.response`) or a randomised sigmoid;
  6. quantise to 8/10/12 bits (`quantise`).

Noise parameter ranges (defaults of `NoiseRanges`), from published sensor figures:
  - full well: ~4–6 ke- for 1 µm smartphone pixels, 20–50 ke- for APS-C, 60–100 ke- for
    full frame (manufacturer / photonstophotos.net data); default log-uniform 4k–60k e-.
  - analog gain (ISO / base ISO): 1–16, log-uniform. Electrons at white `W = full_well/gain`.
  - read noise (input-referred): 1–6 e- rms at base gain for modern CMOS, falling at high
    gain (the ISO-invariance / dual-gain behaviour); default uniform [1, 6] / sqrt(gain).
  This spans a = 1/W ≈ 1.7e-5 … 4e-3 and b ≈ 3e-10 … 4e-5, the range of darktable's
  noiseprofiles.json a/b values for raw data normalised to [0, 1] (a ~ 1e-5 … 1e-2 from
  base to high ISO). Noise is independent per channel (no demosaic correlation).

Sigmoid response (the random camera curve of Chen et al. 2021, used by HDRFlow):
  f(x) = (1 + sigma) * x**n / (x**n + sigma),      f(0) = 0, f(1) = 1,
  f^-1(y) = (sigma * y / (1 + sigma - y))**(1/n),
  with n ~ N(0.65, 0.1) clipped to [0.4, 0.9] and sigma ~ N(0.6, 0.1) clipped to [0.4, 0.8].
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from data_pipeline import response as response_lib

# Every response the simulator can use; `response_id` in samples indexes this tuple.
ALL_RESPONSES = response_lib.RESPONSES + ("sigmoid",)
SIGMOID_N = (0.65, 0.1, 0.4, 0.9)  # mean, std, low, high.
SIGMOID_SIGMA = (0.6, 0.1, 0.4, 0.8)
BITS = (8, 10, 12)
# Above this many expected electrons, shot noise is drawn from its normal approximation.
_POISSON_NORMAL_SWITCH = 64.0


def sigmoid_response(x: np.ndarray, n: float, sigma: float) -> np.ndarray:
  """`f(x) = (1 + sigma) x^n / (x^n + sigma)` on x clipped to [0, 1]."""
  xn = np.clip(np.asarray(x, np.float32), 0.0, 1.0) ** np.float32(n)
  return ((1.0 + sigma) * xn / (xn + sigma)).astype(np.float32)


def sigmoid_inverse(y: np.ndarray, n: float, sigma: float) -> np.ndarray:
  """Inverse of `sigmoid_response`: `(sigma y / (1 + sigma - y))^(1/n)`, y clipped to [0, 1]."""
  y = np.clip(np.asarray(y, np.float32), 0.0, 1.0)
  return ((sigma * y / (1.0 + sigma - y)) ** np.float32(1.0 / n)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class CameraResponse:
  """A camera response curve: one of `ALL_RESPONSES`; `n`, `sigma` only for "sigmoid"."""
  name: str = "gamma2.2"
  n: float = 0.0
  sigma: float = 0.0

  def __post_init__(self):
    if self.name not in ALL_RESPONSES:
      raise ValueError(f"unknown camera response {self.name!r}; expected one of {ALL_RESPONSES}")
    if self.name == "sigmoid" and not (self.n > 0 and self.sigma > 0):
      raise ValueError(f"sigmoid response needs n > 0 and sigma > 0, got n={self.n}, "
                       f"sigma={self.sigma}")

  def apply(self, linear: np.ndarray) -> np.ndarray:
    """[..., 3] linear in [0, 1] (clipped) → encoded [0, 1]."""
    if self.name == "sigmoid":
      return sigmoid_response(linear, self.n, self.sigma)
    return response_lib.apply_response(linear, self.name)

  def linearise(self, ldr: np.ndarray) -> np.ndarray:
    """Inverse of `apply`: [..., 3] encoded [0, 1] → linear [0, 1]."""
    if self.name == "sigmoid":
      return sigmoid_inverse(ldr, self.n, self.sigma)
    return response_lib.linearise(ldr, self.name)

  @property
  def response_id(self) -> int:
    return ALL_RESPONSES.index(self.name)

  def to_json(self) -> dict:
    if self.name == "sigmoid":
      return {"response": self.name, "sigmoid_n": self.n, "sigmoid_sigma": self.sigma}
    return {"response": self.name}


def _clipped_normal(rng: np.random.Generator, spec: tuple[float, float, float, float]) -> float:
  mean, std, low, high = spec
  return float(np.clip(rng.normal(mean, std), low, high))


def parse_response(name: str) -> tuple[str, float | None, float | None]:
  """A response name → (family, n, sigma). Names are `ALL_RESPONSES` ("sigmoid" = a random
  shape per draw) or "sigmoid:N,SIGMA", one fixed sigmoid (a single camera's curve).

  Raises:
    ValueError: for an unknown family or a malformed / non-positive sigmoid shape.
  """
  family, _, shape = name.partition(":")
  if family not in ALL_RESPONSES or (shape and family != "sigmoid"):
    raise ValueError(f"unknown camera response {name!r}; expected one of {ALL_RESPONSES} "
                     "or 'sigmoid:N,SIGMA'")
  if not shape:
    return family, None, None
  try:
    n, sigma = (float(v) for v in shape.split(","))
  except ValueError:
    raise ValueError(f"camera response {name!r}: expected 'sigmoid:N,SIGMA' with two "
                     "numbers, e.g. 'sigmoid:0.6,0.5'") from None
  if not (n > 0 and sigma > 0):
    raise ValueError(f"camera response {name!r}: N and SIGMA must be positive")
  return family, n, sigma


def sample_response(rng: np.random.Generator, names: Sequence[str] = ALL_RESPONSES,
                    weights: Sequence[float] | None = None) -> CameraResponse:
  """Draws a response from `names` (with `weights`; see `parse_response`) and, for a plain
  "sigmoid", its shape."""
  names = tuple(names)
  parsed = [parse_response(name) for name in names]
  p = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
  family, n, sigma = parsed[int(rng.choice(len(names), p=p))]
  if family == "sigmoid":
    if n is None:
      n, sigma = _clipped_normal(rng, SIGMOID_N), _clipped_normal(rng, SIGMOID_SIGMA)
    return CameraResponse(family, n, sigma)
  return CameraResponse(family)


@dataclasses.dataclass(frozen=True)
class NoiseParams:
  """Sensor noise of one clip (same gain for every frame; exposure time varies).

  full_well: electrons at saturation at base gain. gain: analog gain (ISO/base ISO).
  read_noise: input-referred read noise, electrons rms.
  """
  full_well: float = 20000.0
  read_noise: float = 3.0
  gain: float = 1.0

  @property
  def white_electrons(self) -> float:
    """Electrons that reach the white point (1.0) at this gain."""
    return self.full_well / self.gain

  @property
  def a(self) -> float:
    """Shot-noise slope: variance per unit of normalised signal."""
    return 1.0 / self.white_electrons

  @property
  def b(self) -> float:
    """Signal-independent variance (read noise), normalised units."""
    return (self.read_noise / self.white_electrons) ** 2

  def variance(self, x: np.ndarray) -> np.ndarray:
    """Expected variance `a*x + b` at normalised clean signal `x` (before clipping)."""
    return self.a * np.asarray(x) + self.b

  def to_json(self) -> dict:
    return {"full_well": self.full_well, "read_noise": self.read_noise, "gain": self.gain,
            "a": self.a, "b": self.b}


@dataclasses.dataclass(frozen=True)
class NoiseRanges:
  """Ranges `sample_noise_params` draws from (see module docstring for sources)."""
  full_well: tuple[float, float] = (4000.0, 60000.0)  # log-uniform, e-.
  gain: tuple[float, float] = (1.0, 16.0)  # log-uniform.
  read_noise: tuple[float, float] = (1.0, 6.0)  # uniform, e- at base gain; / sqrt(gain).


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
  if not 0 < low <= high:
    raise ValueError(f"log-uniform range needs 0 < low <= high, got ({low}, {high})")
  return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def sample_noise_params(rng: np.random.Generator, ranges: NoiseRanges = NoiseRanges()
                        ) -> NoiseParams:
  full_well = _log_uniform(rng, *ranges.full_well)
  base_read = float(rng.uniform(*ranges.read_noise))
  gain = _log_uniform(rng, *ranges.gain)
  return NoiseParams(full_well=full_well, read_noise=base_read / np.sqrt(gain), gain=gain)


def add_sensor_noise(rng: np.random.Generator, x: np.ndarray, noise: NoiseParams | None
                     ) -> np.ndarray:
  """Poisson-Gaussian noise on the normalised linear signal (not clipped here).

  Args:
    x: [...] float, clean normalised signal `H * e` (≥ 0; 1 = white point).
    noise: the sensor; None returns `x` unchanged.
  Returns:
    [...] float32 noisy signal, variance `noise.a * x + noise.b`.
  """
  x = np.maximum(np.asarray(x, np.float32), 0.0)
  if noise is None:
    return x
  w = np.float32(noise.white_electrons)
  # Above ~1.5x white the pixel clips anyway; capping keeps Poisson draws bounded.
  lam = np.minimum(x, 4.0) * w
  small = lam < _POISSON_NORMAL_SWITCH
  electrons = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
  if small.any():
    electrons[small] = rng.poisson(lam[small]).astype(np.float32)
  electrons += np.float32(noise.read_noise) * rng.standard_normal(lam.shape, dtype=np.float32)
  out = electrons / w
  # Keep the (possibly > 4) clean value where the cap was hit: such pixels clip to 1.
  return np.where(x > 4.0, x, out).astype(np.float32)


def quantise(x01: np.ndarray, bits: int) -> np.ndarray:
  """Rounds [0, 1] values (clipped) to the `2**bits` code levels; returns float32 in [0, 1]."""
  if bits not in BITS and bits != 16:
    raise ValueError(f"bits must be one of {BITS} or 16, got {bits}")
  levels = np.float32(2**bits - 1)
  return (np.round(np.clip(np.asarray(x01, np.float32), 0.0, 1.0) * levels) / levels
          ).astype(np.float32)


def integrate_exposure(render: Callable[[float], np.ndarray], t0: float, t1: float,
                       num_samples: int) -> np.ndarray:
  """Average of `render(t)` at the midpoints of `num_samples` equal slices of [t0, t1].

  With one sample this is `render((t0 + t1) / 2)`: the sharp image at the frame instant.

  Args:
    render: time → [H, W, 3] float32 radiance.
  Returns:
    [H, W, 3] float32 time-averaged radiance.
  """
  if num_samples < 1:
    raise ValueError(f"num_samples must be ≥ 1, got {num_samples}")
  acc = None
  for k in range(num_samples):
    img = render(t0 + (k + 0.5) / num_samples * (t1 - t0))
    acc = img.astype(np.float32, copy=True) if acc is None else acc + img
  return acc / np.float32(num_samples)


def capture(rng: np.random.Generator, radiance: np.ndarray, stops: float,
            noise: NoiseParams | None, response: CameraResponse, bits: int) -> np.ndarray:
  """One LDR frame from exposure-integrated radiance (steps 2–6 of the module docstring).

  Args:
    radiance: [H, W, 3] float32, §3 units, already integrated over the exposure.
    stops: the frame's exposure in stops (e = 2**stops).
  Returns:
    [H, W, 3] float32 in [0, 1], response-encoded and quantised to `bits`.
  """
  x = np.asarray(radiance, np.float32) * np.float32(2.0**stops)
  x = np.clip(add_sensor_noise(rng, x, noise), 0.0, 1.0)
  return quantise(response.apply(x), bits)
