"""Clip readers for the DESIGN.md §7 input contract, and frame windowing (§3).

A clip folder holds:

  exposures.txt   one number per frame, in stops (`Exposures.txt` from DeepHDRVideo is
                  accepted too, see below)
  *.png|*.tif|*.tiff|*.jpg|*.jpeg   LDR frames, sorted by name, all 8- or all 16-bit
  meta.json       optional: {"response": "gamma2.2"|"srgb"|"linear"} (default gamma2.2)
  gt/<name>.exr   optional ground truth, one per frame, `<name>` = frame file stem

Rules, so that the same folder always gives the same clip:
- Frame files: if a folder holds several image types, the lossless ones win: `.tif/.tiff`
  if any, else `.png`, else `.jpg/.jpeg` (DeepHDRVideo scenes hold `img_XX.tif` plus
  `img_XX.jpg` previews). Names are sorted as strings, so number them with zero padding.
- Exposures are read as whitespace/comma-separated numbers (`#` starts a comment) and
  shifted so that the shortest exposure is 0 stops (§3); only differences matter.
  `exposures.txt` must hold exactly one number per frame. `Exposures.txt` (DeepHDRVideo)
  may hold one number per frame or, as in DeepHDRVideo's release, just the repeating
  pattern (e.g. `0`, `3`), which is tiled from the first frame.
- A video file plus an exposure pattern is also a clip: the pattern is a file with one
  number per frame, or a string like "0,3" that repeats from the first frame.

Everything that can be checked without decoding pixels is checked by `open_clip` (file
list, exposure count, response, gt names, and frame sizes and bit depths from the file
headers of PNG/TIFF/JPEG), so bad input fails before any output is written. Errors name
the file or frame and what was expected. Pixels are decoded lazily, one frame at a time;
`iter_windows` streams windows with a cache of at most 2·radius+1 decoded frames.

Tone calibration: a camera's undeclared contrast S-curve (`tone_calibration`) is measured
from the clip's own exposures the first time a frame is read (`Clip.tone_fit`, from up to
16 frames spread over the clip; the first 16 of a video) and undone in every frame that
`frame`/`window`/`iter_windows` return, so all methods read the same frames.
`tone_calibration="off"` reads the frames as stored; a number undoes that contrast.

Windows (§3): output t uses frames t-r..t+r; indices outside the clip are mirrored about
the edges without repeating the edge frame (-1 → 1, N → N-2), which keeps the alternation
of two exposures. With a longer exposure cycle (three exposures: period 3) the mirror would
put the wrong exposure in a slot (-1 → 1 is the frame after t, not the one before), a
window the model never sees in training; so each outside index takes the in-clip frame of
the **same exposure phase** nearest to its mirror (-1 → 2, -2 → 1 at t = 0), the exposure
period being measured from the clip's stops (`exposure_period`). Clips shorter than the
window are mirrored repeatedly (period 2·(N-1)); a 1-frame clip has no neighbours and is
an error.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import re
import struct
from typing import Iterator, Sequence

import numpy as np

from data_pipeline import hdr_io
from data_pipeline import response as response_lib
from data_pipeline import tone_calibration as tone_lib

EXPOSURE_FILES = ("exposures.txt", "Exposures.txt")
# Exposures closer than this (in stops) are one exposure level.
SAME_EXPOSURE_STOPS = 0.05
# Frame suffix groups in order of preference.
_FRAME_GROUPS = ((".tif", ".tiff"), (".png",), (".jpg", ".jpeg"))
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mxf", ".nut")


class ClipError(ValueError):
  """Bad clip input; the message names the file or frame and what was expected."""


# ----------------------------------------------------------------------------- exposures


def parse_exposures(text: str, source: str) -> np.ndarray:
  """Numbers (stops) from exposure-file text: whitespace/comma separated, `#` comments."""
  values = []
  for lineno, line in enumerate(text.splitlines(), 1):
    line = line.split("#", 1)[0]
    for token in re.split(r"[\s,]+", line.strip()):
      if not token:
        continue
      try:
        values.append(float(token))
      except ValueError:
        raise ClipError(f"{source}: line {lineno}: {token!r} is not a number; expected "
                        "one exposure in stops per frame") from None
  stops = np.asarray(values, np.float64)
  if stops.size == 0:
    raise ClipError(f"{source}: no exposure values; expected one number (stops) per frame")
  if not np.isfinite(stops).all():
    raise ClipError(f"{source}: exposure values must be finite, got {values}")
  return stops


def normalise_stops(stops: Sequence[float]) -> np.ndarray:
  """[N] float32 stops shifted so that the shortest exposure is 0 (§3)."""
  stops = np.asarray(stops, np.float64)
  return (stops - stops.min()).astype(np.float32)


def _tile(pattern: np.ndarray, n: int) -> np.ndarray:
  return np.resize(pattern, n)


def resolve_exposures(spec: str | os.PathLike, n_frames: int) -> np.ndarray:
  """Stops for `n_frames` frames from a file (one per frame) or a pattern like "0,3".

  Returns:
    [n_frames] float32 stops, shortest 0.
  """
  path = pathlib.Path(spec)
  if path.is_file():
    stops = parse_exposures(path.read_text(), str(path))
    if stops.size != n_frames:
      raise ClipError(f"{path}: {stops.size} exposure values for {n_frames} frames; expected "
                      "one per frame (or give a repeating pattern such as '0,3')")
    return normalise_stops(stops)
  text = str(spec)
  if not re.fullmatch(r"\s*[-+0-9.eE]+(\s*[,\s]\s*[-+0-9.eE]+)*\s*", text):
    raise ClipError(f"exposures {text!r}: neither an existing file nor a pattern of stops "
                    "such as '0,3' or '0,2,4'")
  return normalise_stops(_tile(parse_exposures(text, f"pattern {text!r}"), n_frames))


def read_exposure_file(path: pathlib.Path, n_frames: int) -> np.ndarray:
  """Stops for `n_frames` frames from `exposures.txt` or DeepHDRVideo's `Exposures.txt`.

  `exposures.txt` must hold one number per frame; `Exposures.txt` may also hold a shorter
  repeating pattern, tiled from the first frame (as in the DeepHDRVideo release).

  Returns:
    [n_frames] float32 stops, shortest 0.
  """
  if not path.is_file():
    raise ClipError(f"{path}: no such exposure file; expected one number (stops) per frame")
  stops = parse_exposures(path.read_text(), str(path))
  if stops.size == n_frames:
    return normalise_stops(stops)
  if path.name == "Exposures.txt" and stops.size < n_frames:
    return normalise_stops(_tile(stops, n_frames))
  raise ClipError(f"{path}: {stops.size} exposure values for {n_frames} frames in "
                  f"{path.parent}; expected exactly one per frame")


def _folder_exposures(folder: pathlib.Path, n_frames: int) -> np.ndarray:
  present = [folder / name for name in EXPOSURE_FILES if (folder / name).is_file()]
  if not present:
    raise ClipError(f"{folder}: no exposures.txt; expected one number (stops) per frame, "
                    "or pass exposures= (a file or a pattern such as '0,3')")
  # On a case-insensitive file system both names hit the same file; take the first.
  return read_exposure_file(present[0], n_frames)


# ----------------------------------------------------------------------------- headers


def _probe_png(data: bytes) -> tuple[int, int, int] | None:
  if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
    return None
  width, height, depth = struct.unpack(">IIB", data[16:25])
  return height, width, depth


def _probe_tiff(path: pathlib.Path) -> tuple[int, int, int] | None:
  with open(path, "rb") as f:
    head = f.read(8)
    if head[:4] not in (b"II*\x00", b"MM\x00*"):
      return None  # Not classic TIFF (e.g. BigTIFF): the caller decodes instead.
    e = "<" if head[:2] == b"II" else ">"
    f.seek(struct.unpack(e + "I", head[4:8])[0])
    (count,) = struct.unpack(e + "H", f.read(2))
    entries = f.read(12 * count)
    tags = {}
    for k in range(count):
      tag, typ, n, raw = struct.unpack(e + "HHI4s", entries[12 * k:12 * k + 12])
      if tag not in (256, 257, 258):
        continue
      fmt = {3: "H", 4: "I"}.get(typ)
      if fmt is None:
        return None
      size = struct.calcsize(fmt)
      if n * size <= 4:
        value = struct.unpack(e + fmt, raw[:size])[0]
      else:  # BitsPerSample for several samples: stored at an offset; all are equal in practice.
        here = f.tell()
        f.seek(struct.unpack(e + "I", raw)[0])
        value = struct.unpack(e + fmt, f.read(size))[0]
        f.seek(here)
      tags[tag] = value
  if 256 not in tags or 257 not in tags:
    return None
  return tags[257], tags[256], tags.get(258, 1)


def _probe_jpeg(data: bytes) -> tuple[int, int, int] | None:
  if data[:2] != b"\xff\xd8":
    return None
  pos = 2
  while pos + 4 <= len(data):
    if data[pos] != 0xFF:
      return None
    marker = data[pos + 1]
    if marker == 0xFF:
      pos += 1
      continue
    (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
    if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
      if pos + 9 > len(data):
        return None
      precision, height, width = struct.unpack(">BHH", data[pos + 4:pos + 9])
      return height, width, precision
    pos += 2 + length
  return None


def probe_frame(path: pathlib.Path) -> tuple[int, int, int]:
  """(height, width, bits) of an LDR frame from its header; decodes it if that fails."""
  suffix = path.suffix.lower()
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such frame file")
  info = None
  if suffix == ".png":
    with open(path, "rb") as f:
      info = _probe_png(f.read(32))
  elif suffix in (".tif", ".tiff"):
    info = _probe_tiff(path)
  elif suffix in (".jpg", ".jpeg"):
    with open(path, "rb") as f:
      info = _probe_jpeg(f.read(1 << 16))
  if info is None:
    image, bits = hdr_io.read_ldr(path)
    return image.shape[0], image.shape[1], bits
  return info


# ----------------------------------------------------------------------------- frames


class _VideoFrames:
  """Sequential PyAV decoder with restart for backward access (videos are for streaming).

  The frame count comes from the container, or from counting packets; a video whose
  stream ends early fails when the missing frame is requested, naming it.
  """

  def __init__(self, path: pathlib.Path):
    import av  # Imported lazily: only video input needs it.
    self._av = av
    self.path = path
    try:
      with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fmt = stream.codec_context.format
        self.size = (stream.codec_context.height, stream.codec_context.width)
        depth = max((c.bits for c in fmt.components), default=8) if fmt else 8
        # The container's count when it has one, else count packets (no decoding).
        self.n_frames = stream.frames or sum(
            1 for p in container.demux(stream) if p.size)
    except (IndexError, av.FFmpegError, OSError) as e:
      raise ClipError(f"{path}: unreadable video or no video stream ({e})") from e
    self.bits = 8 if depth <= 8 else 16
    self._container = None
    self._frames = None
    self._next = 0

  def _restart(self):
    self.close()
    self._container = self._av.open(str(self.path))
    self._frames = self._container.decode(self._container.streams.video[0])
    self._next = 0

  def codes(self, i: int) -> np.ndarray:
    if self._frames is None or i < self._next:
      self._restart()
    fmt = "rgb24" if self.bits == 8 else "rgb48le"
    while True:
      try:
        frame = next(self._frames)
      except StopIteration:
        raise ClipError(f"{self.path}: frame {i} could not be decoded (video ended at "
                        f"frame {self._next})") from None
      self._next += 1
      if self._next - 1 == i:
        return frame.to_ndarray(format=fmt)

  def close(self):
    if self._container is not None:
      self._container.close()
    self._container = self._frames = None


@dataclasses.dataclass(eq=False)
class Clip:
  """An LDR clip with per-frame exposures; frames are decoded on demand.

  Attributes:
    source: the folder or video file the clip came from.
    names: [N] frame names (file stems; `%06d` indices for videos), used for outputs.
    stops: [N] float32 exposures in stops, shortest 0 (§3).
    response: camera response name (one of `response.RESPONSES`).
    size: (height, width) of every frame.
    bits: 8 or 16, bit depth of every frame.
    frame_paths: [N] frame files (None for a video or arrays).
    gt_paths: [N] ground-truth EXR files, or None.
    tone_calibration: "auto" (measure the S-curve, module docstring), "off", or the
      contrast to undo.
  A clip made from arrays in memory (`open_arrays`) has `source` "<arrays>".
  """
  source: pathlib.Path
  names: tuple[str, ...]
  stops: np.ndarray
  response: str
  size: tuple[int, int]
  bits: int
  frame_paths: tuple[pathlib.Path, ...] | None = None
  gt_paths: tuple[pathlib.Path, ...] | None = None
  _video: _VideoFrames | None = dataclasses.field(default=None, repr=False)
  _arrays: Sequence[np.ndarray] | None = dataclasses.field(default=None, repr=False)
  tone_calibration: str | float = "auto"
  _tone_fit: tone_lib.ContrastFit | None = dataclasses.field(default=None, init=False,
                                                             repr=False)

  def __post_init__(self):
    self.tone_calibration = check_tone_calibration(self.tone_calibration)

  @property
  def tone_fit(self) -> tone_lib.ContrastFit:
    """The S-curve undone in `frame` (measured on first use with "auto")."""
    if self._tone_fit is None:
      mode = self.tone_calibration
      if mode == "off":
        self._tone_fit = tone_lib.ContrastFit(reason="tone calibration off")
      elif mode != "auto":
        self._tone_fit = tone_lib.ContrastFit(float(mode), float(mode),
                                              reason="contrast given")
      else:
        ids = (list(range(min(len(self), tone_lib.MAX_FRAMES))) if self._video is not None
               else tone_lib.spread_indices(len(self)))
        frames = np.stack([self._stored_frame(i) for i in ids])
        self._tone_fit = tone_lib.estimate_contrast(frames, self.stops[ids], self.response)
    return self._tone_fit

  def __len__(self) -> int:
    return len(self.names)

  @property
  def files(self) -> tuple[pathlib.Path, ...]:
    """The files its frames are read from: the frame files, or the video file (none for
    arrays)."""
    if self.frame_paths is not None:
      return tuple(self.frame_paths)
    return (self._video.path,) if self._video is not None else ()

  @functools.cached_property
  def exposure_cycle(self) -> int | None:
    """Frames per exposure cycle (`exposure_period` of the stops), measured once."""
    return exposure_period(self.stops)

  @property
  def has_gt(self) -> bool:
    return self.gt_paths is not None

  def frame_codes(self, i: int) -> np.ndarray:
    """Frame i as stored (no tone calibration): [H, W, 3] uint8 (bits=8) or uint16."""
    i = self._index(i)
    if self._arrays is not None and self._arrays[i].dtype.kind == "u":
      return self._checked(i, np.asarray(self._arrays[i]))
    if self._video is None:
      return hdr_io.to_code_values(self._stored_frame(i), self.bits)
    return self._checked(i, self._video.codes(i))

  def frame(self, i: int) -> np.ndarray:
    """Frame i: [H, W, 3] float32 in [0, 1], response-encoded (not linearised), with the
    measured S-curve undone (`tone_fit`)."""
    return tone_lib.undo_contrast(self._stored_frame(i), self.tone_fit.contrast)

  def _stored_frame(self, i: int) -> np.ndarray:
    """Frame i as stored, as float32 [H, W, 3] in [0, 1]."""
    i = self._index(i)
    if self._video is not None or (self._arrays is not None
                                   and self._arrays[i].dtype.kind == "u"):
      return self.frame_codes(i).astype(np.float32) / np.float32(2**self.bits - 1)
    if self._arrays is not None:
      image = np.asarray(self._arrays[i], np.float32)
      if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ClipError(f"frame {i} of the input array has values outside [0, 1] (min "
                        f"{np.nanmin(image):g}, max {np.nanmax(image):g}, finite: "
                        f"{bool(np.isfinite(image).all())}); expected display-encoded LDR in "
                        "[0, 1], or uint8/uint16 code values")
      return self._checked(i, image)
    path = self.frame_paths[i]
    image, bits = hdr_io.read_ldr(path)
    if bits != self.bits:
      raise ClipError(f"{path}: frame {i} is {bits}-bit but the clip's frames are "
                      f"{self.bits}-bit; expected one bit depth for all frames")
    return self._checked(i, image)

  def gt(self, i: int) -> np.ndarray:
    """Ground truth of frame i: [H, W, 3] float32 radiance (§3 units)."""
    i = self._index(i)
    if self.gt_paths is None:
      raise ClipError(f"{self.source}: clip has no gt/ folder")
    hdr = hdr_io.read_hdr(self.gt_paths[i])
    if hdr.shape[:2] != self.size:
      raise ClipError(f"{self.gt_paths[i]}: ground truth is {hdr.shape[0]}x{hdr.shape[1]}, "
                      f"expected the frame size {self.size[0]}x{self.size[1]}")
    return hdr

  def window(self, t: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and stops of the window around t, edges as in `window_indices` (random access).

    Returns:
      frames: [2r+1, H, W, 3] float32 in [0, 1]; stops: [2r+1] float32.
    """
    idx = window_indices(len(self), t, radius, self.exposure_cycle)
    cache = {i: self.frame(i) for i in sorted(set(idx))}
    return np.stack([cache[i] for i in idx]), self.stops[idx]

  def close(self) -> None:
    if self._video is not None:
      self._video.close()

  def __enter__(self) -> Clip:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _index(self, i: int) -> int:
    if not 0 <= i < len(self):
      raise IndexError(f"{self.source}: frame index {i} out of range [0, {len(self)})")
    return int(i)

  def _checked(self, i: int, image: np.ndarray) -> np.ndarray:
    if image.shape[:2] != self.size:
      where = self.frame_paths[i] if self.frame_paths else f"{self.source} frame {i}"
      raise ClipError(f"{where}: frame {i} is {image.shape[0]}x{image.shape[1]}, expected "
                      f"{self.size[0]}x{self.size[1]} like the clip's first frame")
    return image


