"""Tests for data_pipeline.tfds_builders: build tiny fixtures in each layout, read back."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from data_pipeline import clips
from data_pipeline import hdr_io
from data_pipeline import tfds_builders as tb

H, W = 16, 24


def _rand(seed, shape=(H, W, 3)):
  return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def _write_radiance(path, hdr):
  path.parent.mkdir(parents=True, exist_ok=True)
  assert cv2.imwrite(str(path), np.ascontiguousarray(hdr[..., ::-1]))


def _codes(path):
  image, bits = hdr_io.read_ldr(path)
  return hdr_io.to_code_values(image, bits).astype(np.uint16)


def _check_example(ex, frame_paths, idx, gt_path, stops):
  np.testing.assert_array_equal(ex["frames"], np.stack([_codes(frame_paths[i]) for i in idx]))
  np.testing.assert_array_equal(ex["stops"], np.asarray(stops, np.float32)[idx])
  assert [n.decode() for n in ex["names"]] == [frame_paths[i].stem for i in idx]
  if gt_path is None:
    assert not ex["has_gt"] and ex["gt"].shape == (0, 0, 3)
  else:
    assert ex["has_gt"]
    np.testing.assert_array_equal(ex["gt"], hdr_io.read_hdr(gt_path))


def test_synth_clips(tmp_path):
  src = tmp_path / "synth"
  for c in range(2):
    folder = src / f"clip{c}"
    (folder / "gt").mkdir(parents=True)
    for i in range(4):
      hdr_io.write_ldr(folder / f"{i:04d}.png", _rand(10 * c + i), bits=16)
      hdr_io.write_exr(folder / "gt" / f"{i:04d}.exr", _rand(100 + i) * 8)
    (folder / "exposures.txt").write_text("2\n-1\n2\n-1\n")
  # Simulator curves outside the clip contract are kept, with their parameters.
  meta = '{"response": "sigmoid", "sigmoid_n": 0.6}'
  (src / "clip1" / "meta.json").write_text(meta)
  builder = tb.SynthClips(source_dir=src, data_dir=tmp_path / "tfds", radius=1)
  builder.download_and_prepare()
  ds = tb.read_windows(tmp_path / "tfds")
  assert len(ds) == 8
  for k in range(8):
    ex = ds[k]
    c, t = divmod(k, 4)
    assert ex["scene"] == f"clip{c}".encode() and ex["t"] == t and ex["bits"] == 16
    clip = clips.open_clip(src / f"clip{c}", response="linear")
    _check_example(ex, clip.frame_paths, clips.window_indices(4, t, 1), clip.gt_paths[t],
                   [3, 0, 3, 0])
  f = tb.window_to_float(ds[1])
  np.testing.assert_allclose(f["frames"][1], clips.open_clip(src / "clip0").frame(1))
  assert f["scene"] == "clip0" and f["response"] == "gamma2.2" and f["meta"] == "{}"
  assert ds[5]["response"] == b"sigmoid" and ds[5]["meta"].decode() == meta
  assert "tensorflow" not in sys.modules


def _deephdrvideo_fixture(root):
  root.mkdir()
  (root / "scene_all.txt").write_text("sceneA\nsceneB\n")
  a, b = root / "sceneA", root / "sceneB"
  a.mkdir(), b.mkdir()
  for i in range(5):
    hdr_io.write_ldr(a / f"img_{i:02d}.tif", _rand(i), bits=16)
    hdr_io.write_ldr(a / f"img_{i:02d}.jpg", _rand(i), bits=8)  # Previews, not frames.
    hdr_io.write_ldr(b / f"img_{i:02d}.tif", _rand(20 + i), bits=16)
  (a / "Exposures.txt").write_text("0.0\n3.0\n")
  (b / "Exposures.txt").write_text("1.0\n3.0\n5.0\n")
  _write_radiance(a / "sceneA.hdr", _rand(50) * 4)
  (a / "img_hdr_list.txt").write_text("".join(f"img_{i:02d}.tif sceneA.hdr\n" for i in range(5)))
  (b / "img_list.txt").write_text("".join(f"img_{i:02d}.tif\n" for i in range(5)))
  return a, b


def test_deephdrvideo(tmp_path):
  a, b = _deephdrvideo_fixture(tmp_path / "dhv")
  builder = tb.DeepHDRVideo(source_dir=tmp_path / "dhv", data_dir=tmp_path / "tfds", radius=2)
  builder.download_and_prepare()
  ds = tb.read_windows(builder.data_dir)
  assert len(ds) == 5  # Scene B has no GT.
  frames_a = [a / f"img_{i:02d}.tif" for i in range(5)]
  for t in range(5):
    ex = ds[t]
    assert ex["frames"].shape == (5, H, W, 3) and ex["frames"].dtype == np.uint16
    _check_example(ex, frames_a, clips.window_indices(5, t, 2), a / "sceneA.hdr",
                   [0, 3, 0, 3, 0])
  # All windows, GT or not, in a second variant beside the first.
  tb.DeepHDRVideo(source_dir=tmp_path / "dhv", data_dir=tmp_path / "tfds", radius=1,
                  require_gt=False).download_and_prepare()
  ds = tb.read_windows(tmp_path / "tfds" / "deep_hdr_video" / "r1_all")
  assert len(ds) == 10
  frames_b = [b / f"img_{i:02d}.tif" for i in range(5)]
  _check_example(ds[7], frames_b, [1, 2, 3], None, [0, 2, 4, 0, 2])


def test_realhdrv(tmp_path):
  scene = tmp_path / "rh" / "scene001"
  for i in range(4):
    hdr_io.write_ldr(scene / "Input_0" / f"frame_{i:02d}.tif", _rand(i) * 0.2, bits=16)
    hdr_io.write_ldr(scene / "Input_1" / f"frame_{i:02d}.tif", _rand(i), bits=16)
    _write_radiance(scene / "GT" / f"GT_frame_{i:02d}.hdr", _rand(30 + i))
  builder = tb.RealHDRV(source_dir=tmp_path / "rh", data_dir=tmp_path / "tfds")
  builder.download_and_prepare()
  ds = tb.read_windows(tmp_path / "tfds")
  assert len(ds) == 8
  for k in range(8):
    ex = ds[k]
    phase, t = ("long", "short")[k // 4], k % 4
    assert ex["scene"] == f"scene001@{phase}".encode()
    is_long = [(i % 2 == 0) == (phase == "long") for i in range(4)]
    paths = [scene / ("Input_1" if l else "Input_0") / f"frame_{i:02d}.tif"
             for i, l in enumerate(is_long)]
    _check_example(ex, paths, clips.window_indices(4, t, 1),
                   scene / "GT" / f"GT_frame_{t:02d}.hdr", np.where(is_long, 3.0, 0.0))


def test_bad_layouts_fail_before_writing(tmp_path):
  root = tmp_path / "dhv"
  _deephdrvideo_fixture(root)
  (root / "scene_all.txt").write_text("sceneA\nmissing\n")
  with pytest.raises(FileNotFoundError, match="scene_all.txt: lists scene 'missing'"):
    tb.DeepHDRVideo(source_dir=root, data_dir=tmp_path / "tfds").download_and_prepare()
  (root / "scene_all.txt").write_text("sceneA\n")
  (root / "sceneA" / "Exposures.txt").write_text("0\n3\n0\n3\n0\n3\n")
  with pytest.raises(ValueError, match="Exposures.txt: 6 exposure values for 5 frames"):
    tb.DeepHDRVideo(source_dir=root, data_dir=tmp_path / "tfds").download_and_prepare()
  scene = tmp_path / "rh" / "s"
  hdr_io.write_ldr(scene / "Input_0" / "frame_00.tif", _rand(0), bits=16)
  hdr_io.write_ldr(scene / "Input_0" / "frame_01.tif", _rand(0), bits=16)
  hdr_io.write_ldr(scene / "Input_1" / "frame_00.tif", _rand(0), bits=16)
  with pytest.raises(ValueError, match=r"only in Input_0: \['frame_01'\]"):
    tb.RealHDRV(source_dir=tmp_path / "rh", data_dir=tmp_path / "tfds").download_and_prepare()
  built = [p for p in (tmp_path / "tfds").rglob("*.array_record*")]
  assert built == []
