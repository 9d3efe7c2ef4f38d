"""Baselines vs scenes rendered from a known radiance with the §3 camera model."""
import numpy as np
import pytest
from scipy import ndimage

from data_pipeline import response
from dealthdr_jax.evaluation import metrics
from dealthdr_jax.inference import baselines

H, W, PAD = 96, 128, 12


def _texture(h, w, seed=0):
  """[h, w, 3] smooth random texture in [0, 1]."""
  n = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((h, w, 3)), (2, 2, 0))
  return ((n - n.min()) / (n.max() - n.min())).astype(np.float32)


def _canvas(lo, hi, blob_gain=0.0):
  """Textured radiance in [lo, hi] (before the blob), with an optional bright central blob."""
  yy, xx = np.mgrid[0:H + 2 * PAD, 0:W + 2 * PAD]
  blob = np.exp(-(((yy - yy.mean()) / 25.0) ** 2 + ((xx - xx.mean()) / 30.0) ** 2))
  base = lo + (hi - lo) * _texture(H + 2 * PAD, W + 2 * PAD)
  return (base * (1.0 + blob_gain * blob[..., None])).astype(np.float32)


def _view(canvas, dx=0, dy=0):
  """The frame whose pixel p shows canvas content at p + (dx, dy) (the scene moved by -d)."""
  return canvas[PAD + dy:PAD + dy + H, PAD + dx:PAD + dx + W]


def _render(radiance, stops, bits=8):
  ldr = response.radiance_to_ldr(radiance, stops)
  return (np.round(ldr * (2 ** bits - 1)) / (2 ** bits - 1)).astype(np.float32)


def _window(canvas, stops, shift=(0, 0)):
  """Frames t-r..t+r; frame i's content is displaced by (i - r) * shift."""
  r = len(stops) // 2
  frames = [_render(_view(canvas, (i - r) * shift[0], (i - r) * shift[1]), s)
            for i, s in enumerate(stops)]
  return np.stack(frames), np.asarray(stops, np.float32), _view(canvas)


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_well_exposed_static_scene_reproduces_the_reference_radiance(name):
  # Long reference (e = 8) sees linear values in [0.04, 0.5]: well exposed everywhere.
  frames, stops, gt = _window(_canvas(0.005, 0.0625), [0.0, 3.0, 0.0])
  assert baselines.exposure_weight(frames[1]).min() > 0.99
  out = baselines.BASELINES[name](frames, stops)
  assert out.shape == (H, W, 3) and out.dtype == np.float32
  np.testing.assert_allclose(out, response.ldr_to_radiance(frames[1], 3.0), rtol=1e-5,
                             atol=1e-7)
  assert metrics.frame_metrics(out, gt)["psnr_t"] > 45.0


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_saturated_reference_is_recovered_from_the_short_neighbours(name):
  # The blob clips the long reference (e = 8) but not the short neighbours (max ≈ 0.9).
  frames, stops, gt = _window(_canvas(0.004, 0.055, blob_gain=15.0), [0.0, 3.0, 0.0])
  saturated = frames[1].max(axis=-1) >= 1.0
  assert saturated.mean() > 0.2 and frames[[0, 2]].max() < 1.0
  out = baselines.BASELINES[name](frames, stops)
  rel = np.abs(out - gt)[saturated] / gt[saturated]
  # dis_flow's flow on a static scene is not exactly 0 (≤ 0.45 px here), hence the max.
  assert np.median(rel) < 0.01 and np.percentile(rel, 99) < 0.04 and rel.max() < 0.08
  # The reference alone is off by up to 16x there.
  assert np.median(np.abs(response.ldr_to_radiance(frames[1], 3.0) - gt)[saturated]
                   / gt[saturated]) > 0.3


@pytest.mark.parametrize("name", sorted(baselines.BASELINES))
def test_dark_reference_is_denoised_from_the_long_neighbours(name):
  # Short reference (e = 1): shadows sit in the first 8-bit codes; long frames resolve them.
  frames, stops, gt = _window(_canvas(2e-5, 2e-3), [3.0, 0.0, 3.0])
  dark = frames[1].max(axis=-1) < 0.05
  assert dark.mean() > 0.3
  out = baselines.BASELINES[name](frames, stops)
  ref_err = np.abs(response.ldr_to_radiance(frames[1], 0.0) - gt)[dark].mean()
  # At equal radiance, an 8-bit gamma-2.2 frame 3 stops longer has radiance steps
  # 8**(1.2/2.2) / 8 ≈ 0.39 times as large: the error should shrink about that much.
  assert np.abs(out - gt)[dark].mean() < 0.45 * ref_err


def test_dis_flow_follows_the_design_convention():
  canvas = _canvas(0.004, 0.055, blob_gain=15.0)
  frames, stops, _ = _window(canvas, [0.0, 3.0, 0.0], shift=(3, -2))
  # Frame 0 shows at p the content the reference shows at p + (-3, 2), so the reference's
  # pixel p is found at p + (3, -2) in frame 0.
  flow = baselines.dis_flow(frames[1], 3.0, frames[0], 0.0)
  assert flow.shape == (H, W, 2)
  np.testing.assert_allclose(np.median(flow.reshape(-1, 2), axis=0), [3.0, -2.0], atol=0.2)


def test_dis_flow_beats_unaligned_fill_on_a_moving_scene():
  frames, stops, gt = _window(_canvas(0.004, 0.055, blob_gain=15.0), [0.0, 3.0, 0.0],
                              shift=(3, -2))
  psnr = {n: metrics.frame_metrics(fn(frames, stops), gt)["psnr_t"]
          for n, fn in baselines.BASELINES.items()}
  # Measured: dis_flow ≈ 63 dB, reference_only ≈ 40 dB.
  assert psnr["dis_flow"] > psnr["reference_only"] + 10.0, psnr


def test_three_exposure_window():
  # Stops 0/2/4: the blob clips the reference (e = 16) and the e = 4 frames, not e = 1.
  frames, stops, gt = _window(_canvas(0.001, 0.02, blob_gain=30.0), [0.0, 2.0, 4.0, 0.0, 2.0],
                              shift=(2, 1))
  psnr = {n: metrics.frame_metrics(fn(frames, stops), gt)["psnr_t"]
          for n, fn in baselines.BASELINES.items()}
  # Measured: dis_flow ≈ 55.6 dB, reference_only ≈ 41.1 dB.
  assert psnr["dis_flow"] > max(48.0, psnr["reference_only"] + 5.0), psnr


def test_fill_flow_keeps_reliable_flow_and_fills_holes_smoothly():
  flow = np.zeros((40, 60, 2), np.float32)
  flow[..., 0], flow[..., 1] = 1.5, -0.5
  reliable = np.ones((40, 60), bool)
  reliable[5:35, 10:50] = False
  noisy = flow + np.where(reliable[..., None], 0.0, 7.0).astype(np.float32)  # Junk in holes.
  out = baselines.fill_flow(noisy, reliable)
  np.testing.assert_allclose(out, flow, atol=1e-5)


def test_bad_inputs_are_rejected():
  frames = np.zeros((2, 8, 8, 3), np.float32)
  with pytest.raises(ValueError, match="odd number"):
    baselines.reference_only(frames, np.zeros(2, np.float32))
  with pytest.raises(ValueError, match="stops"):
    baselines.reference_only(frames[:1], np.zeros(3, np.float32))
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    baselines.dis_flow_merge(np.full((3, 8, 8, 3), 2.0, np.float32), np.zeros(3, np.float32))