def check_tone_calibration(value: str | float) -> str | float:
  """"auto", "off" or a contrast in [0.2, 5] (a number or its text); ClipError otherwise."""
  if value in ("auto", "off"):
    return value
  try:
    contrast = float(value)
  except (TypeError, ValueError):
    contrast = float("nan")
  if not (np.isfinite(contrast) and 0.2 <= contrast <= 5.0):
    raise ClipError(f"tone calibration {value!r}: expected 'auto', 'off' or an S-curve "
                    "contrast in [0.2, 5] (1 = none)")
  return contrast


def _frame_files(folder: pathlib.Path) -> list[pathlib.Path]:
  files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
  for group in _FRAME_GROUPS:
    chosen = sorted((p for p in files if p.suffix.lower() in group), key=lambda p: p.name)
    if chosen:
      return chosen
  return []


def _read_response(folder: pathlib.Path) -> str | None:
  meta = folder / "meta.json"
  if not meta.is_file():
    return None
  try:
    data = json.loads(meta.read_text())
  except json.JSONDecodeError as e:
    raise ClipError(f"{meta}: not valid JSON ({e})") from e
  if not isinstance(data, dict):
    raise ClipError(f"{meta}: expected a JSON object such as {{\"response\": \"gamma2.2\"}}")
  return data.get("response")


