"""Image file I/O: linear HDR (`.exr`, `.hdr`) and LDR frames (`.png`, `.tif`, `.jpg`).

Every reader returns float32 `[H, W, 3]` RGB and raises a `ValueError` (or
`FileNotFoundError`) naming the file and what was expected. Every writer is atomic: it writes
a temporary file in the destination folder and renames it into place, so a crash or error
never leaves a partial file under the final name. `atomic_path` is that mechanism, for any
other file the project writes.

HDR conventions: values are linear radiance (DESIGN.md §3). On reading, NaN or Inf is an
error; negative values (which lossy EXR codecs such as DWA/B44 produce around dark edges)
are clipped to 0 silently.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import secrets
from typing import Iterator

import cv2
import numpy as np
import OpenEXR

HDR_SUFFIXES = (".exr", ".hdr")
LDR_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
_SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[pathlib.Path]:
  """Yields a temporary path beside `path`; renames it to `path` if the block succeeds.

  The temporary name keeps `path`'s suffix (writers such as OpenCV choose the format by
  it) and is hidden (leading dot). If the block raises, the temporary file is removed and
  `path` is left untouched (an existing file there survives).

  Example:
    with atomic_path(out / "run.json") as tmp:
      tmp.write_text(json.dumps(info))
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  # Not created here (mkstemp would give it mode 0600); the writer creates it.
  tmp = path.parent / f".{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}"
  try:
    yield tmp
    if not tmp.exists():
      raise FileNotFoundError(f"{path}: nothing was written to the temporary file {tmp}")
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def _check_exists(path: pathlib.Path) -> None:
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such file")
  if not path.is_file():
    raise ValueError(f"{path}: not a regular file")


def _exr_rgb(path: pathlib.Path) -> np.ndarray:
  """Reads the R, G, B channels of the first part of an EXR file as float32 [H, W, 3]."""
  try:
    channels = OpenEXR.File(str(path), separate_channels=True).channels()
  except Exception as e:  # OpenEXR raises RuntimeError with an internal code.
    raise ValueError(f"{path}: unreadable or corrupt EXR file ({e})") from e
  names = {n.upper(): n for n in channels}
  if not all(c in names for c in "RGB"):
    # A single layer such as `beauty.R/G/B` is accepted too.
    layers = {n.rsplit(".", 1)[0] for n in channels if "." in n}
    layered = [l for l in layers if all(f"{l}.{c}" in channels for c in "RGB")]
    if len(layered) != 1:
      raise ValueError(f"{path}: expected R, G, B channels (optionally with A), "
                       f"found {sorted(channels)}")
    names = {c: f"{layered[0]}.{c}" for c in "RGB"}
  planes = [np.asarray(channels[names[c]].pixels) for c in "RGB"]
  if any(p.ndim != 2 or p.dtype.kind != "f" for p in planes):
    raise ValueError(f"{path}: expected half or float R, G, B channels, found "
                     f"{[(names[c], p.dtype.name, p.shape) for c, p in zip('RGB', planes)]}")
  return np.stack(planes, axis=-1).astype(np.float32)


def _radiance_hdr_rgb(path: pathlib.Path) -> np.ndarray:
  image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  if image is None:
    raise ValueError(f"{path}: unreadable or corrupt Radiance .hdr file")
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.float32:
    raise ValueError(f"{path}: expected a float RGB Radiance image, got "
                     f"{image.dtype.name} {image.shape}")
  return np.ascontiguousarray(image[..., ::-1])


