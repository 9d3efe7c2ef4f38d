"""Scoring methods on fixed test clips: the shared harness of the results and ablation tables.

A *method* is anything `dealthdr infer` runs (`method=` a baseline name or "dealthdr" with a
checkpoint/config and ratio). Each is run once per clip with `infer.run_inference` (its
predictions are cached under a folder, so an interrupted table resumes) and scored with
`evaluate.evaluate_folders` against the clip's `gt/`; the table reports the mean over clips
of each clip's mean over frames.
"""
from __future__ import annotations

import pathlib
from typing import Any, Sequence

import numpy as np

from dealthdr_jax.evaluation import evaluate
from dealthdr_jax.inference import infer

METRICS = ("psnr_t", "psnr_l", "ssim_t")


def score(pred_root: pathlib.Path, clips: Sequence[pathlib.Path], **infer_kwargs) -> dict:
  """Mean PSNR-T / PSNR-L / SSIM-T over `clips` of one method.

  Args:
    pred_root: where the predictions go (`pred_root/<clip name>/`); a clip whose `run.json`
      exists there is not run again.
    clips: clip folders with `gt/`.
    **infer_kwargs: `infer.run_inference` arguments (method, checkpoint, attn_ratio, ...).
  """
  scores = []
  for clip in clips:
    pred = pathlib.Path(pred_root) / clip.name
    if not (pred / "run.json").exists():
      infer.run_inference(str(clip), str(pred), preview=False, progress=False, overwrite=True,
                          **infer_kwargs)
    scores.append(evaluate.evaluate_folders(pred, clip)["mean"])
  return {k: float(np.mean([s[k] for s in scores])) for k in METRICS}


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
