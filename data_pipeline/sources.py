"""HDR content for the simulator: procedural scenes, folders of HDR images, EXR sequences.

Everything returned here is linear radiance in the source's own arbitrary units; the
simulator rescales each clip to DESIGN.md §3 units (see `normalisation_scale`).

Procedural scenes (`procedural_scene`) are built in log2-radiance: a smooth gradient,
multi-octave value noise, stripes or checkers in soft-masked regions, shadow patches, a
low-frequency colour field, then small bright emitters (discs and lamps with glow) well
above the background. The dark-to-bright ratio is forced to at least `min_stops` (default
16) stops. They are deterministic functions of the numpy Generator passed in.

Image folders (`ImageFolderSource`): every `.exr`/`.hdr` file directly inside the folder
(other files are ignored). Bad files: on construction each file is read once
(`validate=True`); with `on_error="raise"` (default) a `ValueError` lists every bad file
and why; with `on_error="skip"` they are dropped with one warning listing them. Images
larger than `max_side` are downscaled on load (INTER_AREA); loaded images are cached per
process (`cache_size` entries, not pickled to workers).

Held-out split (`split_names`): by file name. The validation files are `val_names` if given,
else the `num_val` names with the smallest SHA-1 of the file name (stable across machines
and independent of which other files are present); the rest are training files.

EXR sequences (`ExrSequenceSource`): a folder of numbered `.exr` frames (sorted by the last
number in the name) of one size, used as a time-varying background (HDR video). The
simulator cannot know the content's own motion, so clips from sequences carry
`flow_exact = False`.
"""
from __future__ import annotations

import collections
import hashlib
import os
import pathlib
import re
import threading
import warnings
from typing import Sequence

import cv2
import numpy as np

from data_pipeline import hdr_io

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
PathLike = str | os.PathLike


def luminance(rgb: np.ndarray) -> np.ndarray:
  """[..., 3] → [...] Rec.709 luminance."""
  return np.asarray(rgb, np.float32) @ LUMA


def dynamic_range_stops(rgb: np.ndarray) -> float:
  """log2(max / min) of the luminance of an [H, W, 3] image (min floored at 1e-30)."""
  lum = luminance(rgb)
  return float(np.log2(lum.max() / max(float(lum.min()), 1e-30)))


def normalisation_scale(hdr: np.ndarray, percentile: float, level: float) -> float:
  """Scale that puts the `percentile` of `hdr`'s luminance at `level` (the shortest
  exposure, e = 1, sees `clip(H * scale, 0, 1)`).

  Args:
    hdr: [H, W, 3] float radiance, any units.
  """
  ref = float(np.percentile(luminance(hdr), percentile))
  if not ref > 0:
    ref = float(luminance(hdr).max())
  if not ref > 0:
    raise ValueError("cannot normalise an all-black HDR image")
  return level / ref


# ---------------------------------------------------------------------------- procedural


def value_noise(rng: np.random.Generator, height: int, width: int, *, octaves: int = 5,
                base_cells: float = 3.0, persistence: float = 0.55) -> np.ndarray:
  """[H, W] float32 multi-octave value noise, zero mean, unit std."""
  out = np.zeros((height, width), np.float32)
  amp = 1.0
  for o in range(octaves):
    cells = base_cells * 2**o
    gh = max(2, int(np.ceil(cells * height / max(height, width))) + 1)
    gw = max(2, int(np.ceil(cells * width / max(height, width))) + 1)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    out += amp * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    amp *= persistence
  out -= out.mean()
  return out / max(float(out.std()), 1e-6)


