"""HDR video people can watch: 10-bit HEVC with HDR10 (PQ) or HLG signalling.

From the model's scene-referred linear RGB (DESIGN.md §3 units; BT.709 primaries, D65) to a
file that HDR displays, players and upload services read as HDR:

1. **Primaries**: linear BT.709 RGB → linear BT.2020 RGB (3×3 matrix from the chromaticities).
2. **Display light** (one rule for the whole clip, so nothing flickers): the radiance placed
   at diffuse white, `W`, is `median luminance / key` with the median taken per frame and
   then the median over frames (a scene whose median is a mid-grey of reflectance `key`
   = 0.18 has its white at `W`); `W` maps to the reference white of ITU-R BT.2408,
   203 cd/m². `diffuse_white=` fixes `W` instead.
3. **Highlights**: the ITU-R BT.2390 EETF (a Hermite knee in the PQ domain) maps the clip's
   brightest value onto the display peak `peak_nits`, on max(R, G, B) with the pixel's
   colour ratios kept; below the knee nothing changes, above it nothing is hard-clipped.
   A clip whose brightest pixel is under the peak passes unchanged.
4. **Transfer**: SMPTE ST 2084 (PQ, absolute) or ARIB STD-B67 (HLG, through the inverse
   BT.2100 OOTF for a display of `peak_nits`, system gamma 1.2 at 1000 cd/m²).
5. **Signal**: BT.2020 non-constant-luminance Y'CbCr, limited range (Y' 64–940, C 64–960),
   4:2:0 (chroma averaged over 2×2), 10 bit, HEVC Main10 by libx265, the colour tags set on
   the stream (and in the HEVC VUI). For PQ also the mastering-display colour volume
   (BT.2020 primaries, D65, 0.0001–`peak_nits` cd/m²) and MaxCLL/MaxFALL measured from the
   frames as encoded (before quantisation).

Streaming: the frames are read three times (statistics, light levels, encoding), one at a
time, so memory does not depend on the clip's length; frames given as EXR paths are
re-read from disk. The file is written under a temporary name and renamed at the end.
"""
from __future__ import annotations

import math
import os
import pathlib
import time
from collections.abc import Iterator, Sequence

import av
import numpy as np

from data_pipeline import hdr_io

FORMATS = ("pq", "hlg")
REFERENCE_WHITE_NITS = 203.0  # ITU-R BT.2408 HDR reference white (diffuse white).
DEFAULT_KEY = 0.18  # Reflectance the scene's median is taken to have (mid-grey).
PQ_MAX_NITS = 10000.0

# CIE 1931 xy chromaticities of the primaries (R, G, B) and of the D65 white point.
BT709_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
BT2020_PRIMARIES = ((0.708, 0.292), (0.170, 0.797), (0.131, 0.046))
D65_WHITE = (0.3127, 0.3290)
BT2020_LUMA = (0.2627, 0.6780, 0.0593)  # Kr, Kg, Kb.
BT709_LUMINANCE = (0.2126, 0.7152, 0.0722)  # Y of linear BT.709 RGB.

# SMPTE ST 2084 constants.
_PQ_M1 = 2610 / 16384
_PQ_M2 = 2523 / 4096 * 128
_PQ_C1 = 3424 / 4096
_PQ_C2 = 2413 / 4096 * 32
_PQ_C3 = 2392 / 4096 * 32
# ARIB STD-B67 constants.
_HLG_A = 0.17883277
_HLG_B = 1 - 4 * _HLG_A
_HLG_C = 0.5 - _HLG_A * math.log(4 * _HLG_A)

Frame = np.ndarray | str | os.PathLike


def rgb_to_xyz_matrix(primaries, white) -> np.ndarray:
  """[3, 3] matrix from linear RGB with these xy primaries and white point to CIE XYZ."""
  xyz = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T  # Columns: R, G, B.
  wx, wy = white
  white_xyz = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
  return xyz * np.linalg.solve(xyz, white_xyz)[None, :]


