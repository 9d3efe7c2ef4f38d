"""Training building blocks against simple references (in-process, no compilation-heavy work):
losses, sub-window maps, the per-step ratio, configs, sharding helpers, pre-flight checks."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipeline import camera
from data_pipeline import clips as clips_lib
from data_pipeline import response as np_response
from dealthdr_jax import config_loading
from dealthdr_jax.evaluation import headroom
from dealthdr_jax.models import response as resp
from dealthdr_jax.training import checkpoints
from dealthdr_jax.training import input_pipeline
from dealthdr_jax.training import losses
from dealthdr_jax.training import sharding
from dealthdr_jax.training import toy_data
from dealthdr_jax.training import train


def test_hdr_loss_zero_for_equal_and_scale_invariant():
  rng = np.random.default_rng(0)
  gt = rng.uniform(0, 4, (2, 8, 8, 3)).astype(np.float32)
  assert float(losses.hdr_loss(gt, gt)) == 0.0
  pred = gt * 0.8
  a = float(losses.hdr_loss(pred, gt))
  b = float(losses.hdr_loss(pred * 100, gt * 100))  # Normalised by the GT max per sample.
  assert a > 0 and abs(a - b) < 1e-6
  # Too bright still has a gradient (no clipping at the GT peak).
  g = jax.grad(lambda p: losses.hdr_loss(p, jnp.asarray(gt)))(jnp.asarray(gt * 3))
  assert float(jnp.abs(g).min()) > 0
  # Reference: mean |T(p/m) - T(g/m)| with m the GT max of each sample.
  m = gt.max(axis=(1, 2, 3), keepdims=True)
  ref = np.mean(np.abs(np_response.mu_law(pred / m) - np_response.mu_law(gt / m)))
  assert abs(a - ref) < 1e-6


def test_downsample_flow_scales_vectors():
  flow = np.zeros((1, 2, 16, 16, 2), np.float32)
  flow[..., 0], flow[..., 1] = 4.0, -8.0
  small = losses.downsample_flow(jnp.asarray(flow), 4, 8)
  assert small.shape == (1, 2, 4, 8, 2)
  np.testing.assert_allclose(small[..., 0], 2.0)   # width 16 → 8
  np.testing.assert_allclose(small[..., 1], -2.0)  # height 16 → 4


def test_flow_pyramid_loss_zero_for_exact_pyramid_and_masked():
  gt = jnp.full((1, 2, 16, 16, 2), 4.0)
  pyramid = [losses.downsample_flow(gt, s, s) for s in (2, 4, 8)]
  assert float(losses.flow_pyramid_loss(pyramid, gt)) < 1e-3
  wrong = [p + 1.0 for p in pyramid]
  assert abs(float(losses.flow_pyramid_loss(wrong, gt)) - np.sqrt(2)) < 1e-3
  assert float(losses.flow_pyramid_loss(wrong, gt, valid=jnp.zeros((1, 2, 16, 16)))) == 0.0


def test_flow_weight_decays():
  w = [float(losses.flow_weight(s, 0.1, 0.0, 100)) for s in (0, 50, 100, 200)]
  assert w[0] == pytest.approx(0.1) and w[1] == pytest.approx(0.05)
  assert w[2] == pytest.approx(0.0, abs=1e-7) and w[3] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("radius", [1, 2])
def test_subset_maps_mirror_like_clip_edges(radius):
  maps = losses.subset_index_maps(radius)
  t = 2 * radius + 1
  assert maps.shape[1] == t and len(maps) == (radius + 1) ** 2 - 2
  for row in maps:
    assert row[radius] == radius                  # The reference stays.
    assert len(set(row)) < t                      # Something was dropped.
    assert len(set(row)) > 1                      # A neighbour is kept.
  if radius == 1:
    assert sorted(map(tuple, maps)) == [(0, 1, 0), (2, 1, 2)]
  # Same rule as the clip reader: a clip [lo..hi] seen from its edge.
  row = maps[0]
  lo, hi = min(row), max(row)
  expected = [lo + i for i in clips_lib.window_indices(hi - lo + 1, radius - lo, radius)]
  assert list(row) == expected


def test_subset_maps_keep_each_slot_exposure_with_three_exposures():
  maps = losses.subset_index_maps(2, period=3)
  # Sub-windows of at least one cycle (3 of the 5 frames) only, each slot holding a frame
  # of its own exposure phase, as the clip reader fills a clip edge.
  assert len(maps) == 5
  for row in maps:
    assert row[2] == 2 and 3 <= len(set(row)) < 5
    assert all((i - k) % 3 == 0 for k, i in enumerate(row))
  assert [0, 1, 2, 0, 1] in maps.tolist()    # t+1, t+2 dropped: the clip's last frame.
  assert [3, 4, 2, 3, 4] in maps.tolist()    # t-1, t-2 dropped: the clip's first frame.
  # Two exposures: the mirror already keeps the phase; one cycle per window: mirrored.
  np.testing.assert_array_equal(losses.subset_index_maps(2, period=2),
                                losses.subset_index_maps(2))
  np.testing.assert_array_equal(losses.subset_index_maps(1, period=3),
                                losses.subset_index_maps(1))


def test_attention_match_loss_is_the_cross_entropy_at_the_match():
  """Three tokens of a 4×5 map, window 3: one whose match is a window pixel, one between
  two pixels, one out of reach; the loss is the cross-entropy of the heads' mean weights
  there, over tokens in reach and visible."""
  h, w = 4, 5
  selected = jnp.array([[7, 12, 0]])                        # (x, y) = (2, 1), (2, 2), (0, 0)
  centres = jnp.array([[[2.0, 1.0], [3.0, 2.0], [0.0, 0.0]]])
  gt = np.zeros((1, h, w, 2), np.float32)
  gt[0, 1, 2] = [1.0, 0.0]                                 # match at window offset (1, 0)
  gt[0, 2, 2] = [1.5, -1.0]                                # (0.5, -1): halfway, top row
  gt[0, 0, 0] = [2.5, 0.0]                                 # beyond the window
  rng = np.random.default_rng(0)
  weights = jax.nn.softmax(jnp.asarray(rng.normal(size=(1, 3, 2, 9)), jnp.float32), -1)
  tokens = {"selected": selected, "centres": centres, "weights": weights}
  mean = np.asarray(weights).mean(axis=2)[0]                             # [3, 9]
  ce7 = -np.log(mean[0, 5] + 1e-6)                                       # row dy=0, dx=+1
  ce12 = -(0.5 * np.log(mean[1, 1] + 1e-6) + 0.5 * np.log(mean[1, 2] + 1e-6))
  loss, reach, hit = losses.attention_match_loss(tokens, jnp.asarray(gt), None, 3)
  np.testing.assert_allclose(float(loss), (ce7 + ce12) / 2, rtol=1e-5)
  np.testing.assert_allclose(float(reach), 2 / 3)
  # A hit: the attention peaks at the window pixel with the most target weight (for the
  # tie at (0.5, -1), the first of the two).
  expect_hit = ((np.argmax(mean[0]) == 5) + (np.argmax(mean[1]) == 1)) / 2
  np.testing.assert_allclose(float(hit), expect_hit)
  # An occluded token does not count.
  visible = np.ones((1, h, w), np.float32)
  visible[0, 2, 2] = 0.0
  loss, _, _ = losses.attention_match_loss(tokens, jnp.asarray(gt), jnp.asarray(visible), 3)
  np.testing.assert_allclose(float(loss), ce7, rtol=1e-5)
  # Attention on the match: the loss is the target's own entropy (0 for a pixel).
  on_match = np.full((1, 3, 2, 9), 1e-9, np.float32)
  on_match[0, 0, :, 5] = 1.0
  on_match[0, 1, :, 1] = on_match[0, 1, :, 2] = 0.5
  loss, _, hit = losses.attention_match_loss(dict(tokens, weights=jnp.asarray(on_match)),
                                             jnp.asarray(gt), None, 3)
  np.testing.assert_allclose(float(loss), np.log(2) / 2, atol=1e-4)
  assert float(hit) == 1.0


def test_attention_match_loss_teaches_fgma_where_the_match_is():
  """Neighbour = reference shifted one pixel right, flow zero: trained on the loss alone,
  FGMA's gathered attention learns to look one pixel right (its expected offset → (1, 0)),
  and the FGMA output there becomes the matching features."""
  from dealthdr_jax.models import fgma as fgma_lib
  rng = np.random.default_rng(1)
  n, h, w, c = 2, 8, 8, 8
  ref = jnp.asarray(rng.normal(size=(n, h, w, c)), jnp.float32)
  nbr = jnp.roll(ref, 1, axis=2)                      # nbr(x + 1) = ref(x)
  flow = jnp.zeros((n, h, w, 2))
  gt = jnp.zeros((n, h, w, 2)).at[..., 0].set(1.0)
  visible = jnp.ones((n, h, w)).at[:, :, -1].set(0.0)   # the last column wraps around
  score = jnp.asarray(rng.permutation(n * h * w).reshape(n, h, w), jnp.float32)
  model = fgma_lib.FGMA(heads=2, window=3)
  params = model.init(jax.random.key(0), ref, nbr, flow, score, 0.5)["params"]
  tx = optax.adam(3e-2)
  opt = tx.init(params)

  def match(p):
    _, _, tokens = model.apply({"params": p}, ref, nbr, flow, score, 0.5, with_tokens=True)
    return losses.attention_match_loss(tokens, gt, visible, 3), tokens

  @jax.jit
  def step(p, o):
    g = jax.grad(lambda q: match(q)[0][0])(p)
    updates, o = tx.update(g, o, p)
    return optax.apply_updates(p, updates), o

  (loss0, _, hit0), _ = match(params)
  for _ in range(150):
    params, opt = step(params, opt)
  (loss1, reach, hit1), tokens = match(params)
  assert float(reach) == 1.0
  assert float(loss1) < 0.3 * float(loss0), (loss0, loss1)
  assert float(hit1) > 0.95 > float(hit0), (hit0, hit1)
  offsets = fgma_lib.expected_offsets(tokens["weights"], 3).mean(axis=-2)        # [N, k, 2]
  inside = np.asarray(tokens["selected"]) % w < w - 1
  offsets = np.asarray(offsets)[inside]
  np.testing.assert_allclose(offsets.mean(axis=0), [1.0, 0.0], atol=0.15)
  assert offsets[:, 0].min() > 0.5, offsets


def test_reexposure_loss_zero_for_consistent_scene():
  s = toy_data.sample(0, 3, frames=3, crop=16, noise=0.0)
  frames = s["frames"][None]
  stops = s["stops"][None]
  flow = s["flow"][None][:, [0, 2]]
  hdr = s["hdr"][None]
  # Ideal re-exposure differs from the 8-bit-quantised observation by < 1/510.
  assert float(losses.reexposure_loss(hdr, frames, stops, flow)) < 3e-3
  assert float(losses.reexposure_loss(hdr * 2, frames, stops, flow)) > 0.05


def test_reexposure_to_left_out_frames_is_matched_by_the_scene_not_the_noise():
  # A static scene seen three times with independent noise. Re-exposed to the reference,
  # an output that copies the reference's noise beats the clean scene; re-exposed to a
  # frame the output did not see (frame_weights), only the clean scene is best.
  rng = np.random.default_rng(5)
  hdr = jnp.asarray(rng.uniform(0.05, 0.4, (1, 24, 24, 3)), jnp.float32)
  stops = jnp.asarray([[1.0, -1.0, 1.0]])
  clean = jnp.stack([resp.apply_response(jnp.clip(hdr * 2.0 ** s, 0, 1), "gamma2.2")
                     for s in stops[0]], 1)                                 # [1, 3, H, W, 3]
  frames = jnp.clip(clean + rng.normal(0, 0.03, clean.shape), 0, 1)
  flow = jnp.zeros((1, 2, 24, 24, 2))
  copy = resp.linearise(frames[:, 1], "gamma2.2") / 2.0 ** stops[0, 1]
  loss = lambda h, w: float(losses.reexposure_loss(h, frames, stops, flow,
                                                   frame_weights=jnp.asarray([w])))
  reference, left_out = [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
  assert loss(copy, reference) < 0.2 * loss(hdr, reference)
  assert loss(hdr, left_out) < 0.8 * loss(copy, left_out)
  # All-ones weights are the unweighted loss; a zero weight removes a frame entirely.
  assert loss(hdr, [1.0, 1.0, 1.0]) == float(losses.reexposure_loss(hdr, frames, stops, flow))
  spoiled = frames.at[:, 0].set(1.0 - frames[:, 0])
  assert float(losses.reexposure_loss(hdr, spoiled, stops, flow,
                                      frame_weights=jnp.asarray([left_out]))) == loss(hdr, left_out)


def test_unrecorded_mask_is_the_evaluation_s_unrecorded_pixels():
  rng = np.random.default_rng(2)
  frames = rng.uniform(0.5, 1.0, (4, 3, 12, 16, 3)).astype(np.float32)
  stops = np.asarray([[0, 2, 0], [2, 0, 2], [0, 1.5, 3], [3, 1.5, 0]], np.float32)
  mask = np.asarray(losses.unrecorded_mask(jnp.asarray(frames), jnp.asarray(stops)))
  assert mask.shape == (4, 12, 16, 1) and 0 < mask.mean() < 1
  for b in range(4):
    np.testing.assert_array_equal(mask[b, ..., 0], headroom.unrecorded(frames[b], stops[b], 1))


def test_hdr_loss_weighted_is_the_mean_over_the_weighted_pixels():
  rng = np.random.default_rng(4)
  gt = rng.uniform(0, 4, (2, 8, 8, 3)).astype(np.float32)
  pred = gt * rng.uniform(0.5, 1.5, gt.shape).astype(np.float32)
  w = (rng.uniform(size=(2, 8, 8, 1)) > 0.5).astype(np.float32)
  assert float(losses.hdr_loss(pred, gt, weights=np.ones_like(w))) == pytest.approx(
      float(losses.hdr_loss(pred, gt)), rel=1e-6)
  m = gt.max(axis=(1, 2, 3), keepdims=True)
  err = np.abs(np_response.mu_law(pred / m) - np_response.mu_law(gt / m))
  ref = (err * w).sum() / (3 * w.sum())
  assert float(losses.hdr_loss(pred, gt, weights=w)) == pytest.approx(ref, rel=1e-5)
  assert float(losses.hdr_loss(pred, gt, weights=np.zeros_like(w))) == 0.0


def test_left_out_frames_are_those_no_position_reads():
  for radius, period in ((1, 2), (2, 2), (1, None), (2, 3)):
    maps = losses.subset_index_maps(radius, period)
    left_out = np.asarray(train.left_out_frames(maps))
    for idx, out in zip(maps, left_out):
      np.testing.assert_array_equal(out, [float(j not in set(idx)) for j in range(len(idx))])
      assert out[radius] == 0 and out.sum() >= 1


def test_calibration_curve_identity_at_init_and_invertible():
  x = jnp.linspace(0.0, 1.0, 101)
  identity = resp.curve_knots(jnp.zeros(16))
  np.testing.assert_allclose(resp.apply_curve(x, identity), x, atol=1e-6)
  curve = resp.curve_knots(jnp.asarray(np.random.default_rng(3).normal(size=16)))
  y = resp.apply_curve(x, curve)
  assert float(curve[0]) == 0.0 and abs(float(curve[-1]) - 1.0) < 1e-6
  assert bool(jnp.all(jnp.diff(y) >= 0))
  np.testing.assert_allclose(resp.invert_curve(y, curve), x, atol=1e-5)


def test_calibration_curve_keeps_its_least_slope():
  """With `min_slope` the curve cannot flatten or invert any range of contrast, however
  extreme its logits; zero logits are still the identity."""
  np.testing.assert_allclose(resp.curve_knots(jnp.zeros(8), 0.25), np.linspace(0, 1, 9),
                             atol=1e-6)
  for seed in range(5):
    logits = jnp.asarray(np.random.default_rng(seed).normal(0, 30, 32))
    knots = np.asarray(resp.curve_knots(logits, 0.25))
    assert np.diff(knots).min() * 32 >= 0.25 - 1e-5
    assert knots[0] == 0.0 and abs(knots[-1] - 1.0) < 1e-5
  with pytest.raises(ValueError, match="min_slope"):
    resp.curve_knots(jnp.zeros(8), 1.0)


def test_curve_prior_is_the_shape_distance_from_the_declared_response():
  identity = np.linspace(0, 1, 17)
  assert float(losses.curve_prior(resp.curve_knots(jnp.zeros(16)))) < 1e-12
  # A scale of the curve (an exposure scale of the radiance) is not a change of shape.
  assert float(losses.curve_prior(jnp.asarray(0.8 * identity))) < 1e-12
  power = identity ** 1.8
  scale = np.sum(power * identity) / np.sum(identity ** 2)
  np.testing.assert_allclose(float(losses.curve_prior(jnp.asarray(power))),
                             np.mean((power - scale * identity) ** 2), rtol=1e-5)
  assert float(losses.curve_prior(jnp.asarray(power))) > 1e-3


SIGMOID_N, SIGMOID_SIGMA = 0.65, 0.6


def _calibrate(prior: float, min_slope: float) -> np.ndarray:
  """The curve learned by minimising the re-exposure loss (+ smoothness, + `prior` ×
  curve_prior) over a 32-segment curve with `min_slope`, on a static alternating-exposure
  scene shot with a sigmoid camera (HDRFlow's random curve) but read as gamma 2.2.
  Returns the curve's knots [33]."""
  rng = np.random.default_rng(0)
  b, h, w = 8, 16, 16
  hdr = (np.exp(rng.uniform(np.log(1e-3), 0.0, (b, h, w, 1)))
         * rng.uniform(0.6, 1.0, (b, h, w, 3)))
  gap = rng.uniform(1.0, 4.0, b)
  stops = np.stack([np.zeros(b), gap, np.zeros(b)], 1)                  # short, long, short
  ldr = camera.sigmoid_response(np.clip(hdr[:, None] * 2.0 ** stops[..., None, None, None],
                                        0, 1), SIGMOID_N, SIGMOID_SIGMA)
  frames = jnp.asarray(np.round(ldr * 255) / 255, jnp.float32)
  stops = jnp.asarray(stops, jnp.float32)
  flow = jnp.zeros((b, 2, h, w, 2), jnp.float32)

  def loss(logits):
    # A stand-in model: well-exposedness-weighted merge of the curve-corrected frames.
    curve = resp.curve_knots(logits, min_slope)
    corrected = resp.apply_curve(frames, curve)
    weight = resp.well_exposedness(corrected.max(-1, keepdims=True)) + 1e-4
    lin = resp.linearise(corrected) / (2.0 ** stops)[:, :, None, None, None]
    merged = (lin * weight).sum(1) / weight.sum(1)
    return (losses.reexposure_loss(merged, frames, stops, flow, curve=curve)
            + 1e-3 * losses.curve_roughness(curve) + prior * losses.curve_prior(curve))

  tx = optax.adam(3e-2)

  @jax.jit
  def step(logits, opt_state):
    grads = jax.grad(loss)(logits)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(logits, updates), opt_state

  logits = jnp.zeros(32)
  opt_state = tx.init(logits)
  for _ in range(400):
    logits, opt_state = step(logits, opt_state)
  return np.asarray(resp.curve_knots(logits, min_slope))


def _linear_error(knots: np.ndarray | None) -> np.ndarray:
  """Relative error of the linear values read through gamma 2.2 after `knots` (None: no
  curve) at LDR 0.1 … 0.9, against the sigmoid camera's true inverse."""
  ys = jnp.linspace(0.1, 0.9, 9)
  read = ys if knots is None else resp.apply_curve(ys, jnp.asarray(knots))
  truth = camera.sigmoid_inverse(np.asarray(ys), SIGMOID_N, SIGMOID_SIGMA)
  return np.abs(np.asarray(resp.linearise(read)) / truth - 1)


def test_reexposure_loss_calibrates_an_unknown_response():
  """Stage 2's response calibration is identifiable: the sigmoid camera read as gamma 2.2
  (linear values off by up to ~60 %) is re-linearised to within a few per cent by the
  re-exposure loss, also under stage 2's defaults (least slope, prior towards the declared
  response); a strong prior holds the curve at the declared response instead."""
  from configs import common  # pylint: disable=g-import-not-at-top
  assert _linear_error(None).max() > 0.5
  free = _calibrate(prior=0.0, min_slope=0.0)
  assert _linear_error(free).max() < 0.03, _linear_error(free)
  default = _calibrate(prior=common.CURVE_PRIOR, min_slope=0.25)
  assert _linear_error(default).max() < 0.08, _linear_error(default)
  held = _calibrate(prior=100.0, min_slope=0.25)
  distance = lambda k: np.sqrt(np.mean((k - np.linspace(0, 1, 33)) ** 2))
  print(f"curve distance from the declared response: free {distance(free):.4f}, "
        f"default prior {distance(default):.4f}, strong prior {distance(held):.4f}")
  assert distance(held) < 0.2 * distance(free)


def test_toy_sample_conventions():
  s = toy_data.sample(1, 0, frames=3, crop=16, noise=0.0)
  ref = np_response.ldr_to_radiance(s["frames"][1], s["stops"][1])
  ok = np_response.well_exposed(s["frames"][1])
  np.testing.assert_allclose(ref[ok], s["hdr"][ok], rtol=0.05, atol=1e-3)
  assert s["stops"].min() == 0 and np.all(s["flow"][1] == 0)


def test_sample_ratio_deterministic():
  ratios = (0.0, 0.25, 1.0)
  a = [train.sample_ratio(0, s, ratios) for s in range(50)]
  assert a == [train.sample_ratio(0, s, ratios) for s in range(50)]
  assert set(a) == set(ratios)


def test_tree_shardings_rules():
  mesh = sharding.make_mesh((-1,), ("data",))
  tree = {"params": {"conv": {"kernel": jnp.zeros((3, 3, 4, 8)), "bias": jnp.zeros(8)}}}
  out = sharding.tree_shardings(mesh, tree, [("conv/bias", ("data",))])
  assert out["params"]["conv"]["kernel"].spec == jax.sharding.PartitionSpec()
  assert out["params"]["conv"]["bias"].spec == jax.sharding.PartitionSpec("data")
  with pytest.raises(ValueError, match="mesh.axes"):
    sharding.make_mesh((-1,), ("model",))


@pytest.mark.parametrize("name", ["dealthdr_2exp", "dealthdr_3exp", "dealthdr_2exp_stage2",
                                  "dealthdr_3exp_stage2", "flow_pretrain", "dealthdr_align"])
def test_configs_have_training_sections(name):
  for size in ("tiny", "small", "base"):
    config = config_loading.load_config(f"{name}:size={size}")
    train.check_config(config)
    assert config.data.crop % 16 == 0 and config.batch_size > 0
  with pytest.raises(KeyError, match="optim.lrr"):
    config_loading.apply_overrides(config, ["--config.optim.lrr=1"])


def test_align_config_weights_reference_levels():
  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config("dealthdr_align:pattern=3exp,flow=,refs=1:1:2")
  assert pipeline.as_config(config).patterns.reference_weights == (1.0, 1.0, 2.0)
  assert pipeline.validation_config(config).patterns.reference_weights == ()
  with pytest.raises(ValueError, match="one weight per exposure level"):
    config_loading.load_config("dealthdr_align:pattern=2exp,refs=1:1:2")


def test_bad_inputs_fail_before_compute(tmp_path):
  config = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  config.data.source = "clips"
  config.data.clips = str(tmp_path / "missing")
  with pytest.raises(input_pipeline.DataError, match="not a folder"):
    train.prepare(config, tmp_path / "w")
  (tmp_path / "empty").mkdir()
  config.data.clips = str(tmp_path / "empty")
  with pytest.raises(input_pipeline.DataError, match="no clip folders"):
    train.prepare(config, tmp_path / "w")
  bad = tmp_path / "clips" / "a"
  bad.mkdir(parents=True)
  (bad / "0.png").write_bytes(b"not a png")
  (bad / "1.png").write_bytes(b"not a png")
  config.data.clips = str(tmp_path / "clips")
  with pytest.raises(input_pipeline.DataError, match="unreadable clip"):
    train.prepare(config, tmp_path / "w")
  config.data.source = "nope"
  with pytest.raises(input_pipeline.DataError, match="unknown data.source"):
    train.prepare(config, tmp_path / "w")
  # Options that the chosen source never reads fail instead of being ignored.
  config.data.source = "synthetic"
  with pytest.raises(input_pipeline.DataError, match="data.clips=.* has no effect"):
    train.prepare(config, tmp_path / "w")
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config.data.exposures = "0,3"
  with pytest.raises(input_pipeline.DataError, match="data.exposures=.* has no effect.*toy"):
    train.prepare(config, tmp_path / "w")
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config.data.other_camera = True
  with pytest.raises(input_pipeline.DataError, match="other_camera=True has no effect"):
    train.prepare(config, tmp_path / "w")
  config = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  config.data.heldout_min_gain = 1.5
  with pytest.raises(input_pipeline.DataError, match=r"heldout_min_gain=1.5 must be in \[0, 1\)"):
    train.prepare(config, tmp_path / "w")
  # The stage-1 orientation terms: each setting is refused with its own message.
  refused = [
      ("dealthdr_2exp_stage2", {"loss.mirror_weight": 1.0},
       "mirror_weight=1.0 has no effect in stage 2"),
      ("dealthdr_2exp", {"loss.mirror_weight": -0.5}, "mirror_weight must be ≥ 0"),
      ("dealthdr_2exp", {"loss.mirror_weight": 1.0, "loss.mirror_region": "clipped"},
       "mirror_region must be one of"),
      ("dealthdr_2exp", {"loss.distill_weight": 1.0}, "needs a teacher: optim.ema_decay > 0"),
      ("dealthdr_2exp", {"loss.distill_weight": 1.0, "optim.ema_decay": 1.0},
       "ema_decay=1 keeps the EMA at the starting model"),
      ("dealthdr_2exp", {"loss.distill_weight": 1.0, "optim.ema_decay": 1.0,
                         "export_params": "params", "loss.distill_copies": 3},
       "distill_copies must be one of"),
      ("dealthdr_2exp", {"loss.distill_weight": 1.0, "optim.ema_decay": 1.0,
                         "export_params": "params", "loss.distill_ratio": 1.5},
       r"distill_ratio must be < 0 \(the step.s own ratio\) or in \[0, 1\], got 1.5"),
      ("dealthdr_2exp", {"loss.distill_weight": 1.0, "optim.ema_decay": 1.0,
                         "export_params": "params", "loss.distill_region": "clipped"},
       "distill_region must be one of"),
      ("dealthdr_2exp_stage2", {"loss.distill_weight": 1.0},
       "distill_weight=1.0 must be ≥ 0, and > 0 only in stage 1"),
  ]
  for name, settings, message in refused:
    config = config_loading.load_config(f"{name}:size=tiny")
    for key, value in settings.items():
      section, _, field = key.rpartition(".")
      (config[section] if section else config)[field] = value
    with pytest.raises(ValueError, match=message):
      train.prepare(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_incompatible_workdir_refused_and_untouched(tmp_path):
  # A fake checkpoint whose config has another model.
  step_dir = tmp_path / "checkpoints" / "6" / "config"
  step_dir.mkdir(parents=True)
  other = config_loading.load_config("dealthdr_2exp:size=small")
  (step_dir / "metadata").write_text(json.dumps(checkpoints.config_dict(other)))
  before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  with pytest.raises(checkpoints.IncompatibleCheckpointError, match="model.features"):
    train.prepare(config, tmp_path)
  assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
  # Only the compute dtype differs: allowed.
  other = config_loading.load_config("dealthdr_2exp:size=tiny")
  other.model.dtype = "bfloat16"
  (step_dir / "metadata").write_text(json.dumps(checkpoints.config_dict(other)))
  train.prepare(config, tmp_path)


def test_source_dir_reaches_the_simulator_with_held_out_validation(tmp_path, hdr_sources_dir):
  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  from data_pipeline import sources  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config("dealthdr_2exp:size=small")
  config_loading.apply_overrides(config, [f"--config.data.source_dir={hdr_sources_dir}",
                                        "--config.data.num_val_sources=3"])
  input_pipeline.check(config)
  sim_config = pipeline.as_config(config)
  assert sim_config.source_dir == str(hdr_sources_dir) and sim_config.source_split == "train"
  val_config = pipeline.validation_config(config)
  assert val_config.source_split == "val" and val_config.num_val_sources == 3
  train_names = set(sources.ImageFolderSource(hdr_sources_dir, split="train", num_val=3,
                                              validate=False).train_names)
  val_names = set(sources.ImageFolderSource(hdr_sources_dir, split="val", num_val=3,
                                            validate=False).val_names)
  assert len(val_names) == 3 and not train_names & val_names
  assert sim_config.responses == ("gamma2.2", "srgb", "sigmoid")
  config_loading.apply_overrides(config, ["--config.data.responses=('gamma2.2',)"])
  sim_config = pipeline.as_config(config)
  assert sim_config.responses == ("gamma2.2",) and sim_config.response_weights is None
  from data_pipeline import camera  # pylint: disable=g-import-not-at-top
  batch = next(input_pipeline.make_train_iterator(config, seed=0, batch_size=4))
  assert (batch["response_id"] == camera.ALL_RESPONSES.index("gamma2.2")).all()
  config.data.source_dir = str(tmp_path / "missing")
  with pytest.raises(input_pipeline.DataError, match="missing.*does not exist"):
    train.prepare(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_best_step_is_the_best_validated_kept_checkpoint(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  manager = checkpoints.make_manager(tmp_path, keep=1)
  rows = []
  for step, psnr_t in [(10, 25.0), (20, 27.5), (30, 26.0), (40, 26.5)]:
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave({"w": np.full(2, step, np.float32)})),
        metrics={checkpoints.BEST_METRIC: psnr_t})
    rows += [{"step": step, "train/loss": 1.0}, {"step": step, "val/psnr_t": psnr_t}]
  manager.wait_until_finished()
  (tmp_path / "metrics.jsonl").write_text(
      "\n".join(json.dumps(r) for r in rows) + '\n{"step": 50, "val/ps')  # cut by a kill
  assert manager.all_steps() == [20, 40]  # latest 1 + best 1 kept
  assert checkpoints.best_step(manager, tmp_path) == 20
  assert checkpoints.best_step(manager, tmp_path / "elsewhere") is None
  manager.close()


def test_keep_best_survives_a_resume(tmp_path):
  """orbax forgets the metrics of earlier steps on restart; the manager relearns them from
  metrics.jsonl, so the best pre-resume checkpoint is never dropped."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  def save(manager, step, psnr_t):
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave({"w": np.full(2, step, np.float32)})),
        metrics=None if psnr_t is None else {checkpoints.BEST_METRIC: psnr_t})
    manager.wait_until_finished()
    if psnr_t is not None:
      with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, "val/psnr_t": psnr_t}) + "\n")

  manager = checkpoints.make_manager(tmp_path, keep=2)
  for step, psnr_t in [(1, 20.0), (2, 30.0), (3, 25.0), (4, 26.0)]:
    save(manager, step, psnr_t)
  manager.close()
  for restart in range(2):  # Two resumes, each followed by saves with and without metrics.
    manager = checkpoints.make_manager(tmp_path, keep=2)
    for step in range(5 + 4 * restart, 9 + 4 * restart):
      save(manager, step, None if step % 3 == 0 else 21.0 + step / 10)
      assert 2 in manager.all_steps(), (restart, step, manager.all_steps())
    manager.close()
  manager = checkpoints.make_manager(tmp_path, keep=2)
  assert manager.all_steps() == [2, 11, 12]  # the best, then the latest two
  assert checkpoints.best_step(manager, tmp_path) == 2
  manager.close()


def test_stage2_clips_hold_out_a_strip_that_training_never_crops(tmp_path):
  from data_pipeline import synth  # pylint: disable=g-import-not-at-top
  synth.write_clips(tmp_path / "clips", num_clips=1, num_frames=4, size=(64, 80), seed=1)
  config = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  config.data.source, config.data.clips = "clips", str(tmp_path / "clips")
  config.data.heldout_windows = 4
  input_pipeline.check(config)
  clip = clips_lib.open_clip(tmp_path / "clips" / "clip_0000")
  frames = np.stack([clip.window(t, 1)[0] for t in range(len(clip))])  # [N, 3, 64, 80, 3]
  # The right max(crop, 25 %) = 32 columns are the held-out strip: x ∈ [48, 80).
  assert input_pipeline.heldout_start(80, config) == 48
  held = input_pipeline.make_heldout_batches(config, batch_size=2)
  assert len(held) == 2 and set(held[0]) == {"frames", "stops"}
  strip = frames[:, :, 16:48, 48:80]  # Centred vertically.
  for batch in held:
    for window in batch["frames"]:
      assert any(np.array_equal(window, s) for s in strip)
  it = input_pipeline.make_train_iterator(config, seed=0, batch_size=4)
  for _ in range(4):
    for window in next(it)["frames"]:
      # Training crops (possibly mirrored) come from columns [0, 48) only.
      found = [x for x in range(0, 48 - 32 + 1) for y in range(0, 64 - 32 + 1) for f in frames
               if np.array_equal(window, f[:, y:y + 32, x:x + 32]) or
               np.array_equal(window, f[:, y:y + 32, x:x + 32][:, :, ::-1])]
      assert found
  config.data.crop = 48  # 80 px cannot hold a 48-px training region and a 48-px strip.
  with pytest.raises(input_pipeline.DataError, match="needs at least 96"):
    input_pipeline.check(config)


def test_stage2_clips_are_read_with_the_model_s_response_not_their_meta_json(tmp_path):
  """A clip whose meta.json names a response no reader knows (stage 2's simulated other
  camera says "sigmoid") trains as the model's response says (adapt --response)."""
  import json  # pylint: disable=g-import-not-at-top
  from data_pipeline import synth  # pylint: disable=g-import-not-at-top
  (clip,) = synth.write_clips(tmp_path / "clips", num_clips=1, num_frames=4, size=(64, 80),
                              seed=1, response="srgb")
  meta = json.loads((clip / "meta.json").read_text())
  (clip / "meta.json").write_text(json.dumps({**meta, "response": "sigmoid"}))
  config = config_loading.load_config("dealthdr_2exp_stage2:size=tiny")
  config.data.source, config.data.clips = "clips", str(tmp_path / "clips")
  config.data.heldout_windows = 2
  with pytest.raises(clips_lib.ClipError, match="unknown camera response 'sigmoid'"):
    clips_lib.open_clip(clip)
  for response in ("gamma2.2", "srgb"):
    config.model.response = response
    input_pipeline.check(config)
    held = input_pipeline.make_heldout_batches(config, batch_size=2)
    # The tone calibration is measured through the model's response.
    read = clips_lib.open_clip(clip, response=response)
    frames, _ = read.window(1, 1)
    assert any(np.array_equal(w, frames[:, 16:48, 48:80]) for b in held for w in b["frames"])
