"""`evaluation.headroom`: the unrecorded pixels of a window (the same rule as a clip's
PSNR-T rec.) and the two ground-truth oracles, against direct computations."""
import numpy as np
import pytest

from dealthdr_jax.evaluation import headroom
from dealthdr_jax.evaluation import metrics


def _window(stops, clipped_rows):
  """[T, 6, 8, 3] LDR at 0.4, frame i clipped (one channel at 1) in rows clipped_rows[i]."""
  frames = np.full((len(stops), 6, 8, 3), 0.4, np.float32)
  for i, rows in enumerate(clipped_rows):
    frames[i, rows, :, i % 3] = 1.0
  return frames


@pytest.mark.parametrize("stops, t, nearest", [
    ([3, 0, 3], 1, [1]),            # 2exp, short reference: itself.
    ([0, 3, 0], 1, [0, 2]),         # 2exp, long reference: both short neighbours.
    ([0, 2, 4, 0, 2], 2, [3]),      # 3exp, long reference: the nearer short.
    ([2, 4, 0, 2, 4], 1, [2]),      # 3exp, middle reference: the nearest short.
    ([0.02, 3, 0], 1, [0, 2]),      # Within the tolerance of the shortest.
])
def test_nearest_shortest_frames(stops, t, nearest):
  assert headroom.nearest_shortest(stops, t).tolist() == nearest


def test_unrecorded_needs_every_nearest_short_frame_clipped():
  frames = _window([0, 3, 0], [slice(0, 4), slice(0, 6), slice(2, 6)])
  frames[1] = 1.0  # The long frame, clipped everywhere, does not count.
  mask = headroom.unrecorded(frames, [0, 3, 0], 1)
  want = np.zeros((6, 8), bool)
  want[2:4] = True
  np.testing.assert_array_equal(mask, want)
  # Just below the clipping level is recorded.
  frames[0, 2:4] = frames[2, 2:4] = 0.94
  assert not headroom.unrecorded(frames, [0, 3, 0], 1).any()


def test_headroom_oracles_against_direct_computation():
  rng = np.random.default_rng(3)
  gt = rng.uniform(0.01, 1.0, (6, 8, 3)).astype(np.float32)
  mask = np.zeros((6, 8), bool)
  mask[1:3, 2:5] = True
  gt[mask] *= 40.0  # A light, unrecorded.
  pred = gt * rng.uniform(0.9, 1.1, gt.shape).astype(np.float32)
  pred[mask] = gt[mask] / 8.0  # Guessed 3 stops too dark, with the right shape.
  row = headroom.headroom(pred, gt, mask)

  tp, tg = metrics.tonemapped_normalised(pred, gt)
  assert row["psnr_t"] == pytest.approx(metrics.psnr(tp, tg))
  assert row["psnr_t_rec"] == pytest.approx(metrics.psnr(tp[~mask], tg[~mask]))
  assert row["unrecorded_fraction"] == pytest.approx(mask.mean())
  sq = ((tp - tg) ** 2).astype(np.float64)
  assert row["unrecorded_error_share"] == pytest.approx(sq[mask].sum() / sq.sum(), rel=1e-5)
  filled = np.where(mask[..., None], gt, pred)
  assert row["psnr_t_gt_filled"] == pytest.approx(
      metrics.psnr(*metrics.tonemapped_normalised(filled, gt)), rel=1e-6)
  # The best factor undoes the 3 stops, and then the light is exact: both oracles agree.
  assert row["best_scale"] == pytest.approx(8.0)
  assert row["psnr_t_best_scale"] == pytest.approx(row["psnr_t_gt_filled"], rel=1e-4)
  assert row["psnr_t"] < row["psnr_t_best_scale"]

  # With nothing unrecorded the oracles are the prediction itself.
  none = headroom.headroom(pred, gt, np.zeros((6, 8), bool))
  assert none["psnr_t_best_scale"] == none["psnr_t_gt_filled"] == pytest.approx(
      none["psnr_t"], rel=1e-6)
  assert none["best_scale"] == 1.0 and none["unrecorded_error_share"] == 0.0
  assert headroom.headroom(gt, gt, mask)["unrecorded_error_share"] == 0.0
  with pytest.raises(ValueError, match="mask shape"):
    headroom.headroom(pred, gt, mask[:5])
