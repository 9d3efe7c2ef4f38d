"""Scoring methods on fixed test clips: the shared harness of the results and ablation tables.

A *method* is anything `dealthdr infer` runs (`method=` a baseline name or "dealthdr" with a
checkpoint/config and ratio). Each is run once per clip with `infer.run_inference` (its
predictions are cached under a folder, so an interrupted table resumes) and scored with
`evaluate.evaluate_folders` against the clip's `gt/`; the table reports the mean over clips
of each clip's mean over frames, and, when the `perceptual` extra is installed, the mean
ColorVideoVDP JOD of the clips (`evaluation.perceptual`).
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Sequence

import numpy as np

from dealthdr_jax import model_files
from dealthdr_jax.evaluation import evaluate
from dealthdr_jax.evaluation import perceptual as perceptual_lib
from dealthdr_jax.inference import infer

METRICS = ("psnr_t", "psnr_l", "ssim_t", "dark_chroma", "psnr_t_rec")


def score(pred_root: pathlib.Path, clips: Sequence[pathlib.Path], *,
          perceptual: bool | None = None, per_clip: bool = False, **infer_kwargs) -> dict:
  """Mean PSNR-T / PSNR-L / SSIM-T (and JOD) over `clips` of one method.

  Args:
    pred_root: where the predictions go (`pred_root/<clip name>/`); a clip whose `run.json`
      exists there is not run again, unless `pred_root` was filled by another method or
      another model (`method.json` records the arguments and the model's fingerprint) or
      that prediction was made from another clip of the same name (`run.json`'s input).
    clips: clip folders with `gt/`.
    perceptual: also the mean ColorVideoVDP JOD ("jod"); default: when the extra is
      installed.
    per_clip: also each clip's scores, under "per_clip" ({clip name: {metric: value}}).
    **infer_kwargs: `infer.run_inference` arguments (method, checkpoint, attn_ratio, ...).
  """
  if perceptual is None:
    perceptual = perceptual_lib.available()
  pred_root = pathlib.Path(pred_root)
  # How the clips are read is part of the method (predictions cached before tone
  # calibration existed were read without it, and are run again).
  key = {"tone_calibration": "auto", **{k: v for k, v in sorted(infer_kwargs.items())}}
  if infer_kwargs.get("checkpoint"):
    key["fingerprint"] = model_files.fingerprint(infer_kwargs["checkpoint"])
    if infer_kwargs.get("attn_ratio") is None:  # The model's default ratio then decides.
      key["attn_ratio"] = model_files.load_params(
          model_files.resolve_checkpoint(infer_kwargs["checkpoint"]))[1].attn_ratio
  key = json.loads(json.dumps(key, default=str))
  key_file = pred_root / "method.json"
  stale = key_file.exists() and json.loads(key_file.read_text()) != key
  if not key_file.exists() or stale:
    pred_root.mkdir(parents=True, exist_ok=True)
    for old in pred_root.glob("*/run.json"):
      old.unlink()  # Predictions of another method or model: run again.
    key_file.write_text(json.dumps(key, indent=1))
  scores = []
  for clip in clips:
    pred = pred_root / clip.name
    if not _predicted_from(pred, clip):
      infer.run_inference(str(clip), str(pred), preview=False, progress=False, overwrite=True,
                          **infer_kwargs)
    scores.append(evaluate.evaluate_folders(pred, clip, perceptual=perceptual)["mean"])
  names = METRICS + (("jod",) if perceptual else ())
  means = {k: _mean([s.get(k) for s in scores]) for k in names}
  if per_clip:
    means["per_clip"] = {clip.name: {k: _mean([s.get(k)]) for k in names}
                         for clip, s in zip(clips, scores)}
  return means


def _predicted_from(pred: pathlib.Path, clip: pathlib.Path) -> bool:
  """Whether `pred` holds a finished prediction of this very clip (not one of the same name
  from another test set)."""
  run = pred / "run.json"
  if not run.exists():
    return False
  given = json.loads(run.read_text()).get("input")
  return given is not None and pathlib.Path(given).resolve() == pathlib.Path(clip).resolve()


def _mean(values) -> float | None:
  """Mean of the values that are not None (None if none is)."""
  values = [float(v) for v in values if v is not None]
  return float(np.mean(values)) if values else None


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
  """A Markdown table: `columns` are (header, row key, format spec); None prints "–"."""
  lines = ["| " + " | ".join(h for h, _, _ in columns) + " |",
           "|" + "---|" * len(columns)]
  for row in rows:
    cells = []
    for _, key, spec in columns:
      value = row.get(key)
      cells.append("–" if value is None else format(value, spec))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
