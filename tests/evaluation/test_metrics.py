"""Metrics of DESIGN.md §8 against hand-computed values and a brute-force SSIM reference."""
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipeline import response
from dealthdr_jax.evaluation import metrics

MU = response.MU


def _t_inverse(y):
  """x with T(x) = y (μ-law tone map inverted)."""
  return ((1.0 + MU) ** y - 1.0) / MU


def _image(h=24, w=20, seed=0):
  return np.random.default_rng(seed).uniform(size=(h, w, 3)).astype(np.float32)


def test_normalise_divides_by_gt_max_and_clips():
  gt = np.full((4, 5, 3), 2.0, np.float32)
  gt[0, 0, 0] = 4.0
  pred = np.full_like(gt, 6.0)
  pred[1, 1] = 1.0
  p, g = metrics.normalise(pred, gt)
  np.testing.assert_allclose(g[0, 0, 0], 1.0)
  np.testing.assert_allclose(g[1, 1], 0.5)
  np.testing.assert_allclose(p[0, 0], 1.0)  # 6 / 4 clipped.
  np.testing.assert_allclose(p[1, 1], 0.25)


def test_psnr_l_of_constant_offset():
  gt = np.full((8, 8, 3), 0.5, np.float32)
  gt[0, 0] = 1.0  # Max 1: normalisation leaves values alone.
  pred = gt - 0.1  # MSE 0.01 → 20 dB.
  assert metrics.frame_metrics(pred, gt)["psnr_l"] == pytest.approx(20.0, abs=1e-4)
  # Same error at a different scale: 2x both, still 20 dB.
  assert metrics.frame_metrics(2 * pred, 2 * gt)["psnr_l"] == pytest.approx(20.0, abs=1e-4)


def test_psnr_t_of_known_tone_mapped_offset():
  gt = np.ones((8, 8, 3), np.float32)  # T = 1 everywhere.
  pred = np.full_like(gt, _t_inverse(0.9))  # T = 0.9: MSE 0.01 → 20 dB.
  m = metrics.frame_metrics(pred, gt)
  assert m["psnr_t"] == pytest.approx(20.0, abs=1e-3)
  assert m["psnr_l"] == pytest.approx(-20 * np.log10(1 - _t_inverse(0.9)), abs=1e-3)
  assert metrics.frame_metrics(np.zeros_like(gt), gt)["psnr_t"] == pytest.approx(0.0, abs=1e-6)


def test_identical_images_give_the_capped_psnr_and_ssim_one():
  gt = _image() * 3.0
  m = metrics.frame_metrics(gt, gt)
  assert m["psnr_t"] == m["psnr_l"] == metrics.PSNR_CAP_DB
  assert m["ssim_t"] == pytest.approx(1.0, abs=1e-9)


def _ssim_brute_force(a, b, size=11, sigma=1.5):
  """SSIM by explicit loops over every valid window and channel."""
  x = np.arange(size) - (size - 1) / 2
  g = np.exp(-0.5 * (x / sigma) ** 2)
  win = np.outer(g, g) / np.outer(g, g).sum()
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  vals = []
  for c in range(a.shape[-1]):
    for i in range(a.shape[0] - size + 1):
      for j in range(a.shape[1] - size + 1):
        pa = a[i:i + size, j:j + size, c].astype(np.float64)
        pb = b[i:i + size, j:j + size, c].astype(np.float64)
        ma, mb = (win * pa).sum(), (win * pb).sum()
        va = (win * (pa - ma) ** 2).sum()
        vb = (win * (pb - mb) ** 2).sum()
        cov = (win * (pa - ma) * (pb - mb)).sum()
        vals.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
  return np.mean(vals)


