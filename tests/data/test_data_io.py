"""Tests for data_pipeline.hdr_io: HDR/LDR readers and atomic writers."""
from __future__ import annotations

import cv2
import numpy as np
import OpenEXR
import pytest

from data_pipeline import hdr_io


def _raw_exr_rgb(path):
  pixels = next(iter(OpenEXR.File(str(path)).channels().values())).pixels
  return pixels[..., :3].astype(np.float32)


def _write_raw_exr(path, channels, tiled=False):
  # The OpenEXR writer ignores strides: channel planes must be contiguous.
  channels = {k: np.ascontiguousarray(v) for k, v in channels.items()}
  header = {"compression": OpenEXR.ZIP_COMPRESSION,
            "type": OpenEXR.tiledimage if tiled else OpenEXR.scanlineimage}
  if tiled:
    tiles = OpenEXR.TileDescription()
    tiles.xSize = tiles.ySize = 16
    header["tiles"] = tiles
  OpenEXR.File(header, channels).write(str(path))


def test_read_hdr_real_sources(hdr_sources_dir):
  paths = sorted(hdr_sources_dir.glob("*.exr"))
  assert len(paths) >= 2
  kinds = set()
  for path in paths:
    image = hdr_io.read_hdr(path)
    raw = _raw_exr_rgb(path)
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] == 3
    assert image.shape == raw.shape
    assert np.isfinite(image).all() and image.min() >= 0
    np.testing.assert_array_equal(image, np.maximum(raw, 0))
    exr = OpenEXR.File(str(path))
    kinds.add(str(exr.header()["type"]))
    kinds.update(exr.channels())
  # The shared folder holds tiled and scanline files, with and without alpha.
  assert {"Storage.tiledimage", "Storage.scanlineimage", "RGB", "RGBA"} <= kinds


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("tiled", [False, True])
def test_read_hdr_separate_channels(tmp_path, dtype, tiled):
  rng = np.random.default_rng(0)
  rgb = rng.uniform(0, 100, (20, 36, 3)).astype(dtype)
  path = tmp_path / "sep.exr"
  _write_raw_exr(path, {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2],
                        "A": np.ones_like(rgb[..., 0])}, tiled=tiled)
  np.testing.assert_array_equal(hdr_io.read_hdr(path), rgb.astype(np.float32))


def test_read_hdr_layer_and_combined_rgba(tmp_path):
  rgb = np.linspace(0, 5, 4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
  _write_raw_exr(tmp_path / "layer.exr", {f"beauty.{c}": rgb[..., i] for i, c in enumerate("RGB")})
  np.testing.assert_array_equal(hdr_io.read_hdr(tmp_path / "layer.exr"), rgb)
  rgba = np.concatenate([rgb, np.ones_like(rgb[..., :1])], -1).astype(np.float16)
  _write_raw_exr(tmp_path / "rgba.exr", {"RGBA": rgba})
  np.testing.assert_array_equal(hdr_io.read_hdr(tmp_path / "rgba.exr"),
                                rgb.astype(np.float16).astype(np.float32))


def test_read_hdr_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.exr"):
    hdr_io.read_hdr(tmp_path / "missing.exr")
  (tmp_path / "corrupt.exr").write_bytes(b"not an exr" * 20)
  with pytest.raises(ValueError, match="corrupt.exr.*unreadable"):
    hdr_io.read_hdr(tmp_path / "corrupt.exr")
  _write_raw_exr(tmp_path / "depth.exr", {"Z": np.ones((4, 4), np.float32)})
  with pytest.raises(ValueError, match=r"depth.exr.*expected R, G, B.*\['Z'\]"):
    hdr_io.read_hdr(tmp_path / "depth.exr")
  bad = np.ones((4, 4, 3), np.float32)
  bad[2, 1, 0] = np.nan
  _write_raw_exr(tmp_path / "nan.exr", {"RGB": bad})
  with pytest.raises(ValueError, match="nan.exr.*NaN/Inf.*row 2, column 1"):
    hdr_io.read_hdr(tmp_path / "nan.exr")
  (tmp_path / "x.pfm").write_bytes(b"")
  with pytest.raises(ValueError, match="x.pfm.*unsupported"):
    hdr_io.read_hdr(tmp_path / "x.pfm")
  (tmp_path / "bad.hdr").write_bytes(b"#?RADIANCE\ngarbage")
  with pytest.raises(ValueError, match="bad.hdr.*unreadable"):
    hdr_io.read_hdr(tmp_path / "bad.hdr")


def test_negative_values_clipped(tmp_path):
  rgb = np.full((3, 3, 3), -0.5, np.float32)
  rgb[0, 0] = 2.0
  _write_raw_exr(tmp_path / "neg.exr", {"RGB": rgb})
  np.testing.assert_array_equal(hdr_io.read_hdr(tmp_path / "neg.exr"), np.maximum(rgb, 0))


def test_write_exr_roundtrip_and_radiance_hdr(tmp_path):
  rng = np.random.default_rng(1)
  hdr = np.exp(rng.normal(0, 3, (12, 20, 3))).astype(np.float32)
  hdr_io.write_exr(tmp_path / "out" / "a.exr", hdr)
  np.testing.assert_array_equal(hdr_io.read_hdr(tmp_path / "out" / "a.exr"), hdr)
  assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.exr"]
  # Radiance RGBE: 8-bit mantissa, so ~1% relative error; channel order must be RGB.
  hdr[..., 0] *= 10
  assert cv2.imwrite(str(tmp_path / "a.hdr"), hdr[..., ::-1].copy())
  back = hdr_io.read_hdr(tmp_path / "a.hdr")
  np.testing.assert_allclose(back, hdr, rtol=0.02, atol=hdr.max() * 0.01)


def test_write_exr_rejects_bad_input_and_writes_nothing(tmp_path):
  with pytest.raises(ValueError, match="out.exr"):
    hdr_io.write_exr(tmp_path / "out.exr", np.full((2, 2, 3), np.inf, np.float32))
  with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
    hdr_io.write_exr(tmp_path / "out.exr", np.zeros((2, 2), np.float32))
  assert list(tmp_path.iterdir()) == []


def test_atomic_path(tmp_path):
  target = tmp_path / "sub" / "file.json"
  with hdr_io.atomic_path(target) as tmp:
    assert tmp.parent == target.parent and tmp.suffix == ".json" and tmp != target
    tmp.write_text("one")
  assert target.read_text() == "one"
  with pytest.raises(RuntimeError):
    with hdr_io.atomic_path(target) as tmp:
      tmp.write_text("partial")
      raise RuntimeError("boom")
  assert target.read_text() == "one"  # The old file survives.
  assert [p.name for p in target.parent.iterdir()] == ["file.json"]


@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".tif", 16),
                                         (".tiff", 8), (".jpg", 8)])
