"""HDR quality metrics of DESIGN.md §8: PSNR-L, PSNR-T, SSIM-T, a temporal flicker error and
a dark-region colour-cast error.

Protocol (as in DeepHDRVideo / HDRFlow):
  1. `normalise`: prediction and ground truth are both divided by the ground truth's maximum
     (per frame, over all pixels and channels) and clipped to [0, 1]. A ground truth whose
     maximum is 0 is left unscaled (divided by 1).
  2. PSNR-L: PSNR of the normalised linear images, data range 1, MSE over all pixels and
     the three channels.
  3. PSNR-T, SSIM-T: the same after the μ-law tone map `T(x) = log(1+μx)/log(1+μ)`, μ=5000
     (`data_pipeline.response.mu_law`).

Choices the literature leaves open, fixed here:
  * Identical images give MSE = 0; PSNR is then reported as `PSNR_CAP_DB` (100 dB), and
    every PSNR is capped there, so means and JSON values stay finite.
  * SSIM is Wang et al. (2004): Gaussian window 11×11, σ=1.5, K1=0.01, K2=0.03, data range
    1, statistics over the 'valid' windows only (no padding), computed per RGB channel and
    averaged over the SSIM map and the channels. Images smaller than 11 pixels on a side
    use the largest odd window that fits (σ unchanged).
  * Dark chroma error (`dark_chroma_error`, "dark_chroma"): colour casts in the shadows,
    which PSNR hardly weighs. Over the darkest `DARK_FRACTION` (10 %) of the pixels by GT
    luminance (BT.709 weights; pixels of zero GT luminance left out), the mean Euclidean
    distance between the predicted and the true rg chromaticity (r, g) / (r + g + b).
    Scale-free; 0 for a perfect colour; a neutral grey shown with a visible orange cast is
    ~0.03–0.05. A predicted black pixel counts as neutral.
  * Flicker (`flicker`): for consecutive frames t-1, t, the mean absolute difference between
    the predicted and the true tone-mapped temporal change,
    `mean |(T(P_t) - T(P_{t-1})) - (T(G_t) - T(G_{t-1}))|`, with each frame normalised by its
    own ground truth's maximum as above. It is 0 for a perfect prediction, and also for a
    prediction whose error is constant in time; it grows with errors that change from frame
    to frame (the flicker viewers see). Units are those of T (0..1); a sequence of n frames
    has n-1 values and the first frame has none.

  * PSNR-T on recoverable pixels (`psnr_t_recoverable`, "psnr_t_rec"): PSNR-T with the MSE
    taken only over pixels that the clip's frames hold unclipped somewhere
    (`evaluate.unrecoverable_masks`: a pixel clipped, at the same position, in every frame
    of the clip's shortest exposure nearest in time is unrecoverable; under motion the
    neighbours' clipped regions move, so the mask errs on the side of keeping pixels).
    Normalisation and tone map are PSNR-T's. With emitters thousands of times brighter
    than the scene, PSNR-T's MSE is mostly in pixels that no exposure recorded, where any
    method can only guess; this column scores what alignment and fusion can change.
    None where a frame has no recoverable pixel or the clip's LDR frames are not at hand.

`jnp` twins (`normalise_jnp`, `psnr_jnp`, `psnr_t_jnp`, `psnr_l_jnp`) serve validation
during training; they batch over leading axes and are tested against the NumPy versions.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from data_pipeline import response
from dealthdr_jax.models import response as jnp_response

MU = response.MU
PSNR_CAP_DB = 100.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
METRIC_NAMES = ("psnr_t", "psnr_l", "ssim_t", "dark_chroma")
DARK_FRACTION = 0.1


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  pred = np.asarray(pred, np.float32)
  gt = np.asarray(gt, np.float32)
  if pred.shape != gt.shape:
    raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
  if gt.ndim != 3 or gt.shape[-1] != 3:
    raise ValueError(f"expected [H, W, 3] images, got shape {gt.shape}")
  if not (np.isfinite(pred).all() and np.isfinite(gt).all()):
    raise ValueError("prediction and ground truth must be finite")
  return pred, gt


def normalise(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Divides both images by the ground truth's maximum and clips them to [0, 1].

  Args:
    pred: [H, W, 3] float, predicted linear HDR (§3 units).
    gt: [H, W, 3] float, ground-truth linear HDR.
  Returns:
    (pred, gt), each [H, W, 3] float32 in [0, 1].
  """
  pred, gt = _check_pair(pred, gt)
  peak = float(gt.max())
  scale = np.float32(1.0 / peak) if peak > 0 else np.float32(1.0)
  return np.clip(pred * scale, 0.0, 1.0), np.clip(gt * scale, 0.0, 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  """PSNR in dB for data range 1, capped at `PSNR_CAP_DB` (also the value for MSE = 0).

  Args:
    a, b: same-shape float arrays, values in [0, 1].
  """
  return psnr_from_mse(float(np.mean((np.asarray(a, np.float64) -
                                      np.asarray(b, np.float64)) ** 2)))


def psnr_from_mse(mse: float) -> float:
  """`psnr` of a mean squared error (data range 1), capped at `PSNR_CAP_DB`."""
  if mse <= 10.0 ** (-PSNR_CAP_DB / 10.0):
    return PSNR_CAP_DB
  return float(-10.0 * np.log10(mse))


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-0.5 * (x / sigma) ** 2)
  return g / g.sum()


