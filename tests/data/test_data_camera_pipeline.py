"""The real-camera pipeline of the simulator (`data_pipeline.camera_pipeline`): physical
properties of each stage and of clips rendered through it."""
import numpy as np
import pytest

from data_pipeline import camera
from data_pipeline import camera_pipeline as cp
from data_pipeline import simulator as sim_lib

LINEAR = cp.ToneCurve(camera.CameraResponse("linear"))
NOISE = camera.NoiseParams(full_well=2000.0, read_noise=2.0, gain=1.0)


def _flat(value, size=32):
  return np.broadcast_to(np.asarray(value, np.float32), (size, size, 3)).copy()


@pytest.mark.parametrize("method", cp.DEMOSAIC)
@pytest.mark.parametrize("pattern", cp.PATTERNS)
def test_demosaicing_a_flat_colour_gives_it_back(pattern, method):
  colour = _flat([0.8, 0.5, 0.2], 16)
  out = cp.demosaic(cp.mosaic(colour, pattern), pattern, method)
  np.testing.assert_allclose(out, colour, atol=1e-4)
  with pytest.raises(ValueError, match="even sides"):
    cp.demosaic(np.zeros((15, 16), np.float32), pattern, method)


@pytest.mark.parametrize("contrast,base", [(1.0, "gamma2.2"), (1.4, "srgb"), (1.2, "linear")])
def test_a_noiseless_camera_inverts_to_the_exposed_light(contrast, base):
  """No noise, 16-bit file: the tone curve's inverse gives back scene light × exposure
  (white balance and the colour matrix cancel the sensor's colour), for in-gamut colours
  below the clipping point."""
  settings = cp.PipelineSettings(wb_gains=(2.2, 1.7), tone=cp.ToneCurve(
      camera.CameraResponse(base), contrast), jpeg_quality=0, raw_bits=14,
      colour_matrix=tuple(map(tuple, cp.random_colour_matrix(np.random.default_rng(1),
                                                             (1.3, 1.8)).tolist())))
  for colour in ([0.05, 0.05, 0.05], [0.2, 0.1, 0.05], [0.03, 0.09, 0.12]):
    radiance = _flat(colour)
    out = cp.capture(np.random.default_rng(0), radiance, 2.0, None, settings)
    linear = settings.tone.linearise(out)
    np.testing.assert_allclose(linear, radiance * 4.0, rtol=2e-3, atol=1e-4)


def test_white_balance_amplifies_red_and_blue_noise_and_demosaicing_correlates_it():
  settings = cp.PipelineSettings(wb_gains=(2.5, 2.0), tone=LINEAR, jpeg_quality=0,
                                 black_level=0.0, raw_bits=14)
  grey = _flat([0.2, 0.2, 0.2], 64)
  clean = cp.capture(np.random.default_rng(0), grey, 0.0, None, settings)
  residual = cp.capture(np.random.default_rng(1), grey, 0.0, NOISE, settings) - clean
  std = residual.std((0, 1))
  # Red and blue photosites see 1/2.5 and 1/2 of green's light: after the gain their shot
  # noise is larger (less than √gain: demosaicing averages more red/blue samples).
  assert std[0] > 1.3 * std[1] and std[2] > 1.15 * std[1]
  neighbours = lambda r: np.corrcoef(r[:, :-1].ravel(), r[:, 1:].ravel())[0, 1]
  assert neighbours(residual[..., 1]) > 0.25
  plain = camera.capture(np.random.default_rng(1), grey, 0.0, NOISE,
                         camera.CameraResponse("linear"), 12) - camera.quantise(grey, 12)
  assert abs(neighbours(plain[..., 1])) < 0.05  # The RGB model's noise is independent.