def _check_response(name: str | None, source: str) -> str:
  name = "gamma2.2" if name is None else name
  if name not in response_lib.RESPONSES:
    raise ClipError(f"{source}: unknown camera response {name!r}; expected one of "
                    f"{response_lib.RESPONSES}")
  return name


def _gt_files(folder: pathlib.Path, names: Sequence[str]) -> tuple[pathlib.Path, ...] | None:
  gt_dir = folder / "gt"
  if not gt_dir.is_dir():
    return None
  found = {p.stem: p for p in gt_dir.iterdir()
           if p.is_file() and p.suffix.lower() == ".exr" and not p.name.startswith(".")}
  missing = [n for n in names if n not in found]
  extra = sorted(set(found) - set(names))
  if missing or extra:
    raise ClipError(f"{gt_dir}: ground-truth names do not match the frames: missing "
                    f"{[n + '.exr' for n in missing[:5]]}{' ...' if len(missing) > 5 else ''}, "
                    f"unexpected {[n + '.exr' for n in extra[:5]]}"
                    f"{' ...' if len(extra) > 5 else ''}; expected gt/<frame name>.exr for "
                    "every frame")
  return tuple(found[n] for n in names)


def _check_frames(paths: Sequence[pathlib.Path]) -> tuple[tuple[int, int], int]:
  first = None
  for i, path in enumerate(paths):
    h, w, bits = probe_frame(path)
    if bits not in (8, 16):
      raise ClipError(f"{path}: frame {i} has {bits} bits per sample; expected 8 or 16")
    if first is None:
      first = (h, w, bits, path)
      continue
    if (h, w) != first[:2]:
      raise ClipError(f"{path}: frame {i} is {h}x{w}, expected {first[0]}x{first[1]} like "
                      f"{first[3].name}; all frames must have one size")
    if bits != first[2]:
      raise ClipError(f"{path}: frame {i} is {bits}-bit but {first[3].name} is "
                      f"{first[2]}-bit; expected all frames 8-bit or all 16-bit")
  return first[:2], first[2]


