"""Physics of the camera simulator: noise statistics, blur, ground-truth flow, radiance units."""
import numpy as np
import pytest
from scipy import ndimage

from data_pipeline import camera
from data_pipeline import motion
from data_pipeline import patterns
from data_pipeline import response
from data_pipeline import simulator

SMALL = simulator.SimulatorConfig(size=(48, 48))


def warp(image, flow):
  """Bilinear backward warp: out[p] = image[p + flow[p]] (edges clamped).

  image: [H, W, C] float; flow: [H, W, 2] (dx, dy).
  """
  h, w = flow.shape[:2]
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  coords = [yy + flow[..., 1], xx + flow[..., 0]]
  return np.stack([ndimage.map_coordinates(image[..., c], coords, order=1, mode="nearest")
                   for c in range(image.shape[-1])], -1)


@pytest.mark.parametrize("x", [0.002, 0.2, 0.7])
def test_noise_variance_follows_poisson_gaussian(x):
  noise = camera.NoiseParams(full_well=5000.0, read_noise=5.0, gain=4.0)
  flat = np.full((256, 256, 3), x, np.float32)
  noisy = camera.add_sensor_noise(np.random.default_rng(0), flat, noise)
  expected = noise.a * x + noise.b
  assert noisy.mean() == pytest.approx(x, abs=4 * np.sqrt(expected / noisy.size))
  assert noisy.var() == pytest.approx(expected, rel=0.03)


def test_captured_flat_patch_variance_includes_quantisation():
  noise = camera.NoiseParams(full_well=20000.0, read_noise=3.0, gain=8.0)
  x = 0.3
  frame = camera.capture(np.random.default_rng(1), np.full((256, 256, 3), x, np.float32),
                         0.0, noise, camera.CameraResponse("linear"), bits=10)
  expected = noise.a * x + noise.b + (1 / 1023) ** 2 / 12
  assert frame.var() == pytest.approx(expected, rel=0.04)
  # 10-bit codes only.
  np.testing.assert_allclose(frame * 1023, np.round(frame * 1023), atol=1e-3)


def test_noise_parameter_ranges_are_realistic():
  rng = np.random.default_rng(0)
  params = [camera.sample_noise_params(rng) for _ in range(500)]
  a = np.array([p.a for p in params])
  b = np.array([p.b for p in params])
  # darktable's profiles: a ~ 1e-5 (base ISO) … 1e-2 (high ISO) for raw in [0, 1].
  assert 1e-5 < a.min() and a.max() < 1e-2
  assert 0 < b.min() and b.max() < 1e-4


def test_static_scene_has_no_blur_and_zero_flow():
  config = SMALL.replace(motion=motion.MotionConfig.static(), noise=None,
                         responses=("linear",), response_weights=None, bits=(12,),
                         duty=(1.0, 1.0), pattern="3exp")
  s = simulator.render_clip(3, config)
  assert s["meta"]["subframes"] == [1] * 5
  assert not s["flow"].any() and not s["occlusion"].any()
  # Every frame is exactly the ideal exposure of the sharp GT (up to 12-bit rounding).
  ideal = camera.quantise(response.radiance_to_ldr(s["hdr"][None], s["stops"], "linear"), 12)
  np.testing.assert_allclose(s["frames"], ideal, atol=1.01 / 4095)


def _edge_scene(speed):
  background = np.full((64, 400, 3), 0.1, np.float32)
  background[:, 200:] = 1.0
  return motion.Scene(background=background, base=motion.translate(200 - 31.5, 0.0),
                      camera=motion.Trajectory(velocity=(speed, 0.0)), layers=[],
                      size=(32, 64))


def _edge_width(row):
  """Pixels strictly between 10% and 90% of a rising 0.1 → 1 edge."""
  t = (row - 0.1) / 0.9
  return int(np.sum((t > 0.1) & (t < 0.9)))


def test_blur_length_grows_with_exposure_time():
  speed = 8.0  # px per frame period.
  scene = _edge_scene(speed)
  sim = simulator.Simulator(SMALL)
  widths = []
  for duration in (0.0, 0.25, 0.5, 1.0):
    n = sim.num_subframes(scene, -duration / 2, duration / 2)
    img = camera.integrate_exposure(scene.render, -duration / 2, duration / 2, n)
    widths.append(_edge_width(img[16, :, 1]))
    # A linear ramp of length v·d has a 10–90% width of 0.8·v·d.
    assert widths[-1] == pytest.approx(0.8 * speed * duration, abs=1.5)
  assert widths[0] <= 1 and widths == sorted(widths) and widths[-1] >= 5