def bt709_to_bt2020_matrix() -> np.ndarray:
  """[3, 3] matrix taking linear BT.709 RGB to linear BT.2020 RGB (rows: BT.2020 R, G, B)."""
  return (np.linalg.inv(rgb_to_xyz_matrix(BT2020_PRIMARIES, D65_WHITE))
          @ rgb_to_xyz_matrix(BT709_PRIMARIES, D65_WHITE))


def pq_encode(nits: np.ndarray) -> np.ndarray:
  """SMPTE ST 2084 inverse EOTF: absolute luminance (cd/m², ≥ 0) → signal in [0, 1]."""
  y = np.clip(np.asarray(nits, np.float64) / PQ_MAX_NITS, 0.0, 1.0) ** _PQ_M1
  return ((_PQ_C1 + _PQ_C2 * y) / (1 + _PQ_C3 * y)) ** _PQ_M2


def pq_decode(signal: np.ndarray) -> np.ndarray:
  """SMPTE ST 2084 EOTF: signal in [0, 1] → absolute luminance in cd/m²."""
  e = np.clip(np.asarray(signal, np.float64), 0.0, 1.0) ** (1 / _PQ_M2)
  return PQ_MAX_NITS * (np.maximum(e - _PQ_C1, 0) / (_PQ_C2 - _PQ_C3 * e)) ** (1 / _PQ_M1)


def hlg_oetf(scene: np.ndarray) -> np.ndarray:
  """ARIB STD-B67 OETF: normalised scene light in [0, 1] → signal in [0, 1]."""
  e = np.clip(np.asarray(scene, np.float64), 0.0, 1.0)
  with np.errstate(divide="ignore", invalid="ignore"):
    log_part = _HLG_A * np.log(np.maximum(12 * e - _HLG_B, 1e-12)) + _HLG_C
  return np.where(e <= 1 / 12, np.sqrt(3 * e), log_part)


def hlg_inverse_oetf(signal: np.ndarray) -> np.ndarray:
  """ARIB STD-B67 inverse OETF: signal in [0, 1] → normalised scene light in [0, 1]."""
  s = np.clip(np.asarray(signal, np.float64), 0.0, 1.0)
  return np.where(s <= 0.5, s * s / 3, (np.exp((s - _HLG_C) / _HLG_A) + _HLG_B) / 12)


def hlg_system_gamma(peak_nits: float) -> float:
  """BT.2100 HLG system gamma for a display of this peak luminance."""
  return 1.2 + 0.42 * math.log10(peak_nits / 1000.0)


def hlg_encode(display_rgb: np.ndarray, peak_nits: float) -> np.ndarray:
  """Display light [..., 3] (cd/m², BT.2020) → HLG signal, through the inverse BT.2100 OOTF."""
  gamma = hlg_system_gamma(peak_nits)
  rgb = np.asarray(display_rgb, np.float64) / peak_nits
  y_display = np.maximum(rgb @ np.asarray(BT2020_LUMA), 1e-12)[..., None]
  scene = rgb * y_display ** ((1 - gamma) / gamma)
  return hlg_oetf(scene)


def hlg_decode(signal: np.ndarray, peak_nits: float) -> np.ndarray:
  """HLG signal [..., 3] → display light (cd/m²) on a display of `peak_nits` (BT.2100 OOTF)."""
  gamma = hlg_system_gamma(peak_nits)
  scene = hlg_inverse_oetf(signal)
  y_scene = (scene @ np.asarray(BT2020_LUMA))[..., None]
  return peak_nits * y_scene ** (gamma - 1) * scene


def eetf_rolloff(nits: np.ndarray, source_peak: float, target_peak: float) -> np.ndarray:
  """ITU-R BT.2390 EETF: maps [0, source_peak] onto [0, target_peak] cd/m², smoothly.

  Identity below the knee (in the PQ domain: 1.5·target − 0.5 of the source range), a
  Hermite spline above it that reaches `target_peak` exactly at `source_peak` with slope
  0. Values are clamped to `source_peak` first; identity if source_peak ≤ target_peak.
  """
  nits = np.asarray(nits, np.float64)
  if source_peak <= target_peak:
    return nits
  source_pq = pq_encode(source_peak)
  e1 = pq_encode(np.minimum(nits, source_peak)) / source_pq
  max_lum = pq_encode(target_peak) / source_pq
  knee = max(1.5 * max_lum - 0.5, 0.0)
  t = np.clip((e1 - knee) / (1 - knee), 0.0, 1.0)
  spline = ((2 * t**3 - 3 * t**2 + 1) * knee + (t**3 - 2 * t**2 + t) * (1 - knee)
            + (-2 * t**3 + 3 * t**2) * max_lum)
  e2 = np.where(e1 < knee, e1, spline)
  return pq_decode(e2 * source_pq)