def open_clip(source: str | os.PathLike, exposures: str | os.PathLike | None = None,
              response: str | None = None, tone_calibration: str | float = "auto") -> Clip:
  """Opens a clip folder (§7) or a video file and checks it (no pixels decoded).

  Args:
    source: clip folder, or video file.
    exposures: overrides/provides the exposures: a file with one number per frame, or a
      repeating pattern such as "0,3". Required for videos.
    response: overrides meta.json's camera response.
    tone_calibration: "auto", "off" or a contrast (module docstring).
  Raises:
    ClipError (a ValueError) or FileNotFoundError, naming the file/frame at fault.
  """
  source = pathlib.Path(source)
  if not source.exists():
    raise FileNotFoundError(f"{source}: no such clip folder or video file")
  tone_calibration = check_tone_calibration(tone_calibration)
  if source.is_file():
    return _open_video(source, exposures, response, tone_calibration)
  frames = _frame_files(source)
  if not frames:
    raise ClipError(f"{source}: no frames; expected *.png, *.tif, *.tiff or *.jpg files")
  if len(frames) < 2:
    raise ClipError(f"{source}: only 1 frame ({frames[0].name}); a clip needs at least 2 "
                    "frames so that each output has a differently exposed neighbour")
  names = tuple(p.stem for p in frames)
  if len(set(names)) != len(names):
    raise ClipError(f"{source}: several frames share a name stem (e.g. a.tif and a.tiff)")
  stops = (resolve_exposures(exposures, len(frames)) if exposures is not None
           else _folder_exposures(source, len(frames)))
  response = _check_response(response if response is not None else _read_response(source),
                             str(source / "meta.json") if response is None else "response")
  gt_paths = _gt_files(source, names)
  size, bits = _check_frames(frames)
  return Clip(source=source, names=names, stops=stops, response=response, size=size,
              bits=bits, frame_paths=tuple(frames), gt_paths=gt_paths,
              tone_calibration=tone_calibration)


