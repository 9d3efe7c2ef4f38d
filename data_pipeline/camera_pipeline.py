"""A real camera's image pipeline (raw sensor → ISP → file), sampled per clip.

`camera.capture` models a camera as noise + a response curve on RGB. Real cameras write
what this module renders (issue 12), for a frame of exposed scene light
`x = H · 2**stops` (DESIGN.md §3, linear BT.709 RGB):

  1. sensor colour: camera RGB `M⁻¹ x` (`M`, the camera's colour matrix, maps
     white-balanced camera RGB to BT.709; its rows sum to 1 so neutral stays neutral), then
     the channel sensitivities under the scene light: raw = camera RGB / g, with the
     white-balance gains g = (g_r, 1, g_b) > 1 (green is the most sensitive channel);
  2. Bayer mosaic (`pattern` RGGB / BGGR / GRBG / GBRG): one colour per photosite;
  3. Poisson-Gaussian noise on the photosites (`camera.add_sensor_noise`): under neutral
     light red and blue photosites collect 1/g of green's signal, so after the white-balance
     gain their noise is larger — noise differs per channel;
  4. black level and raw clipping: code = black + (1 − black)·signal, clipped to the white
     level, quantised to `raw_bits`; the ISP subtracts the black level and clips at 0;
  5. demosaicing (bilinear, or OpenCV's edge-aware): neighbouring pixels share
     photosites, so the noise becomes spatially correlated colour noise;
  6. white balance (× g), highlight clipping at the sensor white (so clipped highlights stay
     neutral instead of turning magenta), colour matrix M, clip to [0, 1];
  7. optional in-camera processing: chroma denoising (a Gaussian on the colour-difference
     channels) and sharpening (unsharp mask on luma);
  8. tone curve (`ToneCurve`): a base response (gamma 2.2 / sRGB / sigmoid, as
     `camera.CameraResponse`) followed by a contrast S-curve (`contrast` 1 = none);
  9. the file: 8-bit JPEG (quality `jpeg_quality`, OpenCV's 4:2:0 encoder) or 16-bit.

`sample_settings(rng, ranges)` draws one camera; `PipelineRanges()` are the training
ranges, `HELD_OUT_RANGES` a disjoint set of cameras for testing (curves, gains and JPEG
levels never drawn in training).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np

from data_pipeline import camera

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
DEMOSAIC = ("bilinear", "edge_aware")
# OpenCV names Bayer layouts by the second row's second and third pixels: the layout
# "RGGB" (R at (0, 0)) is cv2's BayerBG (checked by the tests on flat colours).
_CV2_CODES = {"RGGB": ("BayerBG",), "BGGR": ("BayerRG",), "GRBG": ("BayerGB",),
              "GBRG": ("BayerGR",)}


def bayer_masks(pattern: str, height: int, width: int) -> np.ndarray:
  """[H, W, 3] bool: which channel each photosite of `pattern` samples."""
  if pattern not in PATTERNS:
    raise ValueError(f"unknown Bayer pattern {pattern!r}; expected one of {PATTERNS}")
  index = {"R": 0, "G": 1, "B": 2}
  masks = np.zeros((height, width, 3), bool)
  for k, ch in enumerate(pattern):
    masks[k // 2::2, k % 2::2, index[ch]] = True
  return masks


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
  """[H, W, 3] → [H, W] Bayer image (each photosite keeps its channel)."""
  masks = bayer_masks(pattern, *rgb.shape[:2])
  return (rgb * masks).sum(-1).astype(np.float32)


def demosaic(raw: np.ndarray, pattern: str, method: str = "bilinear") -> np.ndarray:
  """[H, W] Bayer image in [0, 1] → [H, W, 3] float32 RGB (H and W even).

  "bilinear": each missing sample is the mean of its nearest same-colour neighbours
  (normalised convolution, reflected borders); "edge_aware": OpenCV's edge-aware
  demosaicing (on 16-bit codes). (OpenCV's VNG takes 8-bit input only, which would
  posterise linear raw shadows, so it is not offered.)
  """
  if method not in DEMOSAIC:
    raise ValueError(f"unknown demosaic method {method!r}; expected one of {DEMOSAIC}")
  h, w = raw.shape
  if h % 2 or w % 2:
    raise ValueError(f"a Bayer image needs even sides, got {h}x{w}")
  if method == "bilinear":
    masks = bayer_masks(pattern, h, w).astype(np.float32)
    kernel = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], np.float32)
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):
      num = cv2.filter2D(raw * masks[..., c], -1, kernel, borderType=cv2.BORDER_REFLECT_101)
      den = cv2.filter2D(masks[..., c], -1, kernel, borderType=cv2.BORDER_REFLECT_101)
      out[..., c] = np.where(masks[..., c] > 0, raw, num / np.maximum(den, 1e-6))
    return out
  codes = np.round(np.clip(raw, 0, 1) * 65535).astype(np.uint16)
  cv_name = _CV2_CODES[pattern][0]
  bgr = cv2.cvtColor(codes, getattr(cv2, f"COLOR_{cv_name}2BGR_EA"))
  return bgr[..., ::-1].astype(np.float32) / 65535.0


def s_curve(y: np.ndarray, contrast: float) -> np.ndarray:
  """Monotone contrast S-curve on [0, 1]: `y^c / (y^c + (1 − y)^c)` (c = 1: identity)."""
  y = np.clip(np.asarray(y, np.float32), 0.0, 1.0)
  if contrast == 1.0:
    return y
  a, b = y ** np.float32(contrast), (1.0 - y) ** np.float32(contrast)
  return (a / np.maximum(a + b, 1e-12)).astype(np.float32)


def s_curve_inverse(z: np.ndarray, contrast: float) -> np.ndarray:
  """Inverse of `s_curve` (it is the S-curve of contrast 1/c)."""
  return s_curve(z, 1.0 / contrast)


@dataclasses.dataclass(frozen=True)
class ToneCurve:
  """A camera tone curve: a base response, then a contrast S-curve; monotone, f(0) = 0,
  f(1) = 1."""
  base: camera.CameraResponse = camera.CameraResponse()
  contrast: float = 1.0

  def apply(self, linear: np.ndarray) -> np.ndarray:
    return s_curve(self.base.apply(linear), self.contrast)

  def linearise(self, encoded: np.ndarray) -> np.ndarray:
    return self.base.linearise(s_curve_inverse(encoded, self.contrast))


def random_colour_matrix(rng: np.random.Generator, diagonal: tuple[float, float]
                         ) -> np.ndarray:
  """[3, 3] camera-to-BT.709 matrix: diagonal in `diagonal`, negative off-diagonals, rows
  summing to 1 (neutral stays neutral). Diagonally dominant, so invertible, with a
  non-negative inverse: every scene colour gives non-negative camera RGB."""
  m = np.zeros((3, 3), np.float64)
  for i in range(3):
    d = rng.uniform(*diagonal)
    split = rng.dirichlet([2.0, 2.0])
    off = [j for j in range(3) if j != i]
    m[i, i] = d
    m[i, off[0]], m[i, off[1]] = -(d - 1.0) * split
  return m.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
  """One camera (module docstring); `jpeg_quality` 0 = 16-bit output."""
  wb_gains: tuple[float, float] = (2.0, 1.6)  # (red, blue); green is 1.
  colour_matrix: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0),
                                                  (0.0, 0.0, 1.0))
  pattern: str = "RGGB"
  black_level: float = 0.0625  # Of the raw white level (64 of 1023 at 10 bits).
  raw_bits: int = 12
  demosaic: str = "bilinear"
  chroma_denoise: float = 0.0  # Gaussian sigma (pixels) on colour differences; 0 = off.
  sharpen: float = 0.0  # Unsharp-mask amount on luma (sigma 1 px); 0 = off.
  tone: ToneCurve = ToneCurve()
  jpeg_quality: int = 90

  def __post_init__(self):
    if self.pattern not in PATTERNS or self.demosaic not in DEMOSAIC:
      raise ValueError(f"pattern {self.pattern!r} / demosaic {self.demosaic!r} unknown")
    if not 0.0 <= self.black_level < 0.5:
      raise ValueError(f"black_level must be in [0, 0.5), got {self.black_level}")
    if self.jpeg_quality and not 1 <= self.jpeg_quality <= 100:
      raise ValueError(f"jpeg_quality must be in [1, 100] or 0, got {self.jpeg_quality}")
    if min(self.wb_gains) <= 0:
      raise ValueError(f"white-balance gains must be positive, got {self.wb_gains}")

  @property
  def gains(self) -> np.ndarray:
    return np.array([self.wb_gains[0], 1.0, self.wb_gains[1]], np.float32)

  @property
  def matrix(self) -> np.ndarray:
    return np.asarray(self.colour_matrix, np.float32)

  @property
  def output_bits(self) -> int:
    return 8 if self.jpeg_quality else 16

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out["tone"] = {**self.tone.base.to_json(), "contrast": self.tone.contrast}
    return out


@dataclasses.dataclass(frozen=True)
class PipelineRanges:
  """What `sample_settings` draws from (the training cameras)."""
  wb_red: tuple[float, float] = (1.6, 2.6)
  wb_blue: tuple[float, float] = (1.3, 2.2)
  matrix_diagonal: tuple[float, float] = (1.2, 1.9)
  black_level: tuple[float, ...] = (0.0, 0.03125, 0.0625)
  raw_bits: tuple[int, ...] = (10, 12, 14)
  demosaic: tuple[str, ...] = DEMOSAIC
  chroma_denoise: tuple[float, float] = (0.0, 2.0)  # Uniform; below 0.5 means off.
  sharpen: tuple[float, float] = (0.0, 0.8)  # Uniform; below 0.1 means off.
  # The base curve is the camera's nominal one (what a clip's meta.json declares, so
  # clip readers know it); the S-curve on top is what nobody declares.
  responses: tuple[str, ...] = ("gamma2.2", "srgb")
  contrast: tuple[float, float] = (1.0, 1.5)
  jpeg_quality: tuple[int, int] = (80, 95)  # Inclusive.
  jpeg_fraction: float = 0.7  # The rest are 16-bit.


# Cameras never drawn in training: other gains, a stronger colour matrix, harder and
# softer tone curves, JPEG qualities outside the training range.
HELD_OUT_RANGES = PipelineRanges(
    wb_red=(2.6, 3.2), wb_blue=(2.2, 2.8), matrix_diagonal=(1.9, 2.3), contrast=(1.5, 1.8),
    jpeg_quality=(70, 79), jpeg_fraction=1.0)


def sample_settings(rng: np.random.Generator, ranges: PipelineRanges = PipelineRanges()
                    ) -> PipelineSettings:
  """One camera from `ranges`."""
  denoise = float(rng.uniform(*ranges.chroma_denoise))
  sharpen = float(rng.uniform(*ranges.sharpen))
  jpeg = rng.random() < ranges.jpeg_fraction
  return PipelineSettings(
      wb_gains=(float(rng.uniform(*ranges.wb_red)), float(rng.uniform(*ranges.wb_blue))),
      colour_matrix=tuple(map(tuple, random_colour_matrix(rng, ranges.matrix_diagonal)
                              .tolist())),
      pattern=str(rng.choice(PATTERNS)),
      black_level=float(rng.choice(ranges.black_level)),
      raw_bits=int(rng.choice(ranges.raw_bits)),
      demosaic=str(rng.choice(ranges.demosaic)),
      chroma_denoise=denoise if denoise >= 0.5 else 0.0,
      sharpen=sharpen if sharpen >= 0.1 else 0.0,
      tone=ToneCurve(camera.sample_response(rng, ranges.responses),
                     float(rng.uniform(*ranges.contrast))),
      jpeg_quality=int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
      if jpeg else 0)


def sensor_raw(exposed: np.ndarray, settings: PipelineSettings) -> np.ndarray:
  """[H, W, 3] exposed scene light (BT.709, 1 = white) → [H, W, 3] raw channel signals
  before the mosaic (step 1)."""
  camera_rgb = exposed @ np.linalg.inv(settings.matrix).T
  return (camera_rgb / settings.gains).astype(np.float32)


def isp(raw_mosaic: np.ndarray, settings: PipelineSettings) -> np.ndarray:
  """[H, W] raw photosite signal (noisy, 1 = white, before black level) → [H, W, 3]
  display-referred RGB in [0, 1] before the file encoding (steps 4–8)."""
  levels = np.float32(2**settings.raw_bits - 1)
  black = np.float32(settings.black_level)
  code = np.clip(black + (1.0 - black) * raw_mosaic, 0.0, 1.0)
  code = np.round(code * levels) / levels
  signal = np.clip((code - black) / (1.0 - black), 0.0, 1.0).astype(np.float32)
  rgb = demosaic(signal, settings.pattern, settings.demosaic)
  rgb = np.minimum(rgb * settings.gains, 1.0)  # Highlights clip at the sensor white.
  rgb = np.clip(rgb @ settings.matrix.T, 0.0, 1.0).astype(np.float32)
  if settings.chroma_denoise > 0 or settings.sharpen > 0:
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    chroma = rgb - luma[..., None]
    if settings.chroma_denoise > 0:
      chroma = cv2.GaussianBlur(chroma, (0, 0), settings.chroma_denoise)
    if settings.sharpen > 0:
      luma = luma + settings.sharpen * (luma - cv2.GaussianBlur(luma, (0, 0), 1.0))
    rgb = np.clip(luma[..., None] + chroma, 0.0, 1.0).astype(np.float32)
  return settings.tone.apply(rgb)


def encode_file(display: np.ndarray, settings: PipelineSettings) -> np.ndarray:
  """[H, W, 3] display-referred [0, 1] → what the file holds, as float32 [0, 1] code
  values: a JPEG round trip (8-bit) or 16-bit quantisation (step 9)."""
  if not settings.jpeg_quality:
    return camera.quantise(display, 16)
  codes = np.round(np.clip(display, 0, 1) * 255).astype(np.uint8)
  ok, data = cv2.imencode(".jpg", codes[..., ::-1],
                          [cv2.IMWRITE_JPEG_QUALITY, int(settings.jpeg_quality)])
  if not ok:
    raise RuntimeError("OpenCV could not encode a JPEG")
  decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
  return decoded.astype(np.float32) / np.float32(255.0)


def capture(rng: np.random.Generator, radiance: np.ndarray, stops: float,
            noise: camera.NoiseParams | None, settings: PipelineSettings) -> np.ndarray:
  """One frame through the whole pipeline (the counterpart of `camera.capture`).

  Args:
    radiance: [H, W, 3] float32, §3 units, integrated over the exposure (H, W even).
    stops: the frame's exposure in stops.
    noise: the sensor's Poisson-Gaussian noise (None: noiseless).
  Returns:
    [H, W, 3] float32 in [0, 1]: the file's code values (8-bit JPEG or 16-bit).
  """
  h, w = radiance.shape[:2]
  if h % 2 or w % 2:
    raise ValueError(f"the camera pipeline needs even frame sides (Bayer), got {h}x{w}")
  exposed = np.asarray(radiance, np.float32) * np.float32(2.0**stops)
  raw = mosaic(sensor_raw(exposed, settings), settings.pattern)
  raw = camera.add_sensor_noise(rng, raw, noise)
  return encode_file(isp(raw, settings), settings)
