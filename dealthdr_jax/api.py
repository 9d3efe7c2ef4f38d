"""The Python API: load a model once, then reconstruct arrays, clip folders and videos.

  import dealthdr_jax
  model = dealthdr_jax.load("2exp")                  # shipped model, model folder or workdir
  hdr = model(frames, stops=(0, 3))                  # [T, H, W, 3] in → [T, H, W, 3] HDR out
  for hdr_t in model.stream("clip_folder"): ...      # one frame at a time, any clip length
  model.reconstruct("clip_folder", "out_folder")     # what `dealthdr infer` writes
  dealthdr_jax.write_hdr_video("hdr.mp4", hdr)       # HDR10 (PQ) or HLG 10-bit HEVC

Frames are what the camera wrote (uint8 or uint16 code values, or floats in [0, 1]);
outputs are linear HDR, float32 ≥ 0, in the radiance units of DESIGN.md §3
(`H = linearise(LDR_i) / 2**stops_i` where frame i is well exposed). Every call streams
windows through the same functions as `dealthdr infer` (`inference.infer.predict_clip`):
one compiled program per frame size and attention ratio, reused across calls.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np

from data_pipeline import clips
from dealthdr_jax import model_files
from dealthdr_jax.inference import infer
from dealthdr_jax.inference import predictor as predictor_lib
from dealthdr_jax.models import self_ensemble as self_ensemble_lib

# Short names of the shipped models.
SHIPPED = {"2exp": "dealthdr_2exp", "3exp": "dealthdr_3exp"}


class Reconstructor:
  """A loaded DeAltHDR model with the settings it runs with.

  Attributes:
    model, params, config: the Flax module (as it runs: with `load`'s `flow_pair`), its
      parameters and its experiment config.
    description: where the weights came from (and a `flow_pair` override, if any).
    ratio: default FGMA attention ratio (0 = pure flow, 1 = attention everywhere).
    tile, overlap: default tiling (tile side in pixels, or None for whole frames).
    self_ensemble: mirrored copies averaged per frame (1, 2 or 4; N× the compute).
    verbose: print compilation messages to stderr.
  """

  def __init__(self, loaded: model_files.LoadedModel, *, ratio: float | None = None,
               tile: int | None = None, overlap: int = 64, self_ensemble: int = 1,
               flow_pair: str | None = None, verbose: bool = False):
    if self_ensemble not in self_ensemble_lib.SIZES:
      raise ValueError(f"self_ensemble must be one of {self_ensemble_lib.SIZES}, got "
                       f"{self_ensemble!r}")
    loaded = model_files.with_flow_pair(loaded, flow_pair)
    self._loaded = loaded
    self.model, self.params, self.config, self.description = loaded
    self.ratio = float(self.config.attn_ratio if ratio is None else ratio)
    self.tile = tile
    self.overlap = overlap
    self.self_ensemble = self_ensemble
    self.verbose = verbose
    self._predictors: dict[tuple, tuple] = {}

  @property
  def radius(self) -> int:
    """Output t reads frames t-radius..t+radius (ends: `clips.window_indices`)."""
    return self.model.radius

  def __repr__(self) -> str:
    return (f"Reconstructor({self.description}, radius {self.radius}, ratio {self.ratio:g}, "
            f"tile {self.tile}, self-ensemble {self.self_ensemble})")

  def _predictor(self, clip: clips.Clip, ratio, tile, overlap) -> tuple:
    """(predictor, radius, description) for `clip`: one predictor (and so one set of
    compiled programs) per setting, kept for reuse across calls."""
    ratio = self.ratio if ratio is None else float(ratio)
    tile = self.tile if tile is None else tile
    overlap = self.overlap if overlap is None else overlap
    key = (ratio, tile, overlap, clip.response)
    if key not in self._predictors:
      self._predictors[key] = infer.make_predictor(
          "dealthdr", clip, loaded=self._loaded, attn_ratio=ratio, tile=tile,
          overlap=overlap, self_ensemble=self.self_ensemble, verbose=self.verbose)
    return self._predictors[key]

  def stream(self, source: Sequence[np.ndarray] | str | os.PathLike,
             stops: str | Sequence[float] | None = None, *, ratio: float | None = None,
             tile: int | None = None, overlap: int | None = None,
             response: str | None = None, tone_calibration: str | float = "auto"
             ) -> Iterator[np.ndarray]:
    """HDR frames in order, one at a time; memory does not grow with the clip's length.

    Args:
      source: frames [T, H, W, 3] (an array, or a sequence of [H, W, 3] arrays: uint8,
        uint16 or float in [0, 1]), or a clip folder (DESIGN.md §7) or video file.
      stops: exposures in stops, one per frame or a repeating pattern such as (0, 3) or
        "0,3"; a file path also works for a folder or video. Needed for arrays and videos;
        a clip folder's exposures.txt is used when omitted.
      ratio, tile, overlap: override the defaults of `load` for this call.
      response: the camera response ("gamma2.2", "srgb", "linear"); default: the clip's
        meta.json for folders, else gamma2.2.
      tone_calibration: "auto" (undo the contrast S-curve measured from the exposures),
        "off", or the contrast to undo (`data_pipeline.tone_calibration`).
    Yields:
      [H, W, 3] float32 linear HDR (§3 units), for t = 0 .. T-1.
    """
    clip = self._open(source, stops, response, tone_calibration)
    try:
      predictor, radius, _ = self._predictor(clip, ratio, tile, overlap)
      for _, hdr in infer.predict_clip(predictor, clip, radius):
        yield hdr
    finally:
      clip.close()

  def __call__(self, frames: Sequence[np.ndarray] | str | os.PathLike,
               stops: str | Sequence[float] | None = None, **kwargs) -> np.ndarray:
    """All HDR frames at once: [T, H, W, 3] float32. Arguments as `stream`."""
    return np.stack(list(self.stream(frames, stops, **kwargs)))

  def reconstruct(self, input: str | os.PathLike, output: str | os.PathLike, *,
                  exposures: str | None = None, response: str | None = None,
                  ratio: float | None = None, tile: int | None = None,
                  overlap: int | None = None, tone_calibration: str | float = "auto",
                  overwrite: bool = False, resume: bool = False,
                  frames: str | Sequence[int] | None = None, preview: bool = True,
                  progress: bool = False, hdr_video: str | os.PathLike | None = None,
                  hdr_format: str = "pq", peak_nits: float = 1000.0) -> dict:
    """Writes `hdr/<frame>.exr`, `preview.mp4` and `run.json` for a clip folder or video,
    exactly as `dealthdr infer` does (the folder appears only when complete; `resume`
    continues a stopped run from the frames it finished, as `infer --resume`; `frames`
    "START:STOP" writes only those, as `infer --frames`); with
    `hdr_video` also a 10-bit HEVC HDR video ("pq" = HDR10 or "hlg", for a display of
    `peak_nits` cd/m²; see `dealthdr_jax.inference.hdr_video`).

    Returns:
      the run summary saved as run.json.
    """
    return infer.run_inference(
        str(input), str(output), exposures=exposures, response=response,
        tile=self.tile if tile is None else tile, overwrite=overwrite, resume=resume,
        frames=frames, preview=preview,
        progress=progress or self.verbose,
        hdr_video=None if hdr_video is None else os.fspath(hdr_video), hdr_format=hdr_format,
        peak_nits=peak_nits, tone_calibration=tone_calibration,
        predictor_for=lambda clip: self._predictor(clip, ratio, tile, overlap))

  @staticmethod
  def _open(source, stops, response, tone_calibration) -> clips.Clip:
    if isinstance(source, (str, os.PathLike)):
      if stops is not None and not isinstance(stops, (str, os.PathLike)):
        stops = ",".join(str(float(s)) for s in stops)
      return clips.open_clip(source, stops, response, tone_calibration)
    if stops is None:
      raise ValueError("frames given as arrays need stops: one exposure (in stops) per "
                       "frame, or a repeating pattern such as (0, 3)")
    return clips.open_arrays(source, stops, response or "gamma2.2", tone_calibration)


def load(model: str | os.PathLike = "2exp", *, ratio: float | None = None,
         tile: int | None = None, overlap: int = 64, self_ensemble: int = 1,
         flow_pair: str | None = None, verbose: bool = False) -> Reconstructor:
  """Loads a model for reconstruction.

  Args:
    model: "2exp" or "3exp" (the shipped models), a params-only model folder (e.g. from
      `dealthdr export`, or `<workdir>/export`), or a training workdir (its best export).
    ratio: default FGMA attention ratio (default: the model config's `attn_ratio`).
    tile, overlap: default tiling for frames too large for memory (tile side in pixels).
    self_ensemble: average each frame over 1 (off), 2 or 4 mirrored copies of its window
      (N× the compute; README, "Self-ensemble").
    flow_pair: run the model with its `flow_pair` switch set to "off", "select" or "all"
      (default: as the model was saved). No parameters are involved: for long frames the
      flow may come from pairs of shorter neighbours of one exposure (README, model
      paragraph; `dealthdr infer --flow-pair`).
    verbose: print what is being compiled (to stderr).
  Raises:
    FileNotFoundError: no such shipped model or folder.
    ValueError: an unknown `self_ensemble` or `flow_pair`.
  """
  name = os.fspath(model)
  checkpoint = model_files.shipped_checkpoint(SHIPPED[name]) if name in SHIPPED else name
  return Reconstructor(model_files.load_model(checkpoint), ratio=ratio, tile=tile,
                       overlap=overlap, self_ensemble=self_ensemble, flow_pair=flow_pair,
                       verbose=verbose)