def open_files(frame_paths: Sequence[str | os.PathLike], stops: Sequence[float], *,
               response: str = "gamma2.2", source: str | os.PathLike | None = None,
               tone_calibration: str | float = "auto") -> Clip:
  """A clip of explicit frame files in order (a data set's own layout), checked like a
  folder (sizes, bit depths; no pixels decoded). Frame names are the file stems.

  Args:
    frame_paths: [N] LDR frame files, N ≥ 2.
    stops: [N] exposures in stops (normalised so the shortest is 0).
    response: camera response name.
    source: what the clip is called in messages (default: the first frame's folder).
    tone_calibration: as `open_clip`.
  """
  paths = tuple(pathlib.Path(p) for p in frame_paths)
  where = pathlib.Path(source) if source is not None else (
      paths[0].parent if paths else pathlib.Path("."))
  if len(paths) < 2:
    raise ClipError(f"{where}: {len(paths)} frame(s); a clip needs at least 2")
  for i, path in enumerate(paths):
    if not path.is_file():
      raise FileNotFoundError(f"{where}: frame {i} ({path}) does not exist")
  if len(stops) != len(paths):
    raise ClipError(f"{where}: {len(stops)} exposures for {len(paths)} frames")
  names = tuple(p.stem for p in paths)
  if len(set(names)) != len(names):
    raise ClipError(f"{where}: several frames share a name stem")
  size, bits = _check_frames(paths)
  return Clip(source=where, names=names, stops=normalise_stops(stops),
              response=_check_response(response, str(where)), size=size, bits=bits,
              frame_paths=paths, tone_calibration=tone_calibration)