def read_hdr(path: PathLike) -> np.ndarray:
  """Reads a linear HDR image.

  `.exr`: scanline or tiled, one part, half or float channels, combined `RGB`/`RGBA` or
  separate `R`, `G`, `B` (alpha dropped). `.hdr`: Radiance RGBE.

  Returns:
    [H, W, 3] float32 RGB, finite, ≥ 0 (negative values are clipped to 0).
  Raises:
    FileNotFoundError: no such file.
    ValueError: unknown suffix, unreadable file, no RGB channels, NaN or Inf values.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in HDR_SUFFIXES:
    raise ValueError(f"{path}: unsupported HDR file type {suffix!r}; expected one of "
                     f"{HDR_SUFFIXES}")
  _check_exists(path)
  image = _exr_rgb(path) if suffix == ".exr" else _radiance_hdr_rgb(path)
  if image.size == 0:
    raise ValueError(f"{path}: empty image {image.shape}")
  finite = np.isfinite(image)
  if not finite.all():
    bad = np.argwhere(~finite.all(axis=-1))[0]
    raise ValueError(f"{path}: {int((~finite).sum())} NaN/Inf values (first at row "
                     f"{bad[0]}, column {bad[1]}); expected finite radiance")
  return np.maximum(image, 0.0, out=image)


def write_exr(path: PathLike, image: np.ndarray) -> None:
  """Writes a float32 RGB EXR (ZIP compression, scanline) atomically.

  Args:
    path: destination, should end in `.exr`.
    image: [H, W, 3] float, linear radiance; must be finite.
  """
  path = pathlib.Path(path)
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype.kind != "f":
    raise ValueError(f"{path}: expected a float [H, W, 3] image, got "
                     f"{image.dtype.name} {image.shape}")
  if not np.isfinite(image).all():
    raise ValueError(f"{path}: refusing to write NaN/Inf values")
  image = np.ascontiguousarray(image, dtype=np.float32)
  header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
  with atomic_path(path) as tmp:
    OpenEXR.File(header, {"RGB": image}).write(str(tmp))


def read_ldr(path: PathLike) -> tuple[np.ndarray, int]:
  """Reads an 8- or 16-bit LDR frame.

  Grey images are replicated to RGB; alpha is dropped.

  Returns:
    image: [H, W, 3] float32 RGB in [0, 1] (code value / (2**bits - 1)).
    bits: 8 or 16, the file's bit depth.
  Raises:
    FileNotFoundError: no such file.
    ValueError: unknown suffix, unreadable file, or not 8/16-bit grey/RGB(A).
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in LDR_SUFFIXES:
    raise ValueError(f"{path}: unsupported LDR frame type {suffix!r}; expected one of "
                     f"{LDR_SUFFIXES}")
  _check_exists(path)
  image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  if image is None:
    raise ValueError(f"{path}: unreadable or corrupt image file")
  if image.dtype == np.uint8:
    bits = 8
  elif image.dtype == np.uint16:
    bits = 16
  else:
    raise ValueError(f"{path}: expected an 8- or 16-bit integer image, got {image.dtype.name}")
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  elif image.ndim == 3 and image.shape[-1] in (3, 4):
    image = image[..., 2::-1]  # BGR(A) → RGB.
  else:
    raise ValueError(f"{path}: expected a grey, RGB or RGBA image, got shape {image.shape}")
  return image.astype(np.float32) / np.float32(2**bits - 1), bits


def to_code_values(image01: np.ndarray, bits: int) -> np.ndarray:
  """[..., 3] float in [0, 1] → uint8/uint16 code values (rounded, clipped)."""
  if bits not in (8, 16):
    raise ValueError(f"bits must be 8 or 16, got {bits}")
  dtype = np.uint8 if bits == 8 else np.uint16
  scale = float(2**bits - 1)
  return np.round(np.clip(np.asarray(image01, np.float32), 0.0, 1.0) * scale).astype(dtype)


def write_ldr(path: PathLike, image01: np.ndarray, bits: int = 8) -> None:
  """Writes an LDR frame atomically.

  Args:
    path: destination; `.png`/`.tif`/`.tiff` for 8 or 16 bits, `.jpg`/`.jpeg` for 8 bits
      (quality 95).
    image01: [H, W, 3] float in [0, 1] (values outside are clipped), or integer code
      values already of dtype uint8 (bits=8) / uint16 (bits=16).
    bits: 8 or 16.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in LDR_SUFFIXES:
    raise ValueError(f"{path}: unsupported LDR frame type {suffix!r}; expected one of "
                     f"{LDR_SUFFIXES}")
  if bits not in (8, 16):
    raise ValueError(f"{path}: bits must be 8 or 16, got {bits}")
  if bits == 16 and suffix not in _SIXTEEN_BIT_SUFFIXES:
    raise ValueError(f"{path}: 16-bit frames need one of {_SIXTEEN_BIT_SUFFIXES}")
  image = np.asarray(image01)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"{path}: expected an [H, W, 3] image, got shape {image.shape}")
  if image.dtype.kind == "f":
    if not np.isfinite(image).all():
      raise ValueError(f"{path}: refusing to write NaN/Inf values")
    codes = to_code_values(image, bits)
  elif image.dtype == (np.uint8 if bits == 8 else np.uint16):
    codes = image
  else:
    raise ValueError(f"{path}: expected float values in [0, 1] or uint{bits} codes, got "
                     f"{image.dtype.name}")
  params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []
  with atomic_path(path) as tmp:
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(codes[..., ::-1]), params):
      raise ValueError(f"{path}: OpenCV could not write the image")
