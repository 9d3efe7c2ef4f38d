"""HDR video output: transfer functions, grading rule, what players read back, bad input."""
import json

import av
import numpy as np
import pytest

from data_pipeline import hdr_io
from dealthdr_jax import cli
from dealthdr_jax.inference import hdr_video, infer


def _ramp(height=32, width=128, low=0.01, high=20.0):
  """[H, W, 3] grey ramp, geometric along the width (a column is one value)."""
  values = np.geomspace(low, high, width, dtype=np.float32)
  return np.tile(values[None, :, None], (height, 1, 3))


def test_pq_matches_bt2408_signal_levels():
  # BT.2408 table: 203 cd/m² (reference white) ≈ 58 % PQ; ST 2084 end points.
  np.testing.assert_allclose(hdr_video.pq_encode(np.array([0.0, 203.0, 10000.0])),
                             [7.3e-7, 0.5807, 1.0], atol=1e-4)
  nits = np.geomspace(0.005, 10000, 50)
  np.testing.assert_allclose(hdr_video.pq_decode(hdr_video.pq_encode(nits)), nits, rtol=1e-9)


def test_hlg_reference_white_and_round_trip():
  # BT.2408: reference white (203 cd/m² on a 1000 cd/m² display) sits at 75 % HLG.
  signal = hdr_video.hlg_encode(np.full((1, 3), 203.0), 1000.0)
  np.testing.assert_allclose(signal, 0.75, atol=2e-3)
  # OETF: continuous at 1/12 (signal 0.5) and reaches 1 at scene light 1.
  np.testing.assert_allclose(hdr_video.hlg_oetf(np.array([1 / 12, 1.0])), [0.5, 1.0],
                             atol=1e-7)
  rng = np.random.default_rng(0)
  display = rng.uniform(0.1, 500, (100, 3))  # Colours inside HLG's range at 1000 cd/m².
  np.testing.assert_allclose(hdr_video.hlg_decode(hdr_video.hlg_encode(display, 1000), 1000),
                             display, rtol=1e-6)


def test_bt709_to_bt2020_matrix_matches_bt2087():
  matrix = hdr_video.bt709_to_bt2020_matrix()
  bt2087 = [[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]]
  np.testing.assert_allclose(matrix, bt2087, atol=1e-4)
  np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-9)  # D65 white stays white.


def test_eetf_rolls_off_smoothly_to_the_peak():
  nits = np.linspace(0, 4000, 40001)
  out = hdr_video.eetf_rolloff(nits, source_peak=4000, target_peak=1000)
  assert np.all(np.diff(out) >= 0)  # Monotone.
  np.testing.assert_allclose(out[-1], 1000, rtol=1e-9)  # The source peak lands on the peak.
  assert out.max() <= 1000 + 1e-9
  np.testing.assert_allclose(out[nits <= 100], nits[nits <= 100])  # Untouched below the knee.
  slope = np.diff(hdr_video.pq_encode(out)) / np.diff(hdr_video.pq_encode(nits))
  assert np.abs(np.diff(slope)).max() < 1e-3  # No kink (C1) in the PQ domain.
  np.testing.assert_allclose(hdr_video.eetf_rolloff(nits, 800, 1000), nits)


def test_grading_is_one_rule_for_the_clip():
  frames = [_ramp() for _ in range(5)]
  grading = hdr_video._Grading(frames, 1000.0, None, 0.18)
  # The scene's median luminance is shown at 0.18 of reference white.
  np.testing.assert_allclose(grading.scene_median * grading.nits_per_unit, 0.18 * 203,
                             rtol=1e-5)
  # Exposure-invariant: the same scene 4× brighter gives the same picture.
  brighter = hdr_video._Grading([4 * f for f in frames], 1000.0, None, 0.18)
  np.testing.assert_allclose(brighter.display(4 * frames[0]), grading.display(frames[0]),
                             rtol=1e-5)
  # One flash frame does not move the exposure of the others (no flicker).
  flashed = hdr_video._Grading(frames[:2] + [50 * frames[2]] + frames[3:], 1000.0, None, 0.18)
  assert flashed.nits_per_unit == grading.nits_per_unit


def test_pq_video_decodes_to_the_intended_light(tmp_path):
  """A PQ ramp through libx265 and back: tags, metadata and light levels as intended."""
  frames = [_ramp() * (1 + 0.2 * i) for i in range(4)]
  path = tmp_path / "ramp.mp4"
  summary = hdr_video.write_hdr_video(path, frames, diffuse_white=1.0, peak_nits=1000,
                                      crf=4, preset="fast")
  info = hdr_video.read_stream_info(path)
  assert info["codec"] == "hevc" and info["profile"] == "Main 10"
  assert info["pix_fmt"] == "yuv420p10le" and info["codec_tag"] == "hvc1"
  assert (info["color_primaries"], info["color_transfer"], info["color_space"],
          info["color_range"]) == ("BT2020", "SMPTE2084", "BT2020_NCL", "limited")
  assert info["mastering_display"]["max_nits"] == 1000.0
  np.testing.assert_allclose(info["mastering_display"]["primaries_xy"],
                             hdr_video.BT2020_PRIMARIES, atol=1e-4)
  assert (info["max_cll"], info["max_fall"]) == (summary["max_cll"], summary["max_fall"])
  # The brightest frame's top reaches 20·1.6·203 cd/m² in the scene: rolled off to the peak.
  assert summary["max_cll"] == 1000

  grading = hdr_video._Grading(frames, 1000, 1.0, 0.18)
  decoded_max = 0.0
  for i, planes in enumerate(hdr_video.decode_frames(path)):
    assert planes.dtype == np.uint16 and planes.max() <= 940
    nits = hdr_video.pq_decode(hdr_video.from_yuv420_10bit(planes))
    decoded_max = max(decoded_max, nits.max())
    intended = grading.display(frames[i])
    # Each column is one value: compare column medians, away from the dark end where one
    # 10-bit code is already several per cent.
    got, want = np.median(nits[..., 1], axis=0), intended[0, :, 1]
    bright = want > 1.0
    np.testing.assert_allclose(got[bright], want[bright], rtol=0.03)
    np.testing.assert_allclose(got[~bright], want[~bright], atol=0.05)
  assert i == 3
  np.testing.assert_allclose(decoded_max, summary["max_cll"], rtol=0.03)  # MaxCLL agrees.


