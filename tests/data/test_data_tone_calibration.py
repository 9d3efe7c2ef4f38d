"""Tone-curve self-calibration (`data_pipeline.tone_calibration`): the undeclared S-curve is
measured from alternating exposures, undone in what the clip readers return, and left
alone where there is none."""
import json

import numpy as np
import pytest

from data_pipeline import camera_pipeline as cp
from data_pipeline import clips
from data_pipeline import response
from data_pipeline import simulator as sim_lib
from data_pipeline import sources
from data_pipeline import tone_calibration as tc


def _bracket(contrast, *, shift=0, seed=0, size=(96, 128), gap=3.0, n=4, noise=0.004):
  """`n` frames of one procedural scene alternating 0 / `gap` stops, written by
  s_curve(contrast) ∘ gamma 2.2 at 8 bits with a little noise; long frames shifted by
  `shift` px (unaligned). Returns (frames [n, H, W, 3], stops [n], encoded without the
  S-curve [n, H, W, 3])."""
  rng = np.random.default_rng(seed)
  scene = sources.procedural_scene(rng, *size, min_stops=8.0)
  scene = scene / np.percentile(scene, 90) * 0.35
  stops = np.array([0.0, gap] * (n // 2), np.float32)
  frames, plain = [], []
  for i, s in enumerate(stops):
    light = np.roll(scene, shift * i, axis=1) * 2.0 ** s
    encoded = response.apply_response(light, "gamma2.2")
    written = cp.s_curve(encoded, contrast) + rng.normal(0, noise, encoded.shape)
    frames.append(np.round(np.clip(written, 0, 1) * 255) / 255)
    plain.append(encoded)
  return np.stack(frames).astype(np.float32), stops, np.stack(plain)


@pytest.mark.parametrize("contrast", [1.3, 1.7, 2.2])
def test_the_s_curve_is_measured_from_unaligned_exposures(contrast):
  frames, stops, _ = _bracket(contrast, shift=9)
  fit = tc.estimate_contrast(frames, stops, "gamma2.2")
  assert fit.contrast == pytest.approx(contrast, rel=0.04), fit
  assert fit.improvement >= tc.MIN_IMPROVEMENT and fit.reason == ""
  # Read as the declared curve, a wrong contrast is a worse explanation than the truth.
  assert tc.estimate_contrast(frames, stops, "srgb").contrast != pytest.approx(contrast,
                                                                              rel=0.01)


def test_the_declared_curve_stands_when_there_is_no_s_curve():
  for seed in range(3):
    frames, stops, _ = _bracket(1.0, shift=5, seed=seed)
    fit = tc.estimate_contrast(frames, stops, "gamma2.2")
    assert fit.contrast == 1.0 and abs(fit.fitted - 1.0) < 0.05, fit
  # An inverse S-curve (flatter than declared) is measured too.
  frames, stops, _ = _bracket(0.7)
  assert tc.estimate_contrast(frames, stops).contrast == pytest.approx(0.7, rel=0.04)


def test_what_cannot_be_measured_says_why():
  frames, stops, _ = _bracket(1.6)
  same = tc.estimate_contrast(frames, np.zeros(len(frames)))
  assert same.contrast == 1.0 and "stops apart" in same.reason
  black = tc.estimate_contrast(np.zeros_like(frames), stops)
  assert black.contrast == 1.0 and "usable percentiles" in black.reason
  codes = tc.estimate_contrast(np.round(frames * 255).astype(np.uint8), stops)
  assert codes.contrast == pytest.approx(1.6, rel=0.04)
  with pytest.raises(ValueError, match="one stop per frame"):
    tc.estimate_contrast(frames, stops[:2])


def test_clip_readers_hand_every_method_the_frames_without_the_s_curve():
  frames, stops, plain = _bracket(1.6, shift=7, n=6, noise=0.0)
  codes = np.round(frames * 255).astype(np.uint8)
  clip = clips.open_arrays(codes, stops)
  assert clip.tone_fit.contrast == pytest.approx(1.6, rel=0.04)
  for i in (0, 3):
    # 8-bit codes re-encoded: within a few codes of the frame the declared curve writes.
    assert np.abs(clip.frame(i) - plain[i]).mean() < 0.01
    np.testing.assert_array_equal(clip.frame_codes(i), codes[i])  # As stored.
  window, _ = clip.window(2, 1)
  np.testing.assert_array_equal(window[1], clip.frame(2))
  off = clips.open_arrays(frames, stops, tone_calibration="off")
  np.testing.assert_array_equal(off.frame(1), frames[1])
  assert "off" in off.tone_fit.reason
  given = clips.open_arrays(frames, stops, tone_calibration="1.5")
  np.testing.assert_allclose(given.frame(1), cp.s_curve_inverse(frames[1], 1.5))
  for bad in ("loud", 0.0, "nan", 9):
    with pytest.raises(clips.ClipError, match="tone calibration"):
      clips.open_arrays(frames, stops, tone_calibration=bad)


def test_the_simulator_measures_held_out_cameras_and_trains_on_calibrated_frames():
  """Whole clips through held-out cameras (S-curves of contrast 1.5–1.8 never trained on):
  the estimate lands within 8 %; with `tone_calibration="exact"` training windows come
  with the camera's own curve undone (to within its jitter)."""
  config = sim_lib.SimulatorConfig(size=(96, 128), camera_pipeline_fraction=1.0,
                                   pipeline_ranges=cp.HELD_OUT_RANGES,
                                   responses=("gamma2.2",), response_weights=None)
  sim = sim_lib.Simulator(config.replace(tone_calibration="estimate"))
  for seed in (3, 4):
    clip = sim.sequence(np.random.default_rng(seed), 8)
    truth = clip["meta"]["camera_pipeline"]["tone"]["contrast"]
    assert clip["meta"]["tone_calibration"]["contrast"] == pytest.approx(truth, rel=0.08)
  exact = sim_lib.Simulator(config.replace(tone_calibration="exact",
                                           tone_calibration_jitter=0.0))
  stored = sim_lib.Simulator(config).window(np.random.default_rng(5))
  undone = exact.window(np.random.default_rng(5))
  truth = stored["meta"]["camera_pipeline"]["tone"]["contrast"]
  assert undone["meta"]["tone_calibration"]["contrast"] == pytest.approx(truth, abs=1e-4)
  np.testing.assert_allclose(undone["frames"], cp.s_curve_inverse(stored["frames"], truth),
                             atol=1e-6)
  with pytest.raises(ValueError, match="tone_calibration"):
    config.replace(tone_calibration="yes")


def test_infer_reads_calibrated_frames_and_records_the_fit(tmp_path):
  """A classical merge (no model to compile) on a clip folder whose camera adds a contrast
  S-curve: with the default calibration its radiance is the scene's light; read as the
  declared curve it is off by tens of percent; run.json says what was undone."""
  from data_pipeline import hdr_io  # pylint: disable=g-import-not-at-top
  from dealthdr_jax.inference import infer  # pylint: disable=g-import-not-at-top
  frames, stops, plain = _bracket(1.6, shift=4, noise=0.0)
  folder = tmp_path / "clip"
  folder.mkdir()
  for i, frame in enumerate(frames):
    hdr_io.write_ldr(folder / f"{i:05d}.png", frame, 8)
  (folder / "exposures.txt").write_text("\n".join(f"{s:g}" for s in stops))
  light = response.linearise(plain[0], "gamma2.2")  # Frame 0 is 0 stops: radiance = light.
  well = (plain[0] > 0.15).all(-1) & (plain[0] < 0.85).all(-1)
  errors, recorded = {}, {}
  for mode in ("auto", "off"):
    summary = infer.run_inference(str(folder), str(tmp_path / mode), method="reference_only",
                                  preview=False, progress=False, tone_calibration=mode)
    hdr = hdr_io.read_hdr(tmp_path / mode / "hdr" / "00000.exr")
    errors[mode] = float(np.median(np.abs(hdr[well] / light[well] - 1)))
    recorded[mode] = summary["tone_calibration"]
    assert recorded[mode] == json.loads(
        (tmp_path / mode / "run.json").read_text())["tone_calibration"]
  assert recorded["auto"]["contrast"] == pytest.approx(1.6, rel=0.04)
  assert recorded["off"]["contrast"] == 1.0 and "off" in recorded["off"]["reason"]
  assert errors["auto"] < 0.03 < 0.15 < errors["off"], errors
  with pytest.raises(clips.ClipError, match="tone calibration"):
    infer.run_inference(str(folder), str(tmp_path / "bad"), method="reference_only",
                        tone_calibration="strong")
  assert not (tmp_path / "bad").exists()