def median_luminance(image: np.ndarray) -> float:
  """Median luminance of an [H, W, 3] linear BT.709 image (the same in BT.2020)."""
  return float(np.median(np.asarray(image, np.float32) @ np.asarray(BT709_LUMINANCE,
                                                                    np.float32)))


def diffuse_white(frame_medians, key: float = DEFAULT_KEY) -> tuple[float, float]:
  """The clip's exposure rule: (median luminance, radiance placed at diffuse white).

  The median over frames of per-frame median luminances, divided by `key`; a black clip
  (median 0) has no exposure to anchor and keeps its white at radiance 1.
  """
  median = float(np.median(frame_medians))
  return median, (median / key if median > 0 else 1.0)


def check_encoder() -> None:
  """Raises RuntimeError if the installed PyAV has no libx265 encoder."""
  try:
    codec = av.codec.Codec("libx265", "w")
  except Exception as e:  # av.codec raises UnknownCodecError (a ValueError) or similar.
    raise RuntimeError(
        f"the installed PyAV ({av.__version__}) has no libx265 encoder, which HDR video "
        "needs; install PyAV's wheel from PyPI (it bundles libx265): "
        "pip install --force-reinstall --no-binary=none av") from e
  if "yuv420p10le" not in {f.name for f in codec.video_formats or ()}:
    raise RuntimeError(f"the installed PyAV's libx265 ({av.__version__}) cannot encode "
                       "10-bit 4:2:0 (yuv420p10le), which HDR video needs")


def check_output(path: str | os.PathLike, size: tuple[int, int] | None = None) -> pathlib.Path:
  """Checks what can be checked before any work: suffix, folder, frame size, encoder.

  Raises:
    ValueError: not an .mp4/.mov/.mkv path, or a size 4:2:0 cannot hold (odd sides).
    PermissionError / NotADirectoryError: the folder cannot be written.
    RuntimeError: no libx265 in the installed PyAV.
  """
  path = pathlib.Path(path)
  if path.suffix.lower() not in (".mp4", ".mov", ".mkv"):
    raise ValueError(f"{path}: HDR video must be an .mp4, .mov or .mkv file")
  if path.is_dir():
    raise ValueError(f"{path}: is a folder, expected a video file path")
  folder = path.parent
  existing = folder
  while not existing.exists():
    existing = existing.parent
  if not existing.is_dir():
    raise NotADirectoryError(f"{path}: {existing} is not a folder")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise PermissionError(f"{path}: cannot write in {existing}")
  if size is not None:
    _check_size(size, path)
  check_encoder()
  return path


def _check_size(size: tuple[int, int], where) -> None:
  h, w = size
  if h % 2 or w % 2 or h < 2 or w < 2:
    raise ValueError(f"{where}: frame size {h}×{w} cannot be stored in 4:2:0 video, which "
                     "needs even width and height (crop or pad the clip by one pixel)")


def _load(frame: Frame, index: int) -> np.ndarray:
  """One frame as float32 [H, W, 3], checked (index says which frame is bad)."""
  if isinstance(frame, (str, os.PathLike)):
    image = hdr_io.read_hdr(frame)
    where = f"frame {index} ({frame})"
  else:
    image = np.asarray(frame, np.float32)
    where = f"frame {index}"
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"{where}: expected an [H, W, 3] linear RGB image, got shape "
                     f"{image.shape}")
  if not np.all(np.isfinite(image)):
    raise ValueError(f"{where}: contains NaN or infinite values")
  return np.maximum(image, 0.0)


_diffuse_white = diffuse_white  # The argument of _Grading shadows the name.


