"""Turning HDR into something a person can look at: tone mapping and the preview video."""
from __future__ import annotations

import pathlib

import av
import numpy as np

from data_pipeline import hdr_io
from data_pipeline import response


def display_scale(hdr: np.ndarray, percentile: float = 99.5) -> float:
  """A robust white point: the given percentile of the luminance (never below 1e-6)."""
  lum = np.asarray(hdr, np.float32).mean(axis=-1)
  return max(float(np.percentile(lum, percentile)), 1e-6)


def tonemap(hdr: np.ndarray, scale: float) -> np.ndarray:
  """μ-law tone mapping for display. hdr: [H, W, 3] ≥ 0 → [H, W, 3] uint8."""
  x = np.clip(np.asarray(hdr, np.float32) / scale, 0.0, 1.0)
  return np.round(response.mu_law(x) * 255).astype(np.uint8)


class PreviewWriter:
  """Appends tone-mapped frames to an H.264 MP4, written atomically on `close()`.

  The white point follows the clip slowly (exponential moving average of
  `display_scale`) so the preview does not flicker with per-frame normalisation.
  """

  def __init__(self, path, fps: float = 25.0, smoothing: float = 0.9):
    self.path = pathlib.Path(path)
    self.fps = fps
    self.smoothing = smoothing
    self._scale = None
    self._ctx = hdr_io.atomic_path(self.path)
    self._tmp = self._ctx.__enter__()
    self._container = av.open(str(self._tmp), mode="w", format="mp4")
    self._stream = None

  def add(self, hdr: np.ndarray) -> None:
    """hdr: [H, W, 3] float32 ≥ 0."""
    s = display_scale(hdr)
    self._scale = s if self._scale is None else (
        self.smoothing * self._scale + (1 - self.smoothing) * s)
    img = tonemap(hdr, self._scale)
    h, w = img.shape[:2]
    img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420 needs even sizes
    if self._stream is None:
      self._stream = self._container.add_stream("libx264", rate=round(self.fps))
      self._stream.width, self._stream.height = img.shape[1], img.shape[0]
      self._stream.pix_fmt = "yuv420p"
      self._stream.options = {"crf": "18", "preset": "veryfast"}
    for packet in self._stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
      self._container.mux(packet)

  def close(self) -> None:
    """Finishes the file and renames it into place."""
    if self._stream is not None:
      for packet in self._stream.encode():
        self._container.mux(packet)
    self._container.close()
    self._ctx.__exit__(None, None, None)

  def abort(self) -> None:
    """Drops the partial file; the final path is left untouched."""
    self._container.close()
    self._ctx.__exit__(RuntimeError, RuntimeError("preview aborted"), None)
