"""Training observability: metric collections, TensorBoard/JSONL writers, progress + ETA.

Only process 0 writes (`MetricWriter(active=False)` elsewhere does nothing). TensorBoard
events come from tensorboardX's `FileWriter` (clu's writers would import TensorFlow;
tensorboardX's own image path needs PIL, so images are PNG-encoded with OpenCV); metric
averaging uses `clu.metrics` collections, merged on device and read only at log steps.
"""
# No `from __future__ import annotations`: clu's Collection reads its field annotations.
import json
import pathlib
import sys
import time
from typing import Mapping

import cv2
import flax.struct
import numpy as np
from clu import metrics as clu_metrics

from data_pipeline import response


def _import_tensorboardx_without_torch():
  """tensorboardX's writer imports PyTorch when it is installed (the `perceptual` extra
  installs it), only to accept torch tensors, which we never pass; that import costs every
  training process about 3 s at start. Hidden during the import unless already loaded (a
  later `import torch` works as usual)."""
  if "torch" in sys.modules:
    import tensorboardX  # pylint: disable=g-import-not-at-top
    return tensorboardX
  sys.modules["torch"] = None  # `import torch` raises ImportError, which it handles.
  try:
    import tensorboardX  # pylint: disable=g-import-not-at-top
  finally:
    del sys.modules["torch"]
  return tensorboardX


tensorboardX = _import_tensorboardx_without_torch()
from tensorboardX import summary as tbx_summary  # noqa: E402  pylint: disable=g-import-not-at-top,g-bad-import-order
from tensorboardX.proto import summary_pb2  # noqa: E402  pylint: disable=g-import-not-at-top,g-bad-import-order


@flax.struct.dataclass
class Stage1Metrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output("loss")
  hdr_loss: clu_metrics.Average.from_output("hdr_loss")
  flow_epe: clu_metrics.Average.from_output("flow_epe")
  flow_weight: clu_metrics.LastValue.from_output("flow_weight")
  psnr_t: clu_metrics.Average.from_output("psnr_t")
  # FGMA's attention vs the ground-truth match (train.stage1_step; 0 when not trained, and
  # at steps of ratio 0, which the logged averages include): the loss, the share of
  # selected tokens whose match is inside their window, and the share of those (visible)
  # where the attention peaks at it.
  attention_match: clu_metrics.Average.from_output("attention_match")
  attention_reach: clu_metrics.Average.from_output("attention_reach")
  attention_hit: clu_metrics.Average.from_output("attention_hit")
  # μ-law L1 between the window's output and its mirrored copy's (`loss.mirror_weight`;
  # 0 when off).
  mirror_consistency: clu_metrics.Average.from_output("mirror_consistency")
  # μ-law L1 from the teacher's self-ensemble (`loss.distill_weight`; 0 when off).
  distill: clu_metrics.Average.from_output("distill")
  grad_norm: clu_metrics.Average.from_output("grad_norm")
  learning_rate: clu_metrics.LastValue.from_output("learning_rate")


@flax.struct.dataclass
class Stage2Metrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output("loss")
  subset_loss: clu_metrics.Average.from_output("subset_loss")
  teacher_loss: clu_metrics.Average.from_output("teacher_loss")
  reexpose_loss: clu_metrics.Average.from_output("reexpose_loss")
  # Re-exposure to the frames the sub-window left out (0 when its weight is 0).
  reexpose_left_out_loss: clu_metrics.Average.from_output("reexpose_left_out_loss")
  # The teacher term on pixels no frame records (0 when its weight is 0).
  teacher_unrecorded_loss: clu_metrics.Average.from_output("teacher_unrecorded_loss")
  # RMS distance of the learned response curve from the declared one (0 without a curve).
  curve_distance: clu_metrics.Average.from_output("curve_distance")
  grad_norm: clu_metrics.Average.from_output("grad_norm")
  learning_rate: clu_metrics.LastValue.from_output("learning_rate")


@flax.struct.dataclass
class FlowMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output("loss")
  epe: clu_metrics.Average.from_output("epe")
  grad_norm: clu_metrics.Average.from_output("grad_norm")
  learning_rate: clu_metrics.LastValue.from_output("learning_rate")