class _Grading:
  """The clip-wide mapping from scene radiance to display light, and its statistics."""

  def __init__(self, frames: Sequence[Frame], peak_nits: float,
               diffuse_white: float | None, key: float):
    to_2020 = bt709_to_bt2020_matrix().astype(np.float32)
    self.to_2020 = to_2020
    self.peak_nits = float(peak_nits)
    medians, max_rgb, size = [], 0.0, None
    for i, frame in enumerate(frames):
      image = _load(frame, i)
      if size is None:
        size = image.shape[:2]
        _check_size(size, f"frame {i}")
      elif image.shape[:2] != size:
        raise ValueError(f"frame {i}: size {image.shape[0]}×{image.shape[1]} differs from "
                         f"frame 0's {size[0]}×{size[1]}")
      medians.append(median_luminance(image))
      max_rgb = max(max_rgb, float((image @ to_2020.T).max()))
    if size is None:
      raise ValueError("no frames to encode")
    self.size = size
    self.scene_median, white = _diffuse_white(medians, key)
    if diffuse_white is None:
      diffuse_white = white
    if not diffuse_white > 0:
      raise ValueError(f"diffuse_white must be > 0, got {diffuse_white}")
    self.diffuse_white = float(diffuse_white)
    self.nits_per_unit = REFERENCE_WHITE_NITS / self.diffuse_white
    self.source_peak_nits = max_rgb * self.nits_per_unit

  def display(self, image: np.ndarray) -> np.ndarray:
    """[H, W, 3] scene radiance (BT.709) → [H, W, 3] display light in cd/m² (BT.2020)."""
    nits = (image @ self.to_2020.T).astype(np.float64) * self.nits_per_unit
    peak = nits.max(axis=-1, keepdims=True)
    mapped = eetf_rolloff(peak, self.source_peak_nits, self.peak_nits)
    return nits * np.where(peak > 0, mapped / np.maximum(peak, 1e-12), 0.0)