def test_ssim_matches_brute_force_windows():
  a = _image(15, 14, seed=1)
  b = np.clip(a + 0.1 * _image(15, 14, seed=2) - 0.05, 0, 1)
  assert metrics.ssim(a, b) == pytest.approx(_ssim_brute_force(a, b), abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
  a = np.full((16, 16, 3), 0.8)
  b = np.full((16, 16, 3), 0.4)
  c1 = 0.01 ** 2
  expected = (2 * 0.8 * 0.4 + c1) / (0.8 ** 2 + 0.4 ** 2 + c1)  # Contrast term is 1.
  assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-9)


def test_ssim_drops_for_negated_contrast():
  a = _image(32, 32, seed=3)
  assert metrics.ssim(a, 1.0 - a) < 0.0 < metrics.ssim(a, 0.5 * a + 0.25) < 1.0


def test_ssim_on_images_smaller_than_the_window():
  a = _image(7, 9, seed=4)
  assert metrics.ssim(a, a) == pytest.approx(1.0)
  assert metrics.ssim(a, 1 - a) < 1.0


def test_flicker():
  gt = np.ones((3, 6, 6, 3), np.float32)
  assert metrics.flicker(gt, gt) == 0.0
  # An error constant in time does not flicker.
  assert metrics.flicker(0.5 * gt, gt) == pytest.approx(0.0, abs=1e-7)
  # T(pred) alternating 1, 0.9, 1 against a static GT: |Δ| = 0.1 at both transitions.
  pred = gt.copy()
  pred[1] = _t_inverse(0.9)
  assert metrics.flicker(pred, gt) == pytest.approx(0.1, abs=1e-5)
  assert metrics.flicker(gt[:1], gt[:1]) is None


def test_jnp_twins_match_numpy():
  pred = np.stack([_image(seed=5) * 2, _image(seed=6) * 0.3])
  gt = np.stack([_image(seed=7) * 3, pred[1]])
  got_t = np.asarray(metrics.psnr_t_jnp(jnp.asarray(pred), jnp.asarray(gt)))
  got_l = np.asarray(metrics.psnr_l_jnp(jnp.asarray(pred), jnp.asarray(gt)))
  want = [metrics.frame_metrics(p, g) for p, g in zip(pred, gt)]
  np.testing.assert_allclose(got_t, [m["psnr_t"] for m in want], rtol=1e-4)
  np.testing.assert_allclose(got_l, [m["psnr_l"] for m in want], rtol=1e-4)
  assert got_t[1] == metrics.PSNR_CAP_DB


def test_mismatched_shapes_are_rejected():
  with pytest.raises(ValueError, match="shape"):
    metrics.frame_metrics(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


def test_dark_chroma_error_sees_colour_casts_in_the_shadows_only():
  rng = np.random.default_rng(0)
  gt = rng.uniform(0.01, 1.0, (32, 32, 3)).astype(np.float32)
  gt[:8] *= 0.01  # A dark quarter: the darkest decile lies there.
  assert metrics.dark_chroma_error(gt, gt) == 0.0
  assert metrics.dark_chroma_error(3.0 * gt, gt) == pytest.approx(0.0, abs=1e-6)  # Scale-free.
  warm = gt * np.array([1.4, 1.0, 0.7], np.float32)
  dark_cast = np.where(np.arange(32)[:, None, None] < 8, warm, gt)
  bright_cast = np.where(np.arange(32)[:, None, None] >= 8, warm, gt)
  assert metrics.dark_chroma_error(dark_cast, gt) > 0.05
  assert metrics.dark_chroma_error(bright_cast, gt) == 0.0
  # A neutral grey shown orange: the distance between their chromaticities.
  grey, orange = np.full((4, 4, 3), 0.1, np.float32), np.full((4, 4, 3), 0.1, np.float32)
  orange[..., 0], orange[..., 2] = 0.15, 0.05
  assert metrics.dark_chroma_error(orange, grey) == pytest.approx(np.hypot(0.5 - 1 / 3, 0), abs=1e-6)
  assert metrics.frame_metrics(orange, grey)["dark_chroma"] > 0.1
