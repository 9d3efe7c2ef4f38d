"""Frame-window → HDR prediction on the host side: compiled once per shape, optionally tiled.

`Predictor` wraps the model (or a baseline) behind one call, `predict(frames, stops)`, that
inference, the demo and evaluation share:
  * inputs are validated on the host (NaN/Inf, range, shapes) before anything compiles;
  * the model is compiled once per (tile or frame size, ratio) and reused for every frame,
    and once more for each layout of a three-exposure clip's edge windows whose filled-in
    slots hold frames further away than the slots stand for (`offsets`, chained flow);
  * `tile=N` splits large frames into N×N tiles (all the same size, so one program) that
    overlap by `overlap` pixels and are blended with linear ramps, so memory is bounded by
    the tile size and there are no seams. Under tiling, FGMA attends to the top `ratio`
    share of each tile's tokens rather than of the whole frame's;
  * `self_ensemble=N` (2 or 4) averages the model over N mirrored copies of the window
    (left-right, then upside down and both), each mirrored back: N× the compute, the same
    compiled program (a mirrored window has the same shape). Training saw both mirrorings
    (`data_pipeline.pipeline.Augment`), so each copy is an equally valid estimate and their
    mean has less of the model's orientation-dependent error.
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import clips
from dealthdr_jax.models import dealthdr as dealthdr_lib
from dealthdr_jax.models import self_ensemble as self_ensemble_lib
from dealthdr_jax.models.dealthdr import DeAltHDR


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
  """Start offsets of equal tiles covering [0, length) with at least `overlap` overlap."""
  if tile >= length:
    return [0]
  if overlap >= tile:
    raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
  step = tile - overlap
  starts = list(range(0, length - tile, step))
  starts.append(length - tile)
  return starts


def blend_ramp(length: int, start: int, size: int, overlap: int) -> np.ndarray:
  """1-D blending weight of one tile: linear ramps over the overlap, 1 at frame borders.

  Returns:
    [size] float32 in (0, 1].
  """
  w = np.ones(size, np.float32)
  if overlap <= 0:
    return w
  ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
  if start > 0:
    w[:overlap] = np.minimum(w[:overlap], ramp)
  if start + size < length:
    w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
  return w


def edge_layouts(radius: int, period: int) -> list[tuple[int, ...]]:
  """The clip-edge window layouts (`clips.window_offsets`) in which some slot's flow is
  chained (`dealthdr.chain_plan`), over every length of a clip whose exposures repeat every
  `period` frames (beyond a few windows' length its edges repeat the same layouts): each
  gets a program of its own in `Predictor` and in `dealthdr export`."""
  layouts = set()
  for n in range(max(2, period), 3 * (2 * radius + 1) + period + 1):
    for t in range(n):
      offsets = clips.window_offsets(n, t, radius, period)
      if dealthdr_lib.chain_plan(offsets, radius):
        layouts.add(offsets)
  return sorted(layouts)


def window_program(model: DeAltHDR, ratio: float, offsets: tuple[int, ...] | None = None
                   ) -> Callable:
  """`fn(params, frames [B, T, H, W, 3], stops [B, T])` → hdr [B, H, W, 3], the program
  `Predictor` compiles (and `dealthdr export` serializes, `dealthdr bench` measures); with
  clip-edge `offsets` (`edge_layouts`) → (hdr, chained [B] bool: whether any slot of that
  window took its chained flow)."""
  if offsets is None:
    return lambda p, f, s: model.apply({"params": p}, f, s, ratio=ratio)[0]

  def fn(p, f, s):
    hdr, aux = model.apply({"params": p}, f, s, ratio=ratio, offsets=offsets)
    return hdr, jnp.any(aux["flow_chained"], axis=1)
  return fn


class Predictor:
  """Predicts the HDR centre frame of a window with a DeAltHDR model.

  Attributes:
    model, params: the model and its parameters.
    ratio: FGMA attention ratio (static; one program per ratio).
    tile: tile side in pixels (rounded up to the model's pad multiple), or None.
    overlap: tile overlap in pixels.
    self_ensemble: copies averaged per prediction (1: off; 2 or 4: mirrored, see above).
    log: called with a line before and after each compilation (None: silent).
  """

  def __init__(self, model: DeAltHDR, params, ratio: float, tile: int | None = None,
               overlap: int = 64, log: Callable[[str], None] | None = None,
               self_ensemble: int = 1):
    if self_ensemble not in self_ensemble_lib.SIZES:
      raise ValueError(f"self-ensemble must be one of {self_ensemble_lib.SIZES} (copies averaged), "
                       f"got {self_ensemble!r}")
    self.self_ensemble = int(self_ensemble)
    self.model = model
    self.log = log
    self.params = jax.device_put(params)
    self.ratio = float(ratio)
    m = model.pad_multiple
    self.tile = None if tile is None else max(m, -(-int(tile) // m) * m)
    self.overlap = overlap
    self.compile_seconds = 0.0
    self._compiled = {}

  def _program(self, shape: tuple[int, ...], offsets: tuple[int, ...] | None = None
               ) -> Callable:
    key = (shape, offsets)
    if key not in self._compiled:
      if self.log:
        edge = f", clip-edge window {offsets}" if offsets else ""
        self.log(f"compiling the model for {'tiles' if self.tile else 'frames'} of "
                 f"{shape[2]}x{shape[3]} (window of {shape[1]}{edge}), attention ratio "
                 f"{self.ratio:g}; once per size and ratio ...")
      start = time.perf_counter()
      fn = jax.jit(window_program(self.model, self.ratio, offsets))
      frames = jax.ShapeDtypeStruct(shape, jnp.float32)
      stops = jax.ShapeDtypeStruct(shape[:2], jnp.float32)
      self._compiled[key] = fn.lower(self.params, frames, stops).compile()
      seconds = time.perf_counter() - start
      self.compile_seconds += seconds
      if self.log:
        self.log(f"compiled in {seconds:.1f} s")
    return self._compiled[key]

  @property
  def num_programs(self) -> int:
    return len(self._compiled)

  def predict(self, frames: np.ndarray, stops: np.ndarray,
              offsets: tuple[int, ...] | None = None) -> np.ndarray:
    """HDR of the window's centre frame.

    Args:
      frames: [T, H, W, 3] float32 in [0, 1]; stops: [T].
      offsets: each slot's frame's distance from the reference in frames
        (`clips.window_offsets`), or None: every slot where it belongs. Windows filled in
        at a clip's edges whose slots hold further frames get their own program, in which
        those slots' flow may be chained (`dealthdr.chain_plan`); where none is, and in
        every other window, the output is the one program's.
    Returns:
      [H, W, 3] float32 ≥ 0 in §3 units: the mean of the self-ensemble's copies.
    """
    frames = np.asarray(frames, np.float32)[None]
    stops = np.asarray(stops, np.float32)[None]
    self.model.check_inputs(frames, stops)
    if not dealthdr_lib.chain_plan(offsets, self.model.radius):
      offsets = None
    else:
      offsets = tuple(int(o) for o in offsets)
    total = None
    for left_right, upside_down in self_ensemble_lib.MIRRORINGS[:self.self_ensemble]:
      hdr = self_ensemble_lib.mirror(
          self._predict_once(self_ensemble_lib.mirror(frames, left_right, upside_down), stops,
                             offsets),
          left_right, upside_down)
      total = hdr if total is None else total + hdr
    return total / self.self_ensemble

  def _run(self, frames: np.ndarray, stops: np.ndarray,
           offsets: tuple[int, ...] | None) -> np.ndarray:
    """[1, T, h, w, 3] window (or tile), [1, T] stops → [h, w, 3] HDR of one model pass.

    A clip-edge window whose slots all kept their own flow gets the plain program's
    output, bit for bit: the edge program differs only where it chains.
    """
    if offsets is not None:
      hdr, chained = self._program(frames.shape, offsets)(self.params, frames, stops)
      if bool(chained[0]):
        return np.asarray(hdr)[0]
    return np.asarray(self._program(frames.shape)(self.params, frames, stops))[0]

  def _predict_once(self, frames: np.ndarray, stops: np.ndarray,
                    offsets: tuple[int, ...] | None) -> np.ndarray:
    """[1, T, H, W, 3] window, [1, T] stops → [H, W, 3] HDR of one model pass."""
    _, _, h, w, _ = frames.shape
    if self.tile is None or (h <= self.tile and w <= self.tile):
      return self._run(frames, stops, offsets)
    return self._predict_tiled(frames, stops, offsets)

  def _predict_tiled(self, frames, stops, offsets):
    _, t, h, w, _ = frames.shape
    th, tw = min(self.tile, h), min(self.tile, w)
    out = np.zeros((h, w, 3), np.float32)
    weight = np.zeros((h, w, 1), np.float32)
    for y in tile_starts(h, th, self.overlap):
      wy = blend_ramp(h, y, th, self.overlap)
      for x in tile_starts(w, tw, self.overlap):
        wx = blend_ramp(w, x, tw, self.overlap)
        tile_out = self._run(frames[:, :, y:y + th, x:x + tw], stops, offsets)
        wgt = (wy[:, None] * wx[None, :])[..., None]
        out[y:y + th, x:x + tw] += wgt * tile_out
        weight[y:y + th, x:x + tw] += wgt
    return out / weight


class BaselinePredictor:
  """The same `predict` interface for a non-learned method of `dealthdr_jax.inference.baselines`."""

  def __init__(self, fn: Callable, response: str = "gamma2.2"):
    self.fn = fn
    self.response = response
    self.compile_seconds = 0.0
    self.num_programs = 0

  def predict(self, frames: np.ndarray, stops: np.ndarray,
              offsets: tuple[int, ...] | None = None) -> np.ndarray:
    del offsets  # The baselines align every neighbour on its own.
    frames = np.asarray(frames, np.float32)
    if not np.all(np.isfinite(frames)) or frames.min() < 0 or frames.max() > 1:
      raise ValueError("frames must be finite LDR values in [0, 1]")
    return np.asarray(self.fn(frames, np.asarray(stops, np.float32), response=self.response),
                      np.float32)