def open_arrays(frames: Sequence[np.ndarray], stops: str | Sequence[float],
                response: str = "gamma2.2", tone_calibration: str | float = "auto") -> Clip:
  """A clip of frames already in memory (no copy is made).

  Args:
    frames: [N, H, W, 3] (an array, or a sequence of [H, W, 3] arrays): uint8 or uint16
      code values, or floats in [0, 1], as the camera wrote them (not linearised).
    stops: [N] exposures in stops, or a shorter repeating pattern (a sequence, or a string
      such as "0,3") tiled from the first frame; shifted so that the shortest is 0.
    response: the camera response (one of `response.RESPONSES`).
    tone_calibration: as `open_clip`.
  Raises:
    ClipError naming the frame or argument at fault. Float frames are range-checked when
    they are read.
  """
  n = len(frames)
  if n < 2:
    raise ClipError(f"frames: {n} frame(s); a clip needs at least 2 frames so that each "
                    "output has a differently exposed neighbour")
  first = np.shape(frames[0])
  dtypes = set()
  for i in range(n):
    shape, dtype = np.shape(frames[i]), np.asarray(frames[i][:0]).dtype
    if len(shape) != 3 or shape[2] != 3:
      raise ClipError(f"frame {i} has shape {shape}; expected [height, width, 3] (RGB), "
                      "i.e. frames of shape [N, H, W, 3]")
    if shape != first:
      raise ClipError(f"frame {i} is {shape[0]}x{shape[1]}, expected {first[0]}x{first[1]} "
                      "like frame 0")
    if dtype not in (np.uint8, np.uint16) and dtype.kind != "f":
      raise ClipError(f"frame {i} has dtype {dtype}; expected uint8, uint16 or float in [0, 1]")
    dtypes.add(dtype)
  if len(dtypes) > 1:
    raise ClipError(f"frames mix dtypes {sorted(map(str, dtypes))}; expected one")
  if isinstance(stops, str):
    stops = resolve_exposures(stops, n)
  else:
    values = np.asarray(stops, np.float64).reshape(-1)
    if values.size == 0 or values.size > n or not np.isfinite(values).all():
      raise ClipError(f"stops: {values.size} value(s) {values.tolist()} for {n} frames; "
                      "expected one finite number (stops) per frame, or a shorter repeating "
                      "pattern such as (0, 3)")
    stops = normalise_stops(_tile(values, n))
  [dtype] = dtypes
  bits = 8 if dtype == np.uint8 else 16
  return Clip(source=pathlib.Path("<arrays>"), names=tuple(f"{i:06d}" for i in range(n)),
              stops=stops, response=_check_response(response, "response"),
              size=tuple(first[:2]), bits=bits, _arrays=frames,
              tone_calibration=tone_calibration)