def to_yuv420_10bit(signal: np.ndarray) -> np.ndarray:
  """Non-linear BT.2020 R'G'B' [H, W, 3] in [0, 1] → yuv420p10le planes stacked as PyAV
  expects: [H * 3 / 2, W] uint16 (Y' rows, then Cb and Cr, each [H/2, W/2] reshaped)."""
  kr, kg, kb = BT2020_LUMA
  r, g, b = (signal[..., i] for i in range(3))
  y = kr * r + kg * g + kb * b
  cb = (b - y) / (2 * (1 - kb))
  cr = (r - y) / (2 * (1 - kr))
  h, w = y.shape

  def half(c):
    return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

  y_code = np.clip(np.round(64 + 876 * y), 64, 940)
  cb_code = np.clip(np.round(512 + 896 * half(cb)), 64, 960)
  cr_code = np.clip(np.round(512 + 896 * half(cr)), 64, 960)
  return np.concatenate([y_code, cb_code.reshape(h // 4, w), cr_code.reshape(h // 4, w)]
                        ).astype(np.uint16)


def from_yuv420_10bit(planes: np.ndarray) -> np.ndarray:
  """Inverse of `to_yuv420_10bit` (chroma repeated to full size): → R'G'B' [H, W, 3]."""
  h = planes.shape[0] * 2 // 3
  w = planes.shape[1]
  y = (planes[:h].astype(np.float64) - 64) / 876
  chroma = planes[h:].astype(np.float64).reshape(2, h // 2, w // 2)
  cb, cr = (np.repeat(np.repeat((c - 512) / 896, 2, 0), 2, 1) for c in chroma)
  kr, kg, kb = BT2020_LUMA
  r = y + 2 * (1 - kr) * cr
  b = y + 2 * (1 - kb) * cb
  g = (y - kr * r - kb * b) / kg
  return np.stack([r, g, b], axis=-1)


def _x265_params(hdr_format: str, peak_nits: float, max_cll: int, max_fall: int) -> str:
  params = ["log-level=error", "repeat-headers=1", "colorprim=bt2020",
            "colormatrix=bt2020nc", "range=limited",
            f"transfer={'smpte2084' if hdr_format == 'pq' else 'arib-std-b67'}"]
  if hdr_format == "pq":
    # Chromaticities in units of 0.00002, luminance in units of 0.0001 cd/m².
    def xy(p):
      return f"({round(p[0] / 0.00002)},{round(p[1] / 0.00002)})"
    (rx, gx, bx), wp = BT2020_PRIMARIES, D65_WHITE
    params += ["hdr10=1", "hdr10-opt=1",
               (f"master-display=G{xy(gx)}B{xy(bx)}R{xy(rx)}WP{xy(wp)}"
                f"L({round(peak_nits * 10000)},1)"),
               f"max-cll={max_cll},{max_fall}"]
  return ":".join(params)


def _whole_nits(nits: float) -> int:
  """Light levels are whole cd/m² (CTA-861.3), rounded up, ignoring float noise."""
  return math.ceil(round(nits, 3))


def _iterate(frames: Sequence[Frame]) -> Iterator[tuple[int, np.ndarray]]:
  for i, frame in enumerate(frames):
    yield i, _load(frame, i)


def write_hdr_video(path: str | os.PathLike, frames: Sequence[Frame], *, fps: float = 25.0,
                    hdr_format: str = "pq", peak_nits: float = 1000.0,
                    diffuse_white: float | None = None, key: float = DEFAULT_KEY,
                    crf: int = 18,
                    preset: str = "medium") -> dict:
  """Encodes linear HDR frames as a 10-bit HEVC HDR10 (PQ) or HLG video.

  Args:
    path: .mp4 (default players and upload services), .mov or .mkv file; written
      atomically (an existing file survives a failure).
    frames: [H, W, 3] float32 linear HDR frames (DESIGN.md §3 units, BT.709 primaries), or
      paths of EXR files; a sequence that can be read three times (it is, one frame at a
      time). Height and width must be even.
    fps: frame rate.
    hdr_format: "pq" (HDR10: SMPTE ST 2084 + static metadata) or "hlg" (ARIB STD-B67).
    peak_nits: display peak in cd/m²; highlights above it are rolled off (BT.2390 EETF).
    diffuse_white: scene radiance shown at 203 cd/m²; default median luminance / key.
    key: reflectance of the scene's median (the exposure rule; 0.18 = mid-grey).
    crf, preset: libx265 quality (lower crf = better) and speed.
  Returns:
    a summary: format, size, frames, the grading (diffuse white, cd/m² per radiance unit,
    source and display peaks), max_cll / max_fall (cd/m²), bytes, kbit/s, encode ms/frame.
  Raises:
    ValueError: bad frames (names the frame), odd sizes, bad arguments.
    RuntimeError: no libx265 in the installed PyAV.
  """
  if hdr_format not in FORMATS:
    raise ValueError(f"unknown HDR format {hdr_format!r}; expected one of {FORMATS}")
  if not 100 <= peak_nits <= PQ_MAX_NITS:
    raise ValueError(f"peak_nits must be in [100, {PQ_MAX_NITS:g}] cd/m², got {peak_nits}")
  if not fps > 0:
    raise ValueError(f"fps must be > 0, got {fps}")
  path = check_output(path)
  start = time.perf_counter()
  grading = _Grading(frames, peak_nits, diffuse_white, key)
  # Light levels of the frames as they will be shown (CTA-861.3: max(R, G, B) per pixel).
  max_cll, max_fall = 0.0, 0.0
  for _, image in _iterate(frames):
    light = grading.display(image).max(axis=-1)
    max_cll = max(max_cll, float(light.max()))
    max_fall = max(max_fall, float(light.mean()))
  stats_s = time.perf_counter() - start
  h, w = grading.size
  start = time.perf_counter()
  with hdr_io.atomic_path(path) as tmp:
    container = av.open(str(tmp), mode="w")
    try:
      rate = round(fps) if abs(fps - round(fps)) < 1e-6 else fps
      stream = container.add_stream("libx265", rate=rate)
      stream.width, stream.height = w, h
      stream.pix_fmt = "yuv420p10le"
      ctx = stream.codec_context
      ctx.color_primaries = 9  # BT.2020 (ITU-T H.273 code points).
      ctx.color_trc = 16 if hdr_format == "pq" else 18  # SMPTE ST 2084 / ARIB STD-B67.
      ctx.colorspace = 9  # BT.2020 non-constant luminance.
      ctx.color_range = 1  # Limited ("MPEG", "tv").
      if path.suffix.lower() in (".mp4", ".mov"):
        stream.codec_tag = "hvc1"  # What Apple players and most services expect.
      stream.options = {"crf": str(crf), "preset": preset,
                        "x265-params": _x265_params(hdr_format, peak_nits,
                                                    _whole_nits(max_cll), _whole_nits(max_fall))}
      n = 0
      for i, image in _iterate(frames):
        light = grading.display(image)
        signal = pq_encode(light) if hdr_format == "pq" else hlg_encode(light, peak_nits)
        frame = av.VideoFrame.from_ndarray(to_yuv420_10bit(signal), format="yuv420p10le")
        frame.pts = i
        for packet in stream.encode(frame):
          container.mux(packet)
        n += 1
      for packet in stream.encode():
        container.mux(packet)
    finally:
      container.close()
  encode_s = time.perf_counter() - start
  size_bytes = path.stat().st_size
  return {
      "path": str(path), "format": hdr_format, "codec": "hevc main10 (libx265)",
      "pix_fmt": "yuv420p10le", "size": [h, w], "frames": n, "fps": fps,
      "peak_nits": float(peak_nits), "diffuse_white": grading.diffuse_white,
      "scene_median_luminance": grading.scene_median,
      "nits_per_unit": grading.nits_per_unit, "source_peak_nits": grading.source_peak_nits,
      "max_cll": _whole_nits(max_cll) if hdr_format == "pq" else None,
      "max_fall": _whole_nits(max_fall) if hdr_format == "pq" else None,
      "bytes": size_bytes, "kbit_per_s": size_bytes * 8 / 1000 / (n / fps),
      "stats_ms_per_frame": 1000 * stats_s / n, "encode_ms_per_frame": 1000 * encode_s / n,
  }


def read_stream_info(path: str | os.PathLike) -> dict:
  """What a player reads from an HDR video: codec, pixel format, colour tags, HDR metadata.

  The `ffprobe`-equivalent fields, read back with PyAV (from the first decoded frame for the
  per-frame side data: mastering display and content light level).
  """
  with av.open(str(path)) as container:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    info = {
        "codec": ctx.name, "profile": ctx.profile, "pix_fmt": ctx.pix_fmt,
        "width": ctx.width, "height": ctx.height, "frames": stream.frames,
        "codec_tag": stream.codec_tag,
        "color_primaries": _tag_name(av.video.reformatter.ColorPrimaries, ctx.color_primaries),
        "color_transfer": _tag_name(av.video.reformatter.ColorTrc, ctx.color_trc),
        "color_space": {9: "BT2020_NCL", 1: "BT709"}.get(ctx.colorspace, ctx.colorspace),
        "color_range": {1: "limited", 2: "full"}.get(ctx.color_range, ctx.color_range),
        "bit_rate": container.bit_rate,
    }
    for frame in container.decode(stream):
      for side in frame.side_data:
        raw = bytes(side)
        if side.type.name == "CONTENT_LIGHT_LEVEL":
          max_cll, max_fall = np.frombuffer(raw[:8], np.uint32)
          info["max_cll"], info["max_fall"] = int(max_cll), int(max_fall)
        elif side.type.name == "MASTERING_DISPLAY_METADATA":
          rationals = np.frombuffer(raw[:80], np.int32).reshape(10, 2)
          values = rationals[:, 0] / np.maximum(rationals[:, 1], 1)
          info["mastering_display"] = {
              "primaries_xy": values[:6].reshape(3, 2).round(5).tolist(),
              "white_xy": values[6:8].round(5).tolist(),
              "min_nits": float(values[8]), "max_nits": float(values[9])}
      break
  return info


def _tag_name(enum, value) -> str | int:
  try:
    return enum(value).name
  except ValueError:
    return value


def decode_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
  """Decoded 10-bit planes of each frame: [H * 3 / 2, W] uint16 (as `to_yuv420_10bit`)."""
  with av.open(str(path)) as container:
    for frame in container.decode(video=0):
      yield frame.to_ndarray(format="yuv420p10le")