def test_ldr_roundtrip(tmp_path, suffix, bits):
  rng = np.random.default_rng(2)
  image = rng.uniform(0, 1, (16, 24, 3)).astype(np.float32)
  if suffix == ".jpg":  # Smooth content, so that JPEG's chroma subsampling stays small.
    image = np.broadcast_to(np.linspace(0, 1, 24, dtype=np.float32)[None, :, None],
                            image.shape).copy()
  image[..., 0] = 1.0  # Red saturated, blue zero: checks the channel order.
  image[..., 2] = 0.0
  path = tmp_path / f"f{suffix}"
  hdr_io.write_ldr(path, image, bits=bits)
  back, got_bits = hdr_io.read_ldr(path)
  assert got_bits == bits and back.dtype == np.float32 and back.shape == image.shape
  tol = 0.05 if suffix == ".jpg" else 0.5 / (2**bits - 1) + 1e-6
  np.testing.assert_allclose(back, image, atol=tol)
  assert back.min() >= 0 and back.max() <= 1


def test_read_ldr_grey_rgba_and_codes(tmp_path):
  grey = np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 100
  cv2.imwrite(str(tmp_path / "g.png"), grey)
  image, bits = hdr_io.read_ldr(tmp_path / "g.png")
  assert bits == 16 and image.shape == (16, 24, 3)
  np.testing.assert_allclose(image[..., 1], grey / 65535.0, rtol=1e-6)
  bgra = np.zeros((4, 5, 4), np.uint8)
  bgra[..., 0] = 255  # Blue in OpenCV order.
  bgra[..., 3] = 7
  cv2.imwrite(str(tmp_path / "a.png"), bgra)
  image, bits = hdr_io.read_ldr(tmp_path / "a.png")
  assert bits == 8 and image.shape == (4, 5, 3)
  np.testing.assert_array_equal(image[0, 0], [0, 0, 1])
  codes = np.full((4, 5, 3), 1000, np.uint16)
  hdr_io.write_ldr(tmp_path / "c.tif", codes, bits=16)
  image, _ = hdr_io.read_ldr(tmp_path / "c.tif")
  np.testing.assert_allclose(image, 1000 / 65535.0, rtol=1e-6)


def test_ldr_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.png"):
    hdr_io.read_ldr(tmp_path / "nope.png")
  (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
  with pytest.raises(ValueError, match="bad.png.*unreadable"):
    hdr_io.read_ldr(tmp_path / "bad.png")
  cv2.imwrite(str(tmp_path / "float.tif"), np.zeros((4, 4, 3), np.float32))
  with pytest.raises(ValueError, match="float.tif.*8- or 16-bit"):
    hdr_io.read_ldr(tmp_path / "float.tif")
  with pytest.raises(ValueError, match="x.bmp.*unsupported"):
    hdr_io.read_ldr(tmp_path / "x.bmp")
  with pytest.raises(ValueError, match="16-bit"):
    hdr_io.write_ldr(tmp_path / "x.jpg", np.zeros((2, 2, 3), np.float32), bits=16)
  with pytest.raises(ValueError, match="uint8"):
    hdr_io.write_ldr(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint16), bits=8)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png", "float.tif"]
