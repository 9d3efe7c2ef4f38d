"""Tone-curve self-calibration: the camera's undeclared contrast, measured from the clip.

A clip declares its base response (gamma 2.2, sRGB, linear: `clips`), but real cameras
add a contrast S-curve on top that nobody declares (`camera_pipeline.ToneCurve`), and an
S-curve read as if it were the declared curve bends every radiance the reconstruction
computes: the held-out cameras of issue 12 lose about 3 dB PSNR-T to it, whatever the
merge. Alternating exposures measure it: two frames `k = 2**Δstops` apart see the same
scene, so their code values are tied by the intensity mapping function
`τ(v) = f(k · f⁻¹(v))` of the camera's curve `f`, and only the true curve makes the frames
agree.

The frames need not be aligned. Code values are compared by their distributions (a
percentile of the short frame maps to the same percentile of the long one: motion moves
content around but keeps most of its histogram; Grossberg & Nayar, "Determining the camera
response from images: what is knowable?", PAMI 2003). For each pair of consecutive frames
≥ 0.5 stops apart and each channel (white balance and colour matrix act before the curve,
so τ is the same for every channel), 199 percentiles are matched; pairs of values where
the short frame is near black or the long one is clipped say nothing and are dropped. The
contrast `c` of `f = s_curve_c ∘ declared` is the grid value (0.5–3, log-spaced) with the
least squared mismatch.

Large motion and heavy blur change histograms too, and then even a camera without an
S-curve fits `c` ≈ 1.1–1.2 slightly better than 1. A real S-curve explains the pairs far
better than the declared curve (the held-out cameras: mismatch ÷ 15 to ÷ 500; no curve,
hard motion: at most ÷ 2.2), so the fit is used only when it cuts the mismatch at least
`MIN_IMPROVEMENT`-fold; otherwise the declared curve stands (contrast 1).

`undo_contrast(frames, c)` then re-encodes the frames as the declared curve would have
written them; every method (the models, the baselines, stage 2) reads them so
(`clips.open_clip(tone_calibration=…)`, `dealthdr infer --tone-calibration`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline import camera_pipeline
from data_pipeline import response as response_lib

CONTRAST_GRID = np.exp(np.linspace(np.log(0.5), np.log(3.0), 241)).astype(np.float64)
PERCENTILES = np.linspace(0.5, 99.5, 199)
BLACK = 0.03  # Short-frame code values at or below this are noise and black level.
CLIPPED = 0.95  # Long-frame code values at or above this are clipped.
MIN_PAIR_STOPS = 0.5
MIN_SAMPLES = 60  # Matched percentiles (over pairs and channels) a fit needs.
MIN_IMPROVEMENT = 4.0  # The fit must cut the mismatch this many times to be used.
MAX_FRAMES = 16  # Frames a clip is measured on (spread over its length).


@dataclasses.dataclass(frozen=True)
class ContrastFit:
  """What `estimate_contrast` measured.

  Attributes:
    contrast: the S-curve contrast to undo (1 = the declared curve stands).
    fitted: the best grid contrast, used or not.
    improvement: mismatch at contrast 1 ÷ mismatch at `fitted` (≥ 1; 1 with no data).
    samples: matched percentiles the fit used.
    reason: why no fit is used (contrast 1, or one given by the caller); "" when it is.
  """
  contrast: float = 1.0
  fitted: float = 1.0
  improvement: float = 1.0
  samples: int = 0
  reason: str = ""

  def to_json(self) -> dict:
    return {"contrast": round(self.contrast, 4), "fitted": round(self.fitted, 4),
            "improvement": round(self.improvement, 2), "samples": self.samples,
            **({"reason": self.reason} if self.reason else {})}


def _encode(linear: np.ndarray, contrast: float, response: str) -> np.ndarray:
  return camera_pipeline.s_curve(response_lib.apply_response(linear, response), contrast)


def _decode(encoded: np.ndarray, contrast: float, response: str) -> np.ndarray:
  return response_lib.linearise(camera_pipeline.s_curve_inverse(encoded, contrast), response)


def matched_percentiles(frames: np.ndarray, stops: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Percentiles of every (shorter, longer) consecutive pair, per channel.

  Args:
    frames: [T, H, W, 3] float in [0, 1], response-encoded.
    stops: [T] exposures in stops.
  Returns:
    (short, long, gain): [P, 199] percentiles of the shorter and the longer frame of each
    pair and channel, and [P, 1] their exposure ratio 2**Δstops.
  """
  short, long, gain = [], [], []
  for t in range(len(frames) - 1):
    a, b = (t, t + 1) if stops[t] < stops[t + 1] else (t + 1, t)
    if stops[b] - stops[a] < MIN_PAIR_STOPS:
      continue
    for ch in range(3):
      short.append(np.percentile(frames[a][..., ch], PERCENTILES))
      long.append(np.percentile(frames[b][..., ch], PERCENTILES))
      gain.append(2.0 ** float(stops[b] - stops[a]))
  if not short:
    empty = np.zeros((0, len(PERCENTILES)))
    return empty, empty, np.zeros((0, 1))
  return np.array(short), np.array(long), np.array(gain)[:, None]