def _valid_filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
  """Separable correlation of [H, W, C] `x` with the 1-D window `g`, 'valid' part only."""
  half = len(g) // 2
  y = ndimage.correlate1d(x, g, axis=0, mode="constant")
  y = ndimage.correlate1d(y, g, axis=1, mode="constant")
  h, w = x.shape[:2]
  return y[half:h - half, half:w - half]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
  """Mean SSIM (Gaussian 11×11, σ=1.5, K1=0.01, K2=0.03, data range 1; see module doc).

  Args:
    a, b: [H, W, C] float, values in [0, 1]; the SSIM of each channel is averaged.
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 3:
    raise ValueError(f"expected two same-shape [H, W, C] images, got {a.shape} and {b.shape}")
  size = min(SSIM_WINDOW, a.shape[0], a.shape[1])
  size -= 1 - size % 2  # Largest odd window that fits.
  g = _gaussian_window(size, SSIM_SIGMA)
  c1 = SSIM_K1 ** 2
  c2 = SSIM_K2 ** 2
  mu_a = _valid_filter(a, g)
  mu_b = _valid_filter(b, g)
  var_a = _valid_filter(a * a, g) - mu_a ** 2
  var_b = _valid_filter(b * b, g) - mu_b ** 2
  cov = _valid_filter(a * b, g) - mu_a * mu_b
  num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
  den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
  return float(np.mean(num / den))


def _chromaticity(rgb: np.ndarray) -> np.ndarray:
  total = rgb.sum(-1, keepdims=True)
  neutral = np.full(rgb.shape[:-1] + (2,), 1.0 / 3.0, np.float64)
  return np.where(total > 1e-12, rgb[..., :2] / np.maximum(total, 1e-12), neutral)


def dark_chroma_error(pred: np.ndarray, gt: np.ndarray) -> float:
  """Mean rg-chromaticity distance over the darkest `DARK_FRACTION` of GT pixels (module
  docstring). pred, gt: [H, W, 3] linear ≥ 0."""
  pred, gt = _check_pair(pred, gt)
  pred, gt = np.maximum(pred.astype(np.float64), 0), np.maximum(gt.astype(np.float64), 0)
  luma = gt @ np.array([0.2126, 0.7152, 0.0722])
  lit = luma > 0
  if not lit.any():
    return 0.0
  dark = lit & (luma <= np.quantile(luma[lit], DARK_FRACTION))
  diff = _chromaticity(pred[dark]) - _chromaticity(gt[dark])
  return float(np.mean(np.sqrt((diff ** 2).sum(-1))))


def frame_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
  """PSNR-T, PSNR-L, SSIM-T and the dark chroma error of one frame.

  Args:
    pred: [H, W, 3] float ≥ 0, predicted linear HDR.
    gt: [H, W, 3] float ≥ 0, ground-truth linear HDR.
  Returns:
    {"psnr_t": dB, "psnr_l": dB, "ssim_t": in [-1, 1], "dark_chroma": ≥ 0}.
  """
  p, g = normalise(pred, gt)
  tp, tg = response.mu_law(p), response.mu_law(g)
  return {"psnr_t": psnr(tp, tg), "psnr_l": psnr(p, g), "ssim_t": ssim(tp, tg),
          "dark_chroma": dark_chroma_error(pred, gt)}


def psnr_t_recoverable(pred: np.ndarray, gt: np.ndarray, keep: np.ndarray) -> float | None:
  """PSNR-T over the pixels `keep` (None if it keeps none).

  Args:
    pred, gt: [H, W, 3] float linear HDR.
    keep: [H, W] bool, the pixels to score (normalisation still over the whole frame).
  """
  keep = np.asarray(keep, bool)
  if keep.shape != np.shape(gt)[:2]:
    raise ValueError(f"mask shape {keep.shape} differs from the image's {np.shape(gt)[:2]}")
  if not keep.any():
    return None
  tp, tg = tonemapped_normalised(pred, gt)
  return psnr(tp[keep], tg[keep])


def tonemapped_normalised(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`T(normalise(pred, gt))`: the images PSNR-T, SSIM-T and flicker compare.

  Args:
    pred, gt: [H, W, 3] float linear HDR.
  Returns:
    (T(pred), T(gt)), each [H, W, 3] float32 in [0, 1].
  """
  p, g = normalise(pred, gt)
  return response.mu_law(p), response.mu_law(g)