def _periodic_pattern(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """[H, W] float32 in [0, 1]: rotated stripes or checkers with a random period."""
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  angle = rng.uniform(0, np.pi)
  period = rng.uniform(4.0, 24.0)
  u = (xx * np.cos(angle) + yy * np.sin(angle)) / period
  v = (-xx * np.sin(angle) + yy * np.cos(angle)) / period
  if rng.random() < 0.5:
    wave = np.sin(2 * np.pi * u)
  else:
    wave = np.sin(2 * np.pi * u) * np.sin(2 * np.pi * v)
  sharp = rng.uniform(1.0, 8.0)  # From sinusoidal to nearly hard-edged.
  return (0.5 + 0.5 * np.tanh(sharp * wave)).astype(np.float32)


def _smoothstep(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3 - 2 * x)


def shape_alpha(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """[H, W] float32 alpha in [0, 1] of a random antialiased shape filling most of the box:
  an ellipse, a rotated rectangle or a star-shaped polygon."""
  ss = 4  # Supersampling for antialiased edges.
  canvas = np.zeros((height * ss, width * ss), np.uint8)
  cx, cy = width * ss / 2, height * ss / 2
  rx, ry = width * ss * rng.uniform(0.3, 0.48), height * ss * rng.uniform(0.3, 0.48)
  kind = rng.integers(3)
  if kind == 0:
    cv2.ellipse(canvas, (int(cx), int(cy)), (int(rx), int(ry)), 0, 0, 360, 255, -1)
  elif kind == 1:
    angle = rng.uniform(0, 180)
    box = cv2.boxPoints(((cx, cy), (1.4 * rx, 1.4 * ry), angle))
    cv2.fillPoly(canvas, [np.round(box).astype(np.int32)], 255)
  else:
    n = int(rng.integers(5, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.5, 1.0, n)
    pts = np.stack([cx + rx * radii * np.cos(angles), cy + ry * radii * np.sin(angles)], -1)
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 255)
  alpha = cv2.resize(canvas.astype(np.float32) / 255.0, (width, height),
                     interpolation=cv2.INTER_AREA)
  return alpha


def _texture_log2(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """[H, W] float32 log2-radiance texture: noise plus stripes/checkers in soft regions."""
  tex = rng.uniform(0.5, 2.5) * value_noise(rng, height, width, octaves=int(rng.integers(3, 7)),
                                            base_cells=rng.uniform(2.0, 6.0))
  for _ in range(int(rng.integers(1, 4))):
    mask = _smoothstep(2.0 * value_noise(rng, height, width, octaves=2, base_cells=2.0)
                       - rng.uniform(-1.0, 1.0))
    tex += mask * rng.uniform(1.0, 3.0) * (_periodic_pattern(rng, height, width) - 0.5)
  return tex


def _colour_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """[H, W, 3] float32 positive colour multipliers (≈ ±1 stop per channel, smooth)."""
  tint = rng.uniform(-0.7, 0.7, size=3).astype(np.float32)
  fields = np.stack([value_noise(rng, height, width, octaves=3, base_cells=2.0)
                     for _ in range(3)], -1)
  log_rgb = tint + rng.uniform(0.1, 0.6) * fields
  log_rgb -= log_rgb @ LUMA[:, None]  # Keep luminance: colour only.
  return np.exp2(log_rgb).astype(np.float32)


def _emitters(rng: np.random.Generator, height: int, width: int, count: int
              ) -> tuple[np.ndarray, np.ndarray]:
  """`count` small discs/lamps: (cores, glows), each [H, W, 3] float32. The first
  (brightest) core has luminance 1, the others up to 5 stops less; glows (short halos,
  kept separate so their level can be set independently) peak at ≤ 1."""
  h, w = height, width
  img = np.zeros((h, w, 3), np.float32)
  halo = np.zeros((h, w, 3), np.float32)
  side = min(h, w)
  for k in range(count):
    r = min(rng.uniform(0.008, 0.03) * side + 1.0, max(0.5, (side - 3) / 2))
    cx = rng.uniform(r + 1, max(r + 1, w - r - 1))
    cy = rng.uniform(r + 1, max(r + 1, h - r - 1))
    # Work in the emitter's bounding box (glow support ≤ 7.5 r, lamps ≤ 3x longer).
    reach = int(np.ceil(23 * r)) + 2
    y0, y1 = max(0, int(cy) - reach), min(h, int(cy) + reach + 1)
    x0, x1 = max(0, int(cx) - reach), min(w, int(cx) + reach + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    level = 1.0 if k == 0 else 2.0 ** -rng.uniform(0.0, 5.0)
    colour = np.exp2(rng.uniform(-0.5, 0.5, 3)).astype(np.float32)
    colour /= float(colour @ LUMA)
    if rng.random() < 0.6:  # Disc.
      d = np.hypot(xx - cx, yy - cy) / r
    else:  # Elongated lamp (rounded rectangle-ish via an L4 norm).
      a = rng.uniform(0, np.pi)
      u = ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / (r * rng.uniform(1.5, 3.0))
      v = (-(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)) / r
      d = (u**4 + v**4) ** 0.25
    core = _smoothstep((1.2 - d) / 0.4)  # 1 inside d < 0.8, 0 beyond d = 1.2.
    spread = rng.uniform(1.2, 2.5)
    glow = rng.uniform(0.0, 1.0) * np.exp(-0.5 * (d / spread) ** 2) * (d < 3 * spread)
    img[y0:y1, x0:x1] += (level * core)[..., None] * colour
    halo[y0:y1, x0:x1] += (level * glow)[..., None] * colour
  return img, halo


def procedural_scene(rng: np.random.Generator, height: int, width: int, *,
                     min_stops: float = 16.0) -> np.ndarray:
  """A procedural HDR scene.

  Returns:
    [height, width, 3] float32 radiance > 0; background luminance spans up to ~13 stops
    below 1.0, emitters sit above it, and log2(max/min luminance) ≥ `min_stops`.
  """
  if height < 8 or width < 8:
    raise ValueError(f"procedural scene must be at least 8x8, got {height}x{width}")
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  ramp = (xx * np.cos(angle) + yy * np.sin(angle)) / max(height, width)
  log2 = rng.uniform(1.0, 6.0) * ramp + _texture_log2(rng, height, width)
  for _ in range(int(rng.integers(0, 4))):  # Shadows: soft dark patches.
    ph, pw = int(rng.integers(height // 6 + 1, height // 2 + 2)), int(
        rng.integers(width // 6 + 1, width // 2 + 2))
    y0, x0 = int(rng.integers(0, height - ph + 1)), int(rng.integers(0, width - pw + 1))
    patch = np.zeros((height, width), np.float32)
    patch[y0:y0 + ph, x0:x0 + pw] = shape_alpha(rng, ph, pw)
    log2 -= rng.uniform(2.0, 6.0) * cv2.GaussianBlur(patch, (0, 0), rng.uniform(0.5, 3.0))
  # Rescale the background to [-span, 0] stops.
  span = rng.uniform(8.0, 13.0)
  lo, hi = float(log2.min()), float(log2.max())
  log2 = (log2 - hi) * (span / max(hi - lo, 1e-6))
  img = np.exp2(log2)[..., None] * _colour_field(rng, height, width)
  emit, halo = _emitters(rng, height, width, int(rng.integers(1, 6)))
  img += np.float32(np.median(luminance(img)) * 2.0 ** rng.uniform(0.0, 3.0)) * halo
  peak = 2.0 ** rng.uniform(2.0, 8.0)
  for _ in range(10):  # Brighten the emitters until the range reaches min_stops.
    out = img + np.float32(peak) * emit
    short = min_stops - dynamic_range_stops(out)
    if short <= 0:
      break
    peak *= 2.0 ** (short + 0.25)
  return out.astype(np.float32)


def procedural_layer(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """A foreground object: [height, width, 4] float32, RGB radiance (around 1.0) and alpha."""
  log2 = _texture_log2(rng, height, width) * rng.uniform(0.3, 1.0) + rng.uniform(-4.0, 1.0)
  rgb = np.exp2(log2)[..., None] * _colour_field(rng, height, width)
  if rng.random() < 0.15:  # A moving light.
    core, halo = _emitters(rng, height, width, 1)
    rgb += np.float32(2.0 ** rng.uniform(3.0, 8.0)) * core + halo
  return np.concatenate([rgb, shape_alpha(rng, height, width)[..., None]], -1).astype(
      np.float32)


def cut_layer(rng: np.random.Generator, image: np.ndarray, height: int, width: int
              ) -> np.ndarray:
  """A foreground object cut from `image` ([H, W, 3] radiance) with a random shape.

  Returns:
    [height, width, 4] float32 RGB radiance (brightness varied ±1 stop) and alpha.
  """
  h, w, _ = image.shape
  if h < height or w < width:
    image = cv2.resize(image, (max(w, width), max(h, height)), interpolation=cv2.INTER_LINEAR)
    h, w, _ = image.shape
  y0, x0 = int(rng.integers(0, h - height + 1)), int(rng.integers(0, w - width + 1))
  rgb = image[y0:y0 + height, x0:x0 + width] * np.float32(2.0 ** rng.uniform(-1.0, 1.0))
  return np.concatenate([rgb, shape_alpha(rng, height, width)[..., None]], -1).astype(
      np.float32)


# --------------------------------------------------------------------------- file sources


def split_names(names: Sequence[str], *, num_val: int = 2,
                val_names: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
  """Splits file names into (train, val); see the module docstring for the rule."""
  names = sorted(set(names))
  if val_names is not None:
    missing = sorted(set(val_names) - set(names))
    if missing:
      raise ValueError(f"validation names not among the sources: {missing}")
    val = sorted(set(val_names))
  else:
    val = sorted(sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())[:num_val])
  return [n for n in names if n not in val], val


SPLITS = ("train", "val", "all")


class _LRU:
  """A tiny thread-safe LRU cache of loaded images."""

  def __init__(self, size: int):
    self.size = size
    self.items: collections.OrderedDict = collections.OrderedDict()
    self.lock = threading.Lock()

  def get(self, key, load):
    with self.lock:
      if key in self.items:
        self.items.move_to_end(key)
        return self.items[key]
    value = load()
    with self.lock:
      self.items[key] = value
      while len(self.items) > self.size:
        self.items.popitem(last=False)
    return value


def _load_resized(path: pathlib.Path, max_side: int | None) -> np.ndarray:
  img = hdr_io.read_hdr(path)
  h, w, _ = img.shape
  if max_side and max(h, w) > max_side:
    f = max_side / max(h, w)
    img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))),
                     interpolation=cv2.INTER_AREA)
  return np.ascontiguousarray(img, np.float32)


class ImageFolderSource:
  """The `.exr`/`.hdr` images directly inside a folder, optionally one split of them.

  Attributes:
    paths: the usable files of the chosen split, sorted by name.
  """

  def __init__(self, folder: PathLike, *, split: str = "all", num_val: int = 2,
               val_names: Sequence[str] | None = None, on_error: str = "raise",
               validate: bool = True, max_side: int | None = 1536, cache_size: int = 16):
    self.folder = pathlib.Path(folder)
    if not self.folder.is_dir():
      raise FileNotFoundError(f"{self.folder}: HDR source folder does not exist")
    if split not in SPLITS:
      raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if on_error not in ("raise", "skip"):
      raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    self.max_side = max_side
    self.cache_size = cache_size
    files = sorted(p for p in self.folder.iterdir()
                   if p.suffix.lower() in hdr_io.HDR_SUFFIXES and not p.name.startswith("."))
    if not files:
      raise ValueError(f"{self.folder}: no {'/'.join(hdr_io.HDR_SUFFIXES)} files found")
    train, val = split_names([p.name for p in files], num_val=num_val, val_names=val_names)
    self.train_names, self.val_names = train, val
    keep = {"train": set(train), "val": set(val), "all": set(train) | set(val)}[split]
    self.paths = [p for p in files if p.name in keep]
    if validate:
      self._validate(on_error)
    if not self.paths:
      raise ValueError(f"{self.folder}: no usable HDR files in split {split!r}")
    self._cache = _LRU(cache_size)

  def _validate(self, on_error: str) -> None:
    bad = []
    for p in self.paths:
      try:
        img = _load_resized(p, self.max_side)
        if not float(luminance(img).max()) > 0:
          raise ValueError(f"{p}: image is entirely black")
      except (ValueError, OSError) as e:
        bad.append((p, str(e)))
    if not bad:
      return
    listing = "\n".join(f"  {p.name}: {why}" for p, why in bad)
    if on_error == "raise":
      raise ValueError(f"{self.folder}: {len(bad)} unusable HDR file(s) "
                       f"(pass on_error='skip' to ignore them):\n{listing}")
    warnings.warn(f"{self.folder}: skipping {len(bad)} unusable HDR file(s):\n{listing}")
    bad_paths = {p for p, _ in bad}
    self.paths = [p for p in self.paths if p not in bad_paths]

  def __len__(self) -> int:
    return len(self.paths)

  @property
  def names(self) -> list[str]:
    return [p.name for p in self.paths]

  def load(self, i: int) -> np.ndarray:
    """[H, W, 3] float32 radiance of file i (cached; downscaled to `max_side`)."""
    p = self.paths[i]
    return self._cache.get(p, lambda: _load_resized(p, self.max_side))

  def sample(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    i = int(rng.integers(len(self.paths)))
    return self.paths[i].name, self.load(i)

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_cache"] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._cache = _LRU(self.cache_size)


_NUMBER = re.compile(r"(\d+)(?!.*\d)")


class ExrSequenceSource:
  """A folder of numbered `.exr` frames used as HDR video.

  Frames are sorted by the last number in the file name; all must share one size
  (checked on load, with the offending file named).
  """

  def __init__(self, folder: PathLike, *, max_side: int | None = 1536, cache_size: int = 32):
    self.folder = pathlib.Path(folder)
    if not self.folder.is_dir():
      raise FileNotFoundError(f"{self.folder}: EXR sequence folder does not exist")
    files = [p for p in self.folder.iterdir()
             if p.suffix.lower() == ".exr" and not p.name.startswith(".")]
    unnumbered = [p.name for p in files if not _NUMBER.search(p.stem)]
    if unnumbered:
      raise ValueError(f"{self.folder}: EXR sequence frames need a frame number in the name; "
                       f"found {unnumbered[:5]}")
    if len(files) < 2:
      raise ValueError(f"{self.folder}: an EXR sequence needs at least 2 frames, "
                       f"found {len(files)}")
    self.paths = sorted(files, key=lambda p: (int(_NUMBER.search(p.stem).group(1)), p.name))
    self.max_side = max_side
    self.cache_size = cache_size
    self._cache = _LRU(cache_size)
    self._shape = None

  def __len__(self) -> int:
    return len(self.paths)

  @property
  def name(self) -> str:
    return self.folder.name

  def frame(self, i: int) -> np.ndarray:
    """[H, W, 3] float32 radiance of frame i (clamped to the sequence)."""
    p = self.paths[int(np.clip(i, 0, len(self.paths) - 1))]
    img = self._cache.get(p, lambda: _load_resized(p, self.max_side))
    if self._shape is None:
      self._shape = img.shape
    elif img.shape != self._shape:
      raise ValueError(f"{p}: frame size {img.shape[:2]} differs from the sequence's "
                       f"{self._shape[:2]}")
    return img

  def at(self, t: float) -> np.ndarray:
    """Radiance at fractional frame time `t` (linear interpolation between frames)."""
    i = int(np.floor(t))
    f = np.float32(t - i)
    a = self.frame(i)
    return a if f == 0 else (1 - f) * a + f * self.frame(i + 1)

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_cache"] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._cache = _LRU(self.cache_size)