def test_black_level_and_clipping_in_raw():
  settings = cp.PipelineSettings(wb_gains=(2.4, 1.9), black_level=0.0625, jpeg_quality=0)
  rng = np.random.default_rng(0)
  # Above the sensor white every channel clips: highlights stay neutral white, not magenta.
  assert np.all(cp.capture(rng, _flat([3.0, 2.0, 5.0]), 0.0, NOISE, settings) == 1.0)
  # No light: the black level is subtracted and read noise clipped at 0, so the file holds
  # codes near 0 (not the black level's 0.0625^(1/2.2) ≈ 0.28).
  dark = cp.capture(rng, _flat([0.0, 0.0, 0.0]), 0.0, NOISE, settings)
  assert dark.min() == 0.0 and dark.mean() < 0.05
  # Raw quantisation: 10-bit raw posterises the deep shadows more than 14-bit.
  ramp = np.broadcast_to(np.linspace(0, 0.01, 64, dtype=np.float32)[None, :, None],
                         (8, 64, 3)).copy()
  levels = [len(np.unique(cp.capture(rng, ramp, 0.0, None, cp.PipelineSettings(
      raw_bits=b, jpeg_quality=0, tone=LINEAR))[..., 1])) for b in (10, 14)]
  assert levels[0] < levels[1]


def test_tone_curves_are_monotone_and_invertible_for_every_sampled_camera():
  x = np.linspace(0, 1, 1001, dtype=np.float32)
  rng = np.random.default_rng(3)
  for ranges in (cp.PipelineRanges(), cp.HELD_OUT_RANGES):
    for _ in range(20):
      tone = cp.sample_settings(rng, ranges).tone
      y = tone.apply(x)
      assert y[0] == 0.0 and abs(y[-1] - 1.0) < 1e-6 and np.all(np.diff(y) >= 0)
      np.testing.assert_allclose(tone.linearise(y)[50:-50], x[50:-50], atol=2e-3)


def test_jpeg_quality_orders_the_error():
  rng = np.random.default_rng(0)
  texture = rng.uniform(0.05, 0.5, (64, 64, 3)).astype(np.float32)
  errors = []
  for quality in (0, 80, 95):
    settings = cp.PipelineSettings(jpeg_quality=quality)
    errors.append(np.abs(cp.capture(np.random.default_rng(1), texture, 0.0, None, settings)
                         - cp.capture(np.random.default_rng(1), texture, 0.0, None,
                                      cp.PipelineSettings(jpeg_quality=0))).mean())
  assert errors[0] == 0.0 < errors[2] < errors[1]


def test_held_out_cameras_are_outside_the_training_ranges():
  rng = np.random.default_rng(5)
  train = [cp.sample_settings(rng) for _ in range(100)]
  held = [cp.sample_settings(rng, cp.HELD_OUT_RANGES) for _ in range(100)]
  assert max(s.wb_gains[0] for s in train) <= min(s.wb_gains[0] for s in held)
  assert max(s.tone.contrast for s in train) <= min(s.tone.contrast for s in held)
  train_q = {s.jpeg_quality for s in train} - {0}
  assert train_q <= set(range(80, 96)) and {s.jpeg_quality for s in held} <= set(range(70, 80))
  assert {s.demosaic for s in train} == set(cp.DEMOSAIC) and {s.pattern for s in train} == set(
      cp.PATTERNS)


