"""Warping vs a known shift and vs `map_coordinates`; jnp responses vs the NumPy ones."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy import ndimage

from data_pipeline import response as np_resp
from dealthdr_jax.models import response as jnp_resp
from dealthdr_jax.models import warp as warp_lib


def _image(h, w, c=3, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(1, h, w, c)), jnp.float32)


def test_integer_flow_reproduces_known_shift():
  img = _image(13, 17)
  dx, dy = 3, -2
  flow = jnp.broadcast_to(jnp.array([dx, dy], jnp.float32), (1, 13, 17, 2))
  out = warp_lib.warp(img, flow)
  # out[y, x] = img[y + dy, x + dx] wherever that is inside the image.
  np.testing.assert_allclose(out[0, 2:, :17 - dx], img[0, 2 + dy:13 + dy, dx:], atol=1e-6)


def test_half_pixel_flow_averages_neighbours():
  img = _image(8, 9)
  flow = jnp.broadcast_to(jnp.array([0.5, 0.0], jnp.float32), (1, 8, 9, 2))
  out = warp_lib.warp(img, flow)
  np.testing.assert_allclose(out[0, :, :-1], 0.5 * (img[0, :, :-1] + img[0, :, 1:]), atol=1e-6)


@pytest.mark.parametrize("border,mode", [("edge", "nearest"), ("zeros", "constant")])
def test_matches_map_coordinates(border, mode):
  h, w = 11, 14
  img = _image(h, w, c=2, seed=1)
  flow = jnp.asarray(np.random.default_rng(2).normal(scale=4.0, size=(1, h, w, 2)), jnp.float32)
  out = warp_lib.warp(img, flow, border=border)
  gy, gx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  coords = [gy + flow[0, ..., 1], gx + flow[0, ..., 0]]
  for ch in range(2):
    ref = ndimage.map_coordinates(img[0, ..., ch], coords, order=1, mode=mode, cval=0.0)
    np.testing.assert_allclose(out[0, ..., ch], ref, atol=1e-5)


def test_warp_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="differ"):
    warp_lib.warp(_image(8, 8), jnp.zeros((1, 8, 9, 2)))
  with pytest.raises(ValueError, match="border"):
    warp_lib.warp(_image(8, 8), jnp.zeros((1, 8, 8, 2)), border="wrap")


def test_resize_flow_rescales_vectors():
  flow = jnp.broadcast_to(jnp.array([1.0, -2.0], jnp.float32), (1, 4, 6, 2))
  up = warp_lib.resize_flow(flow, 16, 12)
  np.testing.assert_allclose(up[0, 5, 5], [2.0, -8.0], atol=1e-6)


def test_forward_backward_error_zero_for_consistent_flows():
  fwd = jnp.broadcast_to(jnp.array([2.0, 1.0], jnp.float32), (1, 9, 9, 2))
  err = warp_lib.forward_backward_error(fwd, -fwd)
  np.testing.assert_allclose(err, 0.0, atol=1e-5)
  assert float(warp_lib.forward_backward_error(fwd, fwd).min()) > 4.0


def test_round_trip_weight_falls_by_e_per_scale_of_miss():
  miss = jnp.array([[[0.0, 1.0, 2.0, 10.0]]], jnp.float32)
  np.testing.assert_allclose(warp_lib.round_trip_weight(miss, 2.0),
                             [[[1.0, np.exp(-0.5), np.exp(-1.0), np.exp(-5.0)]]], rtol=1e-6)
  # A weight for the fill: no gradient flows back into the flows through it.
  grad = jax.grad(lambda m: jnp.sum(warp_lib.round_trip_weight(m, 1.0)))(miss)
  np.testing.assert_array_equal(grad, 0.0)
  with pytest.raises(ValueError, match="scale > 0"):
    warp_lib.round_trip_weight(miss, 0.0)


def test_straddle_flow_meets_the_content_where_the_frame_lies():
  # A translation: all of it (the frame's flow to b is half of it), from either direction.
  shift = jnp.broadcast_to(jnp.array([6.0, -4.0], jnp.float32), (1, 20, 30, 2))
  np.testing.assert_allclose(warp_lib.straddle_flow(shift, -shift, 0.5), shift, atol=1e-5)
  # An expansion about x = 0: a's content at x is at 1.1·x in b. The frame half-way sees it
  # at 1.05·x, so its flow to b is v = 0.05·x' at its own x' = 1.05·x, i.e. x'·0.1 / 2.1;
  # the naive f_ab / 2 (0.05·x') is off by 0.095 px at x' = 40.
  xs = np.broadcast_to(np.arange(48, dtype=np.float32), (1, 8, 48))
  zeros = np.zeros_like(xs)
  ab = jnp.asarray(np.stack([0.1 * xs, zeros], -1))
  ba = jnp.asarray(np.stack([-xs * 0.1 / 1.1, zeros], -1))
  half = np.asarray(warp_lib.straddle_flow(ab, ba, 0.5)) / 2
  inside = slice(4, 44)           # Away from the edges, where the edge border bends the flow.
  np.testing.assert_allclose(half[0, :, inside, 0], xs[0, :, inside] * 0.1 / 2.1, atol=2e-3)
  np.testing.assert_allclose(half[0, :, inside, 1], 0.0, atol=1e-6)
  # A frame a third of the way (fraction per flow in the batch): it sees a's x at
  # (1 + 0.1/3)·x, so the displacement a → b at its own x' is 0.1·x' / (1 + 0.1/3).
  move = jnp.broadcast_to(jnp.array([6.0, -4.0], jnp.float32), ab.shape)
  both = warp_lib.straddle_flow(jnp.concatenate([ab, move]), jnp.concatenate([ba, -move]),
                                jnp.array([1 / 3, 0.8]))
  np.testing.assert_allclose(both[0, :, inside, 0], xs[0, :, inside] * 0.1 / (1 + 0.1 / 3),
                             atol=2e-3)
  np.testing.assert_allclose(both[1], move[0], atol=1e-5)    # Any fraction.
  with pytest.raises(ValueError, match="one shape"):
    warp_lib.straddle_flow(ab, ba[:, :, :40], 0.5)


def test_fill_flow_keeps_reliable_flow_and_fills_holes_from_around():
  rng = np.random.default_rng(3)
  ys, xs = np.mgrid[0:24, 0:36].astype(np.float32)
  smooth = np.stack([0.2 * xs - 3.0, 0.1 * ys + 1.0], axis=-1)[None]   # A smooth field.
  reliability = np.ones((1, 24, 36), np.float32)
  reliability[:, 8:15, 10:22] = 0.0                                    # A saturated blob.
  reliability[:, 3, 30] = 0.6                                          # Soft but ≥ 0.5.
  guessed = np.where(reliability[..., None] > 0.5, smooth,
                     rng.normal(0.0, 20.0, smooth.shape).astype(np.float32))
  filled = np.asarray(warp_lib.fill_flow(jnp.asarray(guessed), jnp.asarray(reliability)))
  keep = reliability > 0.5
  np.testing.assert_allclose(filled[keep], guessed[keep], atol=1e-5)
  hole = filled[~keep]
  inside = smooth[~keep]
  # The guesses (σ = 20 px) are gone: the fill is within the field's range around the hole
  # and, the field being a gentle ramp, within 1.5 px of it.
  around = smooth[:, 5:18, 7:25].reshape(-1, 2)
  assert np.all(hole >= around.min(0) - 1e-4) and np.all(hole <= around.max(0) + 1e-4)
  assert np.abs(hole - inside).max() < 1.5
  # Nothing reliable: the mean flow everywhere (to within the floor weight's local means).
  nothing = warp_lib.fill_flow(jnp.asarray(guessed), jnp.zeros((1, 24, 36)))
  np.testing.assert_allclose(nothing, np.broadcast_to(guessed.mean((1, 2), keepdims=True),
                                                      guessed.shape), atol=0.05)
  grads = jax.grad(lambda f: jnp.sum(warp_lib.fill_flow(f, jnp.asarray(reliability)) ** 2))(
      jnp.asarray(guessed))
  assert np.all(np.isfinite(grads))
  with pytest.raises(ValueError, match="reliability"):
    warp_lib.fill_flow(jnp.asarray(guessed), jnp.ones((1, 24, 35)))


@pytest.mark.parametrize("name", np_resp.RESPONSES)
def test_jnp_responses_match_numpy(name):
  x = np.linspace(0, 1, 257, dtype=np.float32)
  np.testing.assert_allclose(jnp_resp.linearise(x, name), np_resp.linearise(x, name), atol=1e-6)
  np.testing.assert_allclose(jnp_resp.apply_response(x, name), np_resp.apply_response(x, name),
                             atol=2e-5)
  np.testing.assert_allclose(jnp_resp.linearise(jnp_resp.apply_response(x, name), name), x,
                             atol=1e-5)
  grads = jax.vmap(jax.grad(lambda v: jnp_resp.apply_response(v, name)))(jnp.asarray(x))
  assert np.all(np.isfinite(grads))