def estimate_contrast(frames: np.ndarray, stops, response: str = "gamma2.2") -> ContrastFit:
  """The undeclared S-curve contrast of a clip's camera (module docstring).

  Args:
    frames: [T, H, W, 3] float in [0, 1] (or uint8/uint16 codes), as the camera wrote
      them; T ≥ 2 with alternating exposures.
    stops: [T] exposure of each frame in stops.
    response: the declared base response (`response.RESPONSES`).
  """
  frames = np.asarray(frames)
  if frames.dtype.kind in "ui":
    frames = frames.astype(np.float32) / np.float32(np.iinfo(frames.dtype).max)
  stops = np.asarray(stops, np.float64)
  if frames.ndim != 4 or frames.shape[-1] != 3 or len(stops) != len(frames):
    raise ValueError(f"frames must be [T, H, W, 3] with one stop per frame, got "
                     f"{frames.shape} and {len(stops)} stops")
  short, long, gain = matched_percentiles(frames.astype(np.float32), stops)
  if not len(short):
    return ContrastFit(reason=f"no two consecutive frames ≥ {MIN_PAIR_STOPS} stops apart")
  valid = (short > BLACK) & (long > BLACK) & (long < CLIPPED)
  samples = int(valid.sum())
  if samples < MIN_SAMPLES:
    return ContrastFit(samples=samples,
                       reason=f"{samples} usable percentiles (< {MIN_SAMPLES}): too dark, "
                              f"too clipped or too flat")
  mismatch = np.array([np.mean(((_encode(gain * _decode(short, c, response), c, response)
                                 - long) ** 2)[valid]) for c in CONTRAST_GRID])
  best = int(np.argmin(mismatch))
  identity = float(np.interp(0.0, np.log(CONTRAST_GRID), mismatch))
  improvement = identity / max(float(mismatch[best]), 1e-12)
  fitted = float(CONTRAST_GRID[best])
  if improvement < MIN_IMPROVEMENT:
    return ContrastFit(1.0, fitted, improvement, samples,
                       f"the fit explains the exposures only {improvement:.2f}× better than "
                       f"the declared curve (< {MIN_IMPROVEMENT:g}×)")
  return ContrastFit(fitted, fitted, improvement, samples)


def spread_indices(num_frames: int, count: int = MAX_FRAMES) -> list[int]:
  """Up to `count` frame indices spread over a clip, consecutive in pairs (each pair is one
  short and one long frame)."""
  if num_frames <= count:
    return list(range(num_frames))
  starts = np.linspace(0, num_frames - 2, count // 2).round().astype(int)
  return sorted({int(i) for s in starts for i in (s, s + 1)})


def undo_contrast(frames: np.ndarray, contrast: float) -> np.ndarray:
  """Frames re-encoded without the S-curve: [..., 3] in [0, 1] → float32 [..., 3]."""
  frames = np.asarray(frames, np.float32)
  return frames if contrast == 1.0 else camera_pipeline.s_curve_inverse(frames, contrast)