def _open_video(path: pathlib.Path, exposures, response, tone_calibration) -> Clip:
  if exposures is None:
    raise ClipError(f"{path}: a video needs an exposure pattern: a file with one number "
                    "(stops) per frame, or a repeating pattern such as '0,3'")
  video = _VideoFrames(path)
  if video.n_frames < 2:
    video.close()
    raise ClipError(f"{path}: {video.n_frames} decodable frame(s); a clip needs at least 2")
  stops = resolve_exposures(exposures, video.n_frames)
  return Clip(source=path, names=tuple(f"{i:06d}" for i in range(video.n_frames)),
              stops=stops, response=_check_response(response, "response"), size=video.size,
              bits=video.bits, _video=video, tone_calibration=tone_calibration)


# ----------------------------------------------------------------------------- windows


def exposure_period(stops: Sequence[float], tol: float = SAME_EXPOSURE_STOPS) -> int | None:
  """The clip's exposure cycle: the smallest P with stops[i] = stops[i+P] for every i.

  Args:
    stops: [N] exposures in stops.
    tol: stops within which two exposures count as equal.
  Returns:
    P in [1, N), or None when the exposures do not repeat within the clip.
  """
  stops = np.asarray(stops, np.float64)
  for period in range(1, len(stops)):
    if np.all(np.abs(stops[period:] - stops[:-period]) <= tol):
      return period
  return None