@flax.struct.dataclass
class FlowEvalMetrics(clu_metrics.Collection):
  epe: clu_metrics.Average.from_output("epe")
  pyramid_epe: clu_metrics.Average.from_output("pyramid_epe")


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
  psnr_t: clu_metrics.Average.from_output("psnr_t")
  psnr_l: clu_metrics.Average.from_output("psnr_l")
  hdr_loss: clu_metrics.Average.from_output("hdr_loss")


def tonemap_triplet(ldr: np.ndarray, pred: np.ndarray, gt: np.ndarray | None) -> np.ndarray:
  """[input | output | GT] side by side for viewing, uint8 [H, W·k, 3].

  Args:
    ldr: [H, W, 3] the reference LDR frame (already display-encoded).
    pred, gt: [H, W, 3] linear HDR; both are divided by the GT's (else the output's) max
      and μ-law tone-mapped.
  """
  peak = float(np.max(gt if gt is not None else pred)) or 1.0
  tiles = [np.clip(ldr, 0, 1)] + [response.mu_law(np.clip(x / peak, 0, 1))
                                   for x in (pred, gt) if x is not None]
  return (np.concatenate(tiles, axis=1) * 255.0 + 0.5).astype(np.uint8)


def png_summary(tag: str, image: np.ndarray) -> summary_pb2.Summary:
  """An image summary from uint8 [H, W, 3] RGB."""
  ok, png = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
  if not ok:
    raise ValueError(f"could not PNG-encode image {tag!r} of shape {image.shape}")
  return summary_pb2.Summary(value=[summary_pb2.Summary.Value(
      tag=tag, image=summary_pb2.Summary.Image(
          height=image.shape[0], width=image.shape[1], colorspace=3,
          encoded_image_string=png.tobytes()))])


class MetricWriter:
  """Scalars and images to TensorBoard (tensorboardX) and scalars to `metrics.jsonl`."""

  def __init__(self, workdir: pathlib.Path, active: bool):
    self.active = active
    self._tb = None
    self._jsonl = None
    if active:
      self._tb = tensorboardX.FileWriter(str(workdir / "tensorboard"))
      self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")

  def scalars(self, step: int, values: Mapping[str, float], prefix: str = "") -> None:
    if not self.active:
      return
    for name, value in values.items():
      self._tb.add_summary(tbx_summary.scalar(prefix + name, float(value)), step)
    record = {"step": int(step), **{prefix + k: float(v) for k, v in values.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()

  def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    if not self.active:
      return
    for name, image in images.items():
      self._tb.add_summary(png_summary(name, image), step)

  def flush(self) -> None:
    if self.active:
      self._tb.flush()

  def close(self) -> None:
    if self.active:
      self._tb.close()
      self._jsonl.close()


class Progress:
  """Steps/s, samples/s and ETA between log steps (wall clock less compilation)."""

  def __init__(self, first_step: int, total_steps: int, global_batch: int):
    self.total = total_steps
    self.batch = global_batch
    self._t0 = self._last_t = time.monotonic()
    self._first = self._last_step = first_step

  def update(self, step: int, compile_seconds: float = 0.0) -> dict[str, float]:
    """Rates at `step`; `compile_seconds` (the run's total so far) is not step time."""
    now = time.monotonic() - compile_seconds
    rate = (step - self._last_step) / max(now - self._last_t, 1e-9)
    overall = (step - self._first) / max(now - self._t0, 1e-9)
    self._last_t, self._last_step = now, step
    eta = (self.total - step) / overall if overall > 0 else float("inf")
    return {"steps_per_sec": rate, "samples_per_sec": rate * self.batch, "eta_sec": eta}

  @staticmethod
  def line(step: int, total: int, values: Mapping[str, float], rates: Mapping[str, float]
           ) -> str:
    eta = rates["eta_sec"]
    eta_text = "?" if not np.isfinite(eta) else time.strftime("%H:%M:%S", time.gmtime(eta))
    shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    return (f"[step {step}/{total}] {shown} | {rates['steps_per_sec']:.2f} steps/s "
            f"{rates['samples_per_sec']:.1f} samples/s ETA {eta_text}")


def log(message: str, active: bool = True) -> None:
  if active:
    print(message, file=sys.stderr, flush=True)