def flicker_pair(prev_t: tuple[np.ndarray, np.ndarray],
                 cur_t: tuple[np.ndarray, np.ndarray]) -> float:
  """Flicker error between two consecutive frames (see module doc).

  Args:
    prev_t: (T(pred), T(gt)) of frame t-1, from `tonemapped_normalised`, [H, W, 3] each.
    cur_t: the same for frame t.
  """
  (pp, gp), (pc, gc) = prev_t, cur_t
  if pp.shape != pc.shape:
    raise ValueError(f"consecutive frames differ in size: {pp.shape} vs {pc.shape}")
  d = (np.asarray(pc, np.float64) - pp) - (np.asarray(gc, np.float64) - gp)
  return float(np.mean(np.abs(d)))


def flicker(preds: np.ndarray, gts: np.ndarray) -> float | None:
  """Mean flicker error of a sequence (see module doc); None for fewer than two frames.

  Args:
    preds: [T, H, W, 3] float, predicted linear HDR frames in temporal order.
    gts: [T, H, W, 3] float, the ground truth.
  """
  if len(preds) != len(gts):
    raise ValueError(f"{len(preds)} predicted frames vs {len(gts)} ground-truth frames")
  mapped = [tonemapped_normalised(p, g) for p, g in zip(preds, gts)]
  values = [flicker_pair(a, b) for a, b in zip(mapped[:-1], mapped[1:])]
  return float(np.mean(values)) if values else None


# ---- jnp twins (for validation inside training) -------------------------------------------


def normalise_jnp(pred: jnp.ndarray, gt: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """`normalise` per sample. pred, gt: [..., H, W, 3] → both [..., H, W, 3] in [0, 1]."""
  peak = jnp.max(gt, axis=(-3, -2, -1), keepdims=True)
  scale = jnp.where(peak > 0, 1.0 / jnp.where(peak > 0, peak, 1.0), 1.0)
  return jnp.clip(pred * scale, 0.0, 1.0), jnp.clip(gt * scale, 0.0, 1.0)


def psnr_jnp(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """`psnr` per sample. a, b: [..., H, W, C] in [0, 1] → [...] dB, capped at PSNR_CAP_DB."""
  mse = jnp.mean((a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2, axis=(-3, -2, -1))
  floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
  return jnp.where(mse <= floor, PSNR_CAP_DB, -10.0 * jnp.log10(jnp.maximum(mse, floor)))


def psnr_t_jnp(pred: jnp.ndarray, gt: jnp.ndarray) -> jnp.ndarray:
  """PSNR-T per sample. pred, gt: [..., H, W, 3] linear HDR → [...] dB."""
  p, g = normalise_jnp(pred, gt)
  return psnr_jnp(jnp_response.mu_law(p), jnp_response.mu_law(g))


def psnr_l_jnp(pred: jnp.ndarray, gt: jnp.ndarray) -> jnp.ndarray:
  """PSNR-L per sample. pred, gt: [..., H, W, 3] linear HDR → [...] dB."""
  return psnr_jnp(*normalise_jnp(pred, gt))