def test_simulator_clips_through_the_pipeline_keep_the_units():
  config = sim_lib.SimulatorConfig(size=(64, 64), camera_pipeline_fraction=1.0, noise=None,
                                   pipeline_ranges=cp.PipelineRanges(jpeg_fraction=0.0))
  sample = sim_lib.Simulator(config).window(np.random.default_rng(4))
  meta = sample["meta"]["camera_pipeline"]
  assert meta is not None and sample["bits"] == 16
  settings = cp.PipelineSettings(
      **{**meta, "tone": cp.ToneCurve(camera.CameraResponse(
          meta["tone"]["response"], meta["tone"].get("sigmoid_n", 0.0),
          meta["tone"].get("sigmoid_sigma", 0.0)), meta["tone"]["contrast"]),
         "wb_gains": tuple(meta["wb_gains"]),
         "colour_matrix": tuple(map(tuple, meta["colour_matrix"]))})
  r = len(sample["frames"]) // 2
  ref = sample["frames"][r]
  well = (ref.max(-1) < 0.9) & (ref.min(-1) > 0.1)
  assert well.mean() > 0.2
  linear = settings.tone.linearise(ref)[well]
  expected = sample["hdr"][well] * 2.0 ** sample["stops"][r]
  # §3 units kept: no bias. (Pixel by pixel they differ: the frame is motion-blurred over
  # its exposure while the GT is sharp, and demosaicing and in-camera processing blur.)
  ratio = linear / expected
  assert abs(np.median(ratio) - 1) < 0.02 and abs(linear.sum() / expected.sum() - 1) < 0.05
  # Clips without the pipeline are unchanged by its presence in the config.
  plain = sim_lib.SimulatorConfig(size=(64, 64), noise=None)
  a = sim_lib.Simulator(plain).window(np.random.default_rng(4))
  b = sim_lib.Simulator(plain.replace(camera_pipeline_fraction=0.0)).window(
      np.random.default_rng(4))
  np.testing.assert_array_equal(a["frames"], b["frames"])
  assert a["meta"]["camera_pipeline"] is None
  with pytest.raises(ValueError, match="even frame sides"):
    sim_lib.SimulatorConfig(size=(63, 64), camera_pipeline_fraction=0.5)


def test_one_camera_seed_writes_every_clip_with_the_same_camera():
  config = sim_lib.SimulatorConfig(size=(32, 32), camera_pipeline_fraction=1.0,
                                   pipeline_ranges=cp.HELD_OUT_RANGES)
  sim = sim_lib.Simulator(config)
  cams = [sim.window(np.random.default_rng(s))["meta"]["camera_pipeline"] for s in (1, 2)]
  assert cams[0] != cams[1]
  fixed = sim_lib.Simulator(config.replace(pipeline_camera_seed=7))
  a, b = (fixed.window(np.random.default_rng(s)) for s in (1, 2))
  assert a["meta"]["camera_pipeline"] == b["meta"]["camera_pipeline"]
  assert a["meta"]["camera_pipeline"]["wb_gains"][0] >= 2.6
  assert not np.array_equal(a["frames"], b["frames"])  # Other scenes, same camera.


def test_synth_writes_clips_through_held_out_cameras(tmp_path):
  import argparse  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  from data_pipeline import synth  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser()
  synth.add_arguments(parser)
  args = parser.parse_args(["--out", str(tmp_path), "--clips", "1", "--frames", "2",
                            "--size", "32x32", "--camera-pipeline", "held_out"])
  assert synth.main(args) == 0
  meta = json.loads((tmp_path / "clip_0000" / "meta.json").read_text())
  assert 70 <= meta["camera_pipeline"]["jpeg_quality"] <= 79 and meta["bits"] == 8
  assert meta["camera_pipeline"]["wb_gains"][0] >= 2.6
  assert (tmp_path / "clip_0000" / "preview" / "contact_sheet.png").exists()


def test_training_configs_reach_the_pipeline():
  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  from dealthdr_jax import config_loading  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config("dealthdr_2exp:size=small")
  assert pipeline.as_config(config).camera_pipeline_fraction == 0.0
  config_loading.apply_overrides(config, ["--config.data.camera_pipeline_fraction=0.5"])
  assert pipeline.as_config(config).camera_pipeline_fraction == 0.5
  assert pipeline.as_config(config).pipeline_ranges == cp.PipelineRanges()
  # A config that trains on one response keeps the pipeline cameras to that base curve.
  align = config_loading.load_config("dealthdr_align:pattern=2exp,flow=,camera=0.5,tone=exact")
  sim = pipeline.as_config(align)
  assert sim.pipeline_ranges.responses == ("gamma2.2",) and sim.tone_calibration == "exact"
  assert sim.pipeline_ranges.contrast == cp.PipelineRanges().contrast