def test_long_frames_blur_more_in_rendered_clips():
  config = SMALL.replace(noise=None, duty=(1.0, 1.0),
                         patterns=patterns.PatternConfig(gap_2exp=(3.0, 3.0)))
  s = simulator.render_clip(5, config)
  durations = np.array(s["meta"]["durations"])
  long = int(np.argmax(s["stops"]))
  assert durations[long] == pytest.approx(1.0)
  assert durations.min() == pytest.approx(2.0**-3)
  assert s["meta"]["subframes"][long] >= max(s["meta"]["subframes"])


@pytest.mark.parametrize("seed", [0, 1])
def test_gt_flow_warps_neighbours_onto_reference(seed):
  sim = simulator.Simulator(simulator.SimulatorConfig(size=(64, 64), pattern="3exp"))
  scene, _ = sim.build_scene(np.random.default_rng(seed), 5.0, 0.0)
  ref = scene.render(0.0)
  for t in (-2.0, -1.0, 1.0, 2.0):
    neighbour = scene.render(t)
    flow, occluded = scene.flow(0.0, t)
    valid = ~ndimage.binary_dilation(occluded, iterations=2)
    assert valid.mean() > 0.5
    err = np.abs(np.log2(warp(neighbour, flow) + 1e-6) - np.log2(ref + 1e-6))[valid]
    err_still = np.abs(np.log2(neighbour + 1e-6) - np.log2(ref + 1e-6))[valid]
    assert np.median(err) < 0.03, (t, np.median(err))
    assert np.median(err) < 0.2 * np.median(err_still)


def test_sequence_flow_and_occlusion_are_consistent_with_gt():
  s = simulator.render_sequence(2, 4, simulator.SimulatorConfig(size=(64, 64)))
  assert s["hdr"].shape == (4, 64, 64, 3) and s["flow"].shape == (3, 64, 64, 2)
  for j in range(3):
    valid = ~ndimage.binary_dilation(s["occlusion"][j], iterations=2)
    err = np.abs(np.log2(warp(s["hdr"][j + 1], s["flow"][j]) + 1e-9)
                 - np.log2(s["hdr"][j] + 1e-9))[valid]
    assert np.median(err) < 0.03


def test_moving_layers_occlude():
  config = simulator.SimulatorConfig(
      size=(64, 64), motion=motion.MotionConfig(num_layers=(3, 3), layer_speed=(6.0, 8.0)))
  s = simulator.render_clip(4, config)
  assert not s["flow"][1].any() and not s["occlusion"][1].any()  # The reference.
  assert 0.0 < s["occlusion"][0].mean() < 0.5 and 0.0 < s["occlusion"][2].mean() < 0.5


@pytest.mark.parametrize("name", ["gamma2.2", "srgb", "sigmoid"])
def test_ldr_round_trip_recovers_radiance(name):
  config = SMALL.replace(responses=(name,), response_weights=None, bits=(12,),
                         noise=camera.NoiseRanges(full_well=(60000, 60000), gain=(1, 1),
                                                  read_noise=(1, 1)),
                         motion=motion.MotionConfig.static())
  s = simulator.render_clip(6, config)
  cam = camera.CameraResponse(s["meta"]["response"], *s["response_params"].tolist())
  covered = np.zeros(s["hdr"].shape[:2], bool)
  for frame, stops in zip(s["frames"], s["stops"]):
    lin = cam.linearise(frame)
    est = lin / 2.0**stops
    well = np.all((lin > 0.05) & (lin < 0.9), axis=-1)
    covered |= well
    if well.sum() > 20:
      rel = np.abs(est - s["hdr"])[well] / s["hdr"][well]
      assert np.median(rel) < 0.02
  assert covered.mean() > 0.3


def test_sigmoid_response_inverse():
  x = np.linspace(0, 1, 1001, dtype=np.float32)
  for n, sigma in [(0.4, 0.4), (0.65, 0.6), (0.9, 0.8)]:
    y = camera.sigmoid_response(x, n, sigma)
    assert y[0] == 0 and y[-1] == pytest.approx(1.0) and np.all(np.diff(y) > 0)
    np.testing.assert_allclose(camera.sigmoid_inverse(y, n, sigma), x, atol=1e-5)


def test_sampled_sigmoid_parameters_stay_in_range():
  rng = np.random.default_rng(0)
  rs = [camera.sample_response(rng, ("sigmoid",)) for _ in range(300)]
  n = np.array([r.n for r in rs])
  s = np.array([r.sigma for r in rs])
  assert n.min() >= 0.4 and n.max() <= 0.9 and abs(n.mean() - 0.65) < 0.02
  assert s.min() >= 0.4 and s.max() <= 0.8 and abs(s.mean() - 0.6) < 0.02


