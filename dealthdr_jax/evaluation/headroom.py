"""How much of PSNR-T lies where no exposure recorded the scene, and what guessing it could gain.

On clips with lights in view, PSNR-T's MSE is mostly in pixels clipped in every frame of the
shortest exposure nearest in time (`unrecorded`, the pixels `metrics.psnr_t_recoverable`
leaves out). Alignment and fusion cannot change them; only the guess at their radiance can.
`headroom` scores one prediction against its ground truth and bounds that guess from above
with two oracles that read the ground truth (diagnostics only, never a method):
  * "psnr_t_best_scale": the unrecorded pixels multiplied by the one factor (per frame, on a
    grid of `SCALES`) that maximises PSNR-T: a perfect guess at how bright each frame's lights
    are, keeping the prediction's shape inside them;
  * "psnr_t_gt_filled": the unrecorded pixels replaced by the ground truth: a perfect guess.
"""
from __future__ import annotations

import numpy as np

from data_pipeline import clips
from data_pipeline import response
from data_pipeline import tone_calibration
from dealthdr_jax.evaluation import metrics

# Factors tried by the best-scale oracle: 1/2 to 64, in quarter stops.
SCALES = tuple(float(s) for s in np.exp2(np.arange(-4, 25) / 4.0))
SHORTEST_TOLERANCE_STOPS = clips.SAME_EXPOSURE_STOPS


def nearest_shortest(stops, t: int) -> np.ndarray:
  """Indices of the frames of the shortest exposure nearest in time to frame t (t itself if
  it is one; both neighbours when they are equally near).

  Args:
    stops: [T] exposure of each frame in stops.
  """
  stops = np.asarray(stops, np.float64)
  shortest = np.flatnonzero(stops <= stops.min() + SHORTEST_TOLERANCE_STOPS)
  distance = np.abs(shortest - t)
  return shortest[distance == distance.min()]


def clipped(frame: np.ndarray) -> np.ndarray:
  """[H, W] bool: a channel at or above `tone_calibration.CLIPPED` (stored code values).

  Args:
    frame: [H, W, 3] LDR in [0, 1].
  """
  return np.asarray(frame).max(-1) >= tone_calibration.CLIPPED


def unrecorded(frames: np.ndarray, stops, t: int) -> np.ndarray:
  """[H, W] bool: the pixels of frame t clipped in every `nearest_shortest` frame.

  Args:
    frames: [T, H, W, 3] LDR in [0, 1] (a clip's frames or a model's input window).
    stops: [T] their exposures in stops.
  """
  return np.logical_and.reduce([clipped(frames[i]) for i in nearest_shortest(stops, t)])


def headroom(pred: np.ndarray, gt: np.ndarray, unrecorded_mask: np.ndarray,
             scales=SCALES) -> dict:
  """PSNR-T of a prediction, where its error lies, and the two oracles of the module doc.

  Args:
    pred, gt: [H, W, 3] linear HDR.
    unrecorded_mask: [H, W] bool (`unrecorded`).
    scales: factors the best-scale oracle tries.
  Returns:
    {"psnr_t", "psnr_t_rec" (None if every pixel is unrecorded), "unrecorded_fraction",
     "unrecorded_error_share" (of PSNR-T's MSE; 0 for a perfect prediction),
     "psnr_t_best_scale", "best_scale", "psnr_t_gt_filled"}.
  """
  mask = np.asarray(unrecorded_mask, bool)
  if mask.shape != np.shape(gt)[:2]:
    raise ValueError(f"mask shape {mask.shape} differs from the image's {np.shape(gt)[:2]}")
  tp, tg = metrics.tonemapped_normalised(pred, gt)
  sq = (tp.astype(np.float64) - tg) ** 2
  total = sq.size
  outside = float(sq[~mask].sum())
  inside = float(sq[mask].sum())
  best_scale, best_sse = 1.0, inside
  if mask.any():
    peak = float(np.max(gt))
    norm = np.float32(1.0 / peak) if peak > 0 else np.float32(1.0)
    p, g = np.asarray(pred, np.float32)[mask], tg[mask].astype(np.float64)
    for s in scales:
      sse = float(((response.mu_law(np.clip(p * (s * norm), 0.0, 1.0)) - g) ** 2).sum())
      if sse < best_sse:
        best_scale, best_sse = float(s), sse
  return {"psnr_t": metrics.psnr(tp, tg),
          "psnr_t_rec": metrics.psnr(tp[~mask], tg[~mask]) if (~mask).any() else None,
          "unrecorded_fraction": float(mask.mean()),
          "unrecorded_error_share": inside / (inside + outside) if inside + outside else 0.0,
          "psnr_t_best_scale": metrics.psnr_from_mse((outside + best_sse) / total),
          "best_scale": best_scale, "psnr_t_gt_filled": metrics.psnr_from_mse(outside / total)}