def window_indices(n_frames: int, t: int, radius: int,
                   period: int | None = None) -> list[int]:
  """Frame indices of the window t-radius..t+radius, filled in at the clip edges.

  Index -k maps to k and N-1+k to N-1-k (the edge frame is not repeated, so two
  alternating exposures keep alternating); clips shorter than the window are mirrored
  repeatedly. With an exposure `period`, an outside index takes instead the in-clip frame
  of its own exposure phase (≡ index mod period) nearest to that mirror (ties: nearer t),
  so every slot of the window holds the exposure it has inside the clip. For periods 1
  and 2 this is the mirror.

  Args:
    n_frames: N ≥ 2.
    t: centre, 0 ≤ t < N.
    radius: r ≥ 0.
    period: exposure cycle of the clip (`exposure_period`; ≤ N, so every phase is in the
      clip), or None (plain mirror).
  Returns:
    2r+1 indices in [0, N).
  """
  if n_frames < 2:
    raise ClipError(f"a window needs a clip of at least 2 frames, got {n_frames}")
  if not 0 <= t < n_frames:
    raise IndexError(f"window centre {t} out of range [0, {n_frames})")
  if radius < 0:
    raise ValueError(f"radius must be ≥ 0, got {radius}")
  if period is not None and not 1 <= period <= n_frames:
    raise ValueError(f"exposure period must be in [1, {n_frames}], got {period}")
  bounce = 2 * (n_frames - 1)
  out = []
  for i in range(t - radius, t + radius + 1):
    m = i % bounce
    mirror = m if m < n_frames else bounce - m
    if period is None or 0 <= i < n_frames:
      out.append(mirror)
      continue
    above = mirror + (i - mirror) % period  # Same phase as i, in [mirror, mirror + P).
    candidates = [j for j in (above, above - period) if 0 <= j < n_frames]
    out.append(min(candidates, key=lambda j: (abs(j - mirror), abs(j - t))))
  return out


def window_offsets(n_frames: int, t: int, radius: int,
                   period: int | None = None) -> tuple[int, ...]:
  """How far from t, in frames, each slot of `window_indices`' window really is: -r..r
  inside the clip; at its edges a filled-in slot holds a frame at another distance
  (t = 0 of a three-exposure clip: (1, 2, 0, 1, 2)), which the model aligns by chaining
  flow through the nearer frame (`dealthdr.chain_plan`)."""
  return tuple(i - t for i in window_indices(n_frames, t, radius, period))


def iter_windows(clip: Clip, radius: int, start: int = 0, stop: int | None = None,
                 ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
  """Streams the window of every output frame, decoding each frame about once.

  Only the frames of the current window are kept (≤ 2·radius+1), so memory does not grow
  with the clip length; frames are decoded in increasing order (cheap for videos).

  Yields:
    (t, frames [2r+1, H, W, 3] float32 in [0, 1], stops [2r+1] float32) for t in
    [start, stop).
  """
  n = len(clip)
  stop = n if stop is None else min(stop, n)
  period = exposure_period(clip.stops)
  cache: dict[int, np.ndarray] = {}
  for t in range(start, stop):
    idx = window_indices(n, t, radius, period)
    needed = set(idx)
    for i in list(cache):
      if i not in needed:
        del cache[i]
    for i in sorted(needed - set(cache)):
      cache[i] = clip.frame(i)
    yield t, np.stack([cache[i] for i in idx]), clip.stops[idx]
