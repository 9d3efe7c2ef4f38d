"""Tests for data_pipeline.clips: clip folders, videos, exposures and windowing."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from data_pipeline import clips
from data_pipeline import hdr_io

H, W = 16, 24


def _frames(n, bits=16, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 1, (n, H, W, 3)).astype(np.float32)


def _make_clip(folder, n=5, bits=16, suffix=".png", stops="0 3", gt=False,
               exposure_file="exposures.txt", meta=None, text=None):
  """Writes a clip folder; `stops` is a pattern tiled to one line per frame, `text` is
  written verbatim instead."""
  folder.mkdir(parents=True, exist_ok=True)
  frames = _frames(n, bits)
  for i, f in enumerate(frames):
    hdr_io.write_ldr(folder / f"f{i:03d}{suffix}", f, bits=bits)
  if text is None and stops is not None:
    values = stops.split()
    text = "".join(values[i % len(values)] + "\n" for i in range(n))
  if text is not None:
    (folder / exposure_file).write_text(text)
  if gt:
    (folder / "gt").mkdir()
    for i in range(n):
      hdr_io.write_exr(folder / "gt" / f"f{i:03d}.exr", frames[i] * (i + 1))
  if meta is not None:
    (folder / "meta.json").write_text(json.dumps(meta))
  return frames


def test_open_folder_clip(tmp_path):
  frames = _make_clip(tmp_path / "c", gt=True, meta={"response": "srgb"})
  clip = clips.open_clip(tmp_path / "c")
  assert len(clip) == 5 and clip.size == (H, W) and clip.bits == 16
  assert clip.names == tuple(f"f{i:03d}" for i in range(5))
  np.testing.assert_array_equal(clip.stops, [0, 3, 0, 3, 0])
  assert clip.stops.dtype == np.float32 and clip.response == "srgb" and clip.has_gt
  np.testing.assert_allclose(clip.frame(2), frames[2], atol=1e-4)
  assert clip.frame_codes(2).dtype == np.uint16
  np.testing.assert_array_equal(clip.frame_codes(2), hdr_io.to_code_values(frames[2], 16))
  np.testing.assert_allclose(clip.gt(3), frames[3] * 4, rtol=1e-6)
  assert clips.open_clip(tmp_path / "c", response="linear", exposures="1,2").response == "linear"


def test_exposure_normalisation_and_deephdrvideo_pattern(tmp_path):
  _make_clip(tmp_path / "a", n=4, text="# stops\n-1, 2\n-1 2\n")
  np.testing.assert_array_equal(clips.open_clip(tmp_path / "a").stops, [0, 3, 0, 3])
  # DeepHDRVideo ships the repeating pattern only, in Exposures.txt.
  _make_clip(tmp_path / "b", n=7, text="0.0\n2.0\n4.0\n", exposure_file="Exposures.txt",
             suffix=".tif")
  clip = clips.open_clip(tmp_path / "b")
  np.testing.assert_array_equal(clip.stops, [0, 2, 4, 0, 2, 4, 0])
  np.testing.assert_array_equal(clips.resolve_exposures("3, 0", 5), [3, 0, 3, 0, 3])


def test_frame_type_preference_and_8bit(tmp_path):
  folder = tmp_path / "c"
  _make_clip(folder, n=3, bits=8, suffix=".tif", stops="0 2")
  for i in range(3):  # DeepHDRVideo-style jpg previews beside the tifs are ignored.
    hdr_io.write_ldr(folder / f"f{i:03d}.jpg", np.zeros((4, 4, 3), np.float32))
  clip = clips.open_clip(folder)
  assert clip.bits == 8 and all(p.suffix == ".tif" for p in clip.frame_paths)
  assert clip.frame_codes(0).dtype == np.uint8


def test_probe_matches_decoder(tmp_path):
  for suffix, bits in [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16), (".jpg", 8)]:
    path = tmp_path / f"x{bits}{suffix}"
    hdr_io.write_ldr(path, _frames(1)[0], bits=bits)
    assert clips.probe_frame(path) == (H, W, bits)
  cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((5, 7), np.uint16))
  assert clips.probe_frame(tmp_path / "grey.png") == (5, 7, 16)


def test_window_indices():
  assert clips.window_indices(6, 0, 1) == [1, 0, 1]
  assert clips.window_indices(6, 5, 1) == [4, 5, 4]
  assert clips.window_indices(6, 0, 2) == [2, 1, 0, 1, 2]
  assert clips.window_indices(6, 3, 2) == [1, 2, 3, 4, 5]
  assert clips.window_indices(6, 5, 2) == [3, 4, 5, 4, 3]
  # Shorter than the window: mirrored repeatedly, parity (exposure) kept.
  assert clips.window_indices(2, 0, 2) == [0, 1, 0, 1, 0]
  assert clips.window_indices(3, 2, 3) == [1, 0, 1, 2, 1, 0, 1]
  for n in range(2, 9):
    for t in range(n):
      idx = clips.window_indices(n, t, 3)
      assert idx[3] == t and all(0 <= i < n for i in idx)
      assert all((i - t) % 2 == (k - 3) % 2 for k, i in enumerate(idx))
  # How far each slot's frame really is: its own place inside the clip; at the edges of a
  # three-exposure clip a filled slot may hold a frame two steps away in one step's place.
  assert clips.window_offsets(8, 4, 2, 3) == (-2, -1, 0, 1, 2)
  assert clips.window_offsets(8, 0, 2, 3) == (1, 2, 0, 1, 2)
  assert clips.window_offsets(8, 7, 2, 3) == (-2, -1, 0, -2, -1)
  assert clips.window_offsets(6, 0, 1, 2) == (1, 0, 1)
  with pytest.raises(ValueError, match="at least 2 frames"):
    clips.window_indices(1, 0, 1)


def test_exposure_period():
  assert clips.exposure_period([0, 2, 4, 0, 2, 4, 0]) == 3
  assert clips.exposure_period([0, 3, 0, 3.01]) == 2  # Within the tolerance.
  assert clips.exposure_period([1, 1, 1]) == 1
  assert clips.exposure_period([0, 2, 4]) is None  # One cycle does not show a repeat.
  assert clips.exposure_period([0, 2, 0, 4]) is None


def test_window_indices_keep_each_slot_exposure():
  # Three exposures, t = 0: the mirror [2, 1, 0, 1, 2] would put the frame after t (exposure
  # of t+1) in slot t-1; the same-phase rule puts frame 2 (exposure of t-1 = t+2) there.
  assert clips.window_indices(8, 0, 2, period=3) == [1, 2, 0, 1, 2]
  assert clips.window_indices(8, 7, 2, period=3) == [5, 6, 7, 5, 6]
  assert clips.window_indices(8, 1, 1, period=3) == [0, 1, 2]  # Inside: unchanged.
  for n in range(2, 10):
    for period in range(1, n + 1):
      for radius in range(4):
        for t in range(n):
          idx = clips.window_indices(n, t, radius, period)
          assert idx[radius] == t and all(0 <= i < n for i in idx)
          assert all((i - (t - radius + k)) % period == 0 for k, i in enumerate(idx))
          if period <= 2:  # The mirror already keeps the phase.
            assert idx == clips.window_indices(n, t, radius)
  with pytest.raises(ValueError, match="exposure period"):
    clips.window_indices(4, 0, 1, period=5)


class _CountingClip:
  """Wraps a clip and records frame decodes."""

  def __init__(self, clip):
    self.clip, self.calls = clip, []
    self.stops = clip.stops

  def __len__(self):
    return len(self.clip)

  def frame(self, i):
    self.calls.append(i)
    return self.clip.frame(i)


def test_iter_windows_streams_with_bounded_cache(tmp_path):
  frames = _make_clip(tmp_path / "c", n=7, stops="0 2 4")
  clip = clips.open_clip(tmp_path / "c")
  counting = _CountingClip(clip)
  seen = []
  for t, window, stops in clips.iter_windows(counting, radius=2):
    idx = clips.window_indices(7, t, 2, period=3)
    assert window.shape == (5, H, W, 3) and window.dtype == np.float32
    np.testing.assert_allclose(window, frames[idx], atol=1e-4)
    np.testing.assert_array_equal(stops, clip.stops[idx])
    seen.append(t)
  assert seen == list(range(7))
  assert counting.calls == sorted(counting.calls) == list(range(7))  # Each decoded once.
  t, window, stops = next(clips.iter_windows(clip, radius=1, start=6))
  np.testing.assert_array_equal(stops, clip.stops[[5, 6, 4]])  # Each slot's own exposure.
  assert t == 6
  np.testing.assert_allclose(clip.window(6, 1)[0], window)


def _write_video(path, frames):
  import av
  with av.open(str(path), "w") as container:
    stream = container.add_stream("ffv1", rate=10)
    stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
    for f in frames:
      codes = hdr_io.to_code_values(f, 8)
      for packet in stream.encode(av.VideoFrame.from_ndarray(codes, format="rgb24")):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


def test_video_clip(tmp_path):
  frames = _frames(5)
  _write_video(tmp_path / "v.mkv", frames)
  with clips.open_clip(tmp_path / "v.mkv", exposures="0,3") as clip:
    assert len(clip) == 5 and clip.size == (H, W) and clip.bits == 8 and not clip.has_gt
    np.testing.assert_array_equal(clip.stops, [0, 3, 0, 3, 0])
    assert clip.names[0] == "000000"
    out = list(clips.iter_windows(clip, radius=1))
    assert len(out) == 5
    np.testing.assert_array_equal(clip.frame_codes(3), hdr_io.to_code_values(frames[3], 8))
    np.testing.assert_array_equal(clip.frame_codes(1), hdr_io.to_code_values(frames[1], 8))
  (tmp_path / "e.txt").write_text("0\n3\n0\n3\n0\n")
  assert clips.open_clip(tmp_path / "v.mkv", exposures=tmp_path / "e.txt").stops[1] == 3
  with pytest.raises(ValueError, match="v.mkv.*exposure pattern"):
    clips.open_clip(tmp_path / "v.mkv")
  (tmp_path / "short.txt").write_text("0\n3\n")
  with pytest.raises(ValueError, match="short.txt.*2 exposure values for 5 frames"):
    clips.open_clip(tmp_path / "v.mkv", exposures=tmp_path / "short.txt")
  with pytest.raises(ValueError, match="neither an existing file nor a pattern"):
    clips.open_clip(tmp_path / "v.mkv", exposures="nofile.txt")


def test_bad_clip_folders(tmp_path):
  with pytest.raises(FileNotFoundError, match="nothing"):
    clips.open_clip(tmp_path / "nothing")
  _make_clip(tmp_path / "noexp", n=3, stops=None)
  with pytest.raises(ValueError, match="noexp: no exposures.txt"):
    clips.open_clip(tmp_path / "noexp")
  _make_clip(tmp_path / "count", n=3, text="0\n3\n0\n3\n", exposure_file="Exposures.txt")
  with pytest.raises(ValueError, match="Exposures.txt: 4 exposure values for 3 frames"):
    clips.open_clip(tmp_path / "count")
  _make_clip(tmp_path / "count2", n=4, text="0\n3\n0\n")
  with pytest.raises(ValueError, match="exposures.txt: 3 exposure values for 4 frames"):
    clips.open_clip(tmp_path / "count2")
  _make_clip(tmp_path / "nan", n=2, text="0\nabc\n")
  with pytest.raises(ValueError, match="line 2: 'abc' is not a number"):
    clips.open_clip(tmp_path / "nan")
  _make_clip(tmp_path / "one", n=1)
  with pytest.raises(ValueError, match="only 1 frame"):
    clips.open_clip(tmp_path / "one")
  _make_clip(tmp_path / "size", n=3, stops="0 3")
  hdr_io.write_ldr(tmp_path / "size" / "f001.png", np.zeros((8, 8, 3), np.float32), bits=16)
  with pytest.raises(ValueError, match="f001.png: frame 1 is 8x8, expected 16x24"):
    clips.open_clip(tmp_path / "size")
  _make_clip(tmp_path / "bits", n=3, stops="0 3")
  hdr_io.write_ldr(tmp_path / "bits" / "f002.png", np.zeros((H, W, 3), np.float32), bits=8)
  with pytest.raises(ValueError, match="f002.png: frame 2 is 8-bit.*f000.png is 16-bit"):
    clips.open_clip(tmp_path / "bits")
  _make_clip(tmp_path / "corrupt", n=3, stops="0 3")
  (tmp_path / "corrupt" / "f001.png").write_bytes(b"garbage")
  with pytest.raises(ValueError, match="f001.png.*unreadable"):
    clips.open_clip(tmp_path / "corrupt")
  _make_clip(tmp_path / "gt", n=3, stops="0 3", gt=True)
  (tmp_path / "gt" / "gt" / "f001.exr").rename(tmp_path / "gt" / "gt" / "g001.exr")
  with pytest.raises(ValueError, match=r"gt: ground-truth names.*missing \['f001.exr'\].*g001"):
    clips.open_clip(tmp_path / "gt")
  _make_clip(tmp_path / "resp", n=2, stops="0 3", meta={"response": "log"})
  with pytest.raises(ValueError, match="meta.json: unknown camera response 'log'"):
    clips.open_clip(tmp_path / "resp")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="empty: no frames"):
    clips.open_clip(tmp_path / "empty")