def test_hlg_video_tags_and_reference_white(tmp_path):
  grey = np.full((16, 32, 3), 0.5, np.float32)  # Shown at diffuse white (203 cd/m²).
  path = tmp_path / "grey.mkv"
  summary = hdr_video.write_hdr_video(path, [grey, grey], hdr_format="hlg",
                                      diffuse_white=0.5, preset="fast")
  info = hdr_video.read_stream_info(path)
  assert info["color_transfer"] == "ARIB_STD_B67" and info["color_primaries"] == "BT2020"
  assert "max_cll" not in info and summary["max_cll"] is None
  planes = next(hdr_video.decode_frames(path))
  luma = (planes[:16].astype(float) - 64) / 876
  np.testing.assert_allclose(luma.mean(), 0.75, atol=3e-3)


def test_bad_input_is_named_and_leaves_nothing(tmp_path, monkeypatch):
  path = tmp_path / "clip.mp4"
  path.write_bytes(b"an earlier video")
  good = _ramp(16, 32)
  bad = good.copy()
  bad[3, 4, 1] = np.nan
  with pytest.raises(ValueError, match="frame 2: contains NaN"):
    hdr_video.write_hdr_video(path, [good, good, bad, good])
  with pytest.raises(ValueError, match="4:2:0"):
    hdr_video.write_hdr_video(path, [_ramp(15, 32)])
  with pytest.raises(ValueError, match="frame 1: size 16×30 differs"):
    hdr_video.write_hdr_video(path, [good, _ramp(16, 30)])
  with pytest.raises(ValueError, match="unknown HDR format"):
    hdr_video.write_hdr_video(path, [good], hdr_format="hdr10+")
  with pytest.raises(ValueError, match=".mp4, .mov or .mkv"):
    hdr_video.write_hdr_video(tmp_path / "clip.avi", [good])
  with pytest.raises(NotADirectoryError):
    hdr_video.write_hdr_video(path / "inside_a_file.mp4", [good])
  with pytest.raises(FileNotFoundError, match="missing.exr"):
    hdr_video.write_hdr_video(path, [tmp_path / "missing.exr"])

  def no_x265(name, mode="r"):
    raise av.codec.codec.UnknownCodecError(name)
  monkeypatch.setattr(av.codec, "Codec", no_x265)
  with pytest.raises(RuntimeError, match="no libx265"):
    hdr_video.write_hdr_video(path, [good])
  assert path.read_bytes() == b"an earlier video"  # Untouched, and no temporary files.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_infer_writes_the_hdr_video(static_clip, tmp_path):
  clip, _ = static_clip
  out = tmp_path / "out"
  rc = cli.main(["infer", "--input", str(clip), "--output", str(out), "--method",
                 "reference_only", "--no-preview", "--hdr-video", str(out / "clip.mp4"),
                 "--peak-nits", "600"])
  assert rc == 0
  run = json.loads((out / "run.json").read_text())
  assert run["hdr_video"]["frames"] == 5 and run["hdr_video"]["peak_nits"] == 600
  info = hdr_video.read_stream_info(out / "clip.mp4")
  assert info["frames"] == 5 and info["color_transfer"] == "SMPTE2084"
  assert info["max_cll"] == run["hdr_video"]["max_cll"] <= 600
  assert info["mastering_display"]["max_nits"] == 600


def test_infer_checks_the_hdr_video_before_running(static_clip, tmp_path):
  clip, _ = static_clip
  (tmp_path / "taken.mp4").write_bytes(b"keep")
  with pytest.raises(FileExistsError, match="taken.mp4 exists"):
    infer.run_inference(str(clip), str(tmp_path / "a"), method="reference_only",
                        hdr_video=str(tmp_path / "taken.mp4"))
  # An odd-sized clip is refused before any frame is computed.
  for frame in sorted(clip.glob("*.png")):
    image, bits = hdr_io.read_ldr(frame)
    hdr_io.write_ldr(frame, image[:35], bits)
  with pytest.raises(ValueError, match="4:2:0"):
    infer.run_inference(str(clip), str(tmp_path / "b"), method="reference_only",
                        hdr_video=str(tmp_path / "b.mp4"))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["clip", "taken.mp4"]
