"""Optical-flow accuracy against the simulator's ground truth, split by occlusion.

Clips written by `dealthdr synth` carry, for every frame t but the last, the true flow to
frame t+1 (`flow/<name>.npy`) and where that pixel is hidden in frame t+1
(`flow/<name>_occ.png`). Against them this module scores the flow of
  * a DeAltHDR model: its learned flow from reference t to neighbour t+1 (`aux["flow"]`,
    computed on the model's exposure-matched inputs), and which pixels FGMA selects for
    attention at a given ratio;
  * DIS on exposure-matched images (`inference.baselines.dis_flow`, the DIS-flow merge's
    alignment).
Reported (pixel-weighted over all scored frames of all clips):
  epe_visible, epe_occluded   mean end-point error (pixels) on visible / occluded pixels;
  and for the model at ratio > 0, with FGMA's finest selection upsampled to pixels:
  selected_share              share of pixels selected (≈ the ratio);
  occluded_captured           share of GT-occluded pixels that are selected;
  bad_flow_captured           share of pixels whose learned flow is off by > `bad_px` that
                              are selected (the failures FGMA exists to repair).
A selection that ignored flow failures would capture about `selected_share` of each.
"""
from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np

from data_pipeline import clips as clips_lib
from data_pipeline import hdr_io
from dealthdr_jax.inference import baselines


@dataclasses.dataclass
class FlowScores:
  """Running pixel sums; `summary()` gives the means."""
  visible_error: float = 0.0
  visible: int = 0
  occluded_error: float = 0.0
  occluded: int = 0
  pixels: int = 0
  selected: int = 0
  occluded_selected: int = 0
  bad: int = 0
  bad_selected: int = 0

  def add(self, flow: np.ndarray, gt: np.ndarray, occluded: np.ndarray,
          selected: np.ndarray | None = None, bad_px: float = 3.0) -> None:
    """flow, gt: [H, W, 2]; occluded, selected: [H, W] bool."""
    err = np.linalg.norm(flow.astype(np.float64) - gt, axis=-1)
    self.visible_error += float(err[~occluded].sum())
    self.visible += int((~occluded).sum())
    self.occluded_error += float(err[occluded].sum())
    self.occluded += int(occluded.sum())
    self.pixels += err.size
    if selected is not None:
      bad = err > bad_px
      self.selected += int(selected.sum())
      self.occluded_selected += int((selected & occluded).sum())
      self.bad += int(bad.sum())
      self.bad_selected += int((selected & bad).sum())

  def summary(self) -> dict[str, float | None]:
    share = lambda a, b: a / b if b else None
    out = {"epe_visible": share(self.visible_error, self.visible),
           "epe_occluded": share(self.occluded_error, self.occluded),
           "occluded_pixels": share(self.occluded, self.pixels)}
    if self.selected:
      out.update(selected_share=share(self.selected, self.pixels),
                 occluded_captured=share(self.occluded_selected, self.occluded),
                 bad_flow_captured=share(self.bad_selected, self.bad),
                 bad_flow_pixels=share(self.bad, self.pixels))
    return out


def ground_truth(clip: clips_lib.Clip, t: int) -> tuple[np.ndarray, np.ndarray] | None:
  """(flow [H, W, 2] from frame t to t+1, occluded [H, W] bool), or None without GT."""
  folder = pathlib.Path(clip.source) / "flow"
  name = clip.names[t]
  path, occ_path = folder / f"{name}.npy", folder / f"{name}_occ.png"
  if not path.is_file() or not occ_path.is_file():
    return None
  flow = np.load(path)
  occluded = hdr_io.read_ldr(occ_path)[0].mean(axis=-1) > 0.5
  if flow.shape != clip.size + (2,) or occluded.shape != clip.size:
    raise clips_lib.ClipError(f"{path}: flow {flow.shape} / mask {occluded.shape} do not fit "
                              f"the clip's {clip.size[0]}x{clip.size[1]} frames")
  return flow, occluded


def _scored_frames(clip: clips_lib.Clip, radius: int):
  """(t, window frames, stops, gt flow, occluded) for each t with GT flow to t+1."""
  for t, frames, stops in clips_lib.iter_windows(clip, radius, stop=len(clip) - 1):
    gt = ground_truth(clip, t)
    if gt is not None:
      yield t, frames, stops, gt[0], gt[1]


def _upsample(mask: np.ndarray, size: tuple[int, int], pad_multiple: int) -> np.ndarray:
  """[h, w] token mask of the padded frame → [H, W] bool pixel mask (nearest)."""
  h, w = size
  fy = -(-h // pad_multiple) * pad_multiple // mask.shape[0]
  fx = -(-w // pad_multiple) * pad_multiple // mask.shape[1]
  return np.repeat(np.repeat(mask > 0.5, fy, axis=0), fx, axis=1)[:h, :w]


def model_flow_scores(model, params, clip_dirs, ratio: float, bad_px: float = 3.0,
                      response: str | None = None) -> dict:
  """Learned flow (reference → next frame) and FGMA's selection on synth clips.

  Args:
    model, params: a DeAltHDR model (`model_files.load_model`).
    clip_dirs: clip folders with `flow/`.
    ratio: FGMA attention ratio (the flow itself does not depend on it; the selection does).
    bad_px: a learned flow off by more than this many pixels counts as a failure.
    response: the response the model is told (default: each clip's meta.json).
  """
  r = model.radius
  programs = {}  # One compiled program per camera response met.
  scores = FlowScores()
  for clip_dir in clip_dirs:
    with clips_lib.open_clip(clip_dir, response=response) as clip:
      if clip.response not in programs:
        m = model.clone(response=clip.response)
        # Neighbours are ordered t-r..t-1, t+1..t+r: frame t+1 is neighbour r.
        programs[clip.response] = jax.jit(
            lambda p, f, s, m=m: _flow_and_selection(m, p, f, s, ratio, r))
      run = programs[clip.response]
      for _, frames, stops, gt, occluded in _scored_frames(clip, r):
        flow, mask = jax.device_get(run(params, frames[None], stops[None]))
        selected = (None if mask is None else
                    _upsample(np.asarray(mask), clip.size, model.pad_multiple))
        scores.add(np.asarray(flow), gt, occluded, selected, bad_px)
  return scores.summary()


def _flow_and_selection(model, params, frames, stops, ratio, r):
  _, aux = model.apply({"params": params}, frames, stops, ratio=ratio)
  levels = [lvl for lvl in model.fgma_levels if lvl in aux["masks"]]
  finest = aux["masks"][min(levels)][0, r] if levels and ratio > 0 else None
  return aux["flow"][0, r], finest


def dis_flow_scores(clip_dirs, response: str | None = None) -> dict:
  """DIS on exposure-matched frames (the DIS-flow merge's alignment), frame t → t+1."""
  scores = FlowScores()
  for clip_dir in clip_dirs:
    with clips_lib.open_clip(clip_dir, response=response) as clip:
      for t in range(len(clip) - 1):
        gt = ground_truth(clip, t)
        if gt is None:
          continue
        flow = baselines.dis_flow(clip.frame(t), float(clip.stops[t]), clip.frame(t + 1),
                                  float(clip.stops[t + 1]), clip.response)
        scores.add(flow, gt[0], gt[1])
  return scores.summary()