def test_stage2_camera_is_one_fixed_curve_and_bad_specs_are_named():
  rng = np.random.default_rng(0)
  fixed = [camera.sample_response(rng, ("sigmoid:0.6,0.5",)) for _ in range(20)]
  assert {(r.name, r.n, r.sigma) for r in fixed} == {("sigmoid", 0.6, 0.5)}
  other = simulator.stage2_camera(simulator.SimulatorConfig(size=(32, 32)))
  assert other.responses == (simulator.STAGE2_RESPONSE,)
  shapes = {tuple(np.round(simulator.render_clip(seed, other)["response_params"], 6))
            for seed in range(3)}
  assert len(shapes) == 1
  for bad in ("sigmoid:0.6", "sigmoid:a,b", "sigmoid:-1,0.5", "gamma2.2:1,1", "log"):
    with pytest.raises(ValueError, match="camera response"):
      camera.parse_response(bad)
  with pytest.raises(ValueError, match="sigmoid:N,SIGMA"):
    simulator.SimulatorConfig(responses=("sigmoid:0.6",))


@pytest.mark.parametrize("pattern,levels", [("2exp", 2), ("3exp", 3)])
def test_patterns(pattern, levels):
  rng = np.random.default_rng(0)
  phases = set()
  for _ in range(50):
    stops = patterns.sample_stops(rng, pattern, 7)
    assert stops.min() == 0 and len(np.unique(stops)) == levels
    gaps = np.diff(np.unique(stops))
    assert np.all(gaps >= 1.0) and np.all(gaps <= 4.0)
    # Cyclic: frame j and j + levels share an exposure.
    np.testing.assert_array_equal(stops[levels:], stops[:-levels])
    phases.add(int(np.argmin(stops[:levels])))
  assert phases == set(range(levels))


def test_reference_weights_set_the_reference_level():
  """Weighted reference levels: frequencies follow the weights, the cycle stays intact,
  a zero weight never occurs, and without a reference index the phase stays uniform."""
  config = patterns.PatternConfig(reference_weights=(1.0, 0.0, 3.0))
  rng = np.random.default_rng(1)
  counts = np.zeros(3)
  for _ in range(400):
    stops = patterns.sample_stops(rng, "3exp", 5, config, reference=2)
    levels = np.unique(stops)
    np.testing.assert_array_equal(stops[3:], stops[:2])
    counts[int(np.searchsorted(levels, stops[2]))] += 1
  assert counts[1] == 0
  assert 0.68 < counts[2] / counts.sum() < 0.82  # 0.75 expected; 400 draws: σ ≈ 0.022.
  whole = [int(np.argmin(patterns.sample_stops(rng, "3exp", 6, config)[:3])) for _ in range(60)]
  assert set(whole) == {0, 1, 2}
  with pytest.raises(ValueError, match="one weight per level"):
    patterns.sample_stops(rng, "2exp", 3, config, reference=1)
  with pytest.raises(ValueError, match="positive sum"):
    patterns.PatternConfig(reference_weights=(0.0, 0.0))
  # Through the simulator's config dict, as a training config passes it.
  sim = simulator.SimulatorConfig.from_dict(
      {"pattern": "3exp", "size": (16, 16), "patterns": {"reference_weights": (0, 0, 1)}})
  window = simulator.render_clip(3, sim)
  assert window["stops"][2] == window["stops"].max()


def test_window_keys_and_ranges():
  s = simulator.render_clip(0, SMALL.replace(pattern="3exp"))
  assert s["frames"].shape == (5, 48, 48, 3) and s["frames"].dtype == np.float32
  assert 0 <= s["frames"].min() and s["frames"].max() <= 1
  assert s["stops"].shape == (5,) and s["stops"].min() == 0
  assert s["hdr"].shape == (48, 48, 3) and s["hdr"].min() >= 0
  assert s["flow"].shape == (5, 48, 48, 2) and s["occlusion"].dtype == bool
  # Normalisation: the chosen percentile sits at the drawn level for the shortest exposure.
  p = np.percentile(s["hdr"] @ np.array([0.2126, 0.7152, 0.0722]), SMALL.norm_percentile)
  assert SMALL.norm_level[0] - 1e-3 <= p <= SMALL.norm_level[1] + 1e-3


def test_same_seed_same_sample_different_seed_different():
  a = simulator.render_clip(11, SMALL)
  b = simulator.render_clip(11, SMALL)
  c = simulator.render_clip(12, SMALL)
  for k in ("frames", "stops", "hdr", "flow", "occlusion"):
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a["frames"], c["frames"])


def test_bad_requests_fail_clearly():
  with pytest.raises(ValueError, match="at least 2 frames"):
    simulator.render_sequence(0, 1, SMALL)
  with pytest.raises(ValueError, match="unknown exposure pattern"):
    simulator.SimulatorConfig(pattern="4exp")
  with pytest.raises(ValueError, match="radius"):
    simulator.SimulatorConfig(radius=0)
  with pytest.raises(ValueError, match="bits"):
    simulator.SimulatorConfig(bits=(9,))
  with pytest.raises(ValueError, match="unknown SimulatorConfig keys"):
    simulator.SimulatorConfig.from_dict({"sise": [64, 64]})
