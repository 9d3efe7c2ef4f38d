"""`dealthdr benchmark`: the published real-video benchmarks, read in their own layouts.

  dealthdr benchmark --dataset deephdrvideo --data-dir D [--checkpoint P] [--out R.json]

Data sets (never downloaded here; the user points at the unpacked release):
  deephdrvideo  Chen et al., ICCV 2021 (`DeepHDRVideo`): 16-bit TIFF frames,
                `Exposures.txt`, `img_hdr_list.txt`, Radiance `.hdr` GT; 2- and 3-exposure
                releases (layout: `data_pipeline.tfds_builders`, layout 2).
  realhdrv      Shu et al., CVPR 2024 (`Real-HDRV`): `Input_0` short / `Input_1` long
                streams and per-frame `GT/`; alternating clips are formed in both phases
                (`<scene>@long`, `<scene>@short`) unless `--phases` says otherwise (layout 3).

Every method (the model, and the baselines `reference_only` and `dis_flow`) runs on every
frame that has GT, with its window of neighbours (DESIGN.md §3, filled at the clip's
ends as `clips.window_indices` does), through the same predictors as `dealthdr infer`.
Metrics follow the papers' protocol (`evaluation.metrics`: normalised by the GT maximum;
PSNR-T and SSIM-T after the μ-law tone map, PSNR-L linear). A scene's score is the mean
over its GT frames; a table row is the mean over scenes, per exposure count (2- and
3-exposure scenes separately, as papers report them). The model is the shipped one that fits each scene's exposures unless
`--checkpoint`/`--config` says otherwise.

Each scene also reports `gt_over_pred`, the median ratio of GT to the reference-only
prediction on well-exposed pixels: 1 when the data set's GT is in DESIGN.md §3 units. A
data set whose GT has another scale is still scored fairly by the protocol (both images are
divided by the GT maximum) only if predictions share that scale, so a ratio far from 1 is
reported as a warning.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

from data_pipeline import clips
from data_pipeline import hdr_io
from data_pipeline import response as response_lib
from data_pipeline import tfds_builders
from dealthdr_jax.evaluation import metrics
from dealthdr_jax.evaluation import perceptual as perceptual_lib
from dealthdr_jax.inference import infer

DATASETS = {"deephdrvideo": "DeepHDRVideo (Chen et al. 2021)",
            "realhdrv": "Real-HDRV (Shu et al. 2024)"}
METHODS = ("dealthdr", "reference_only", "dis_flow")


def list_scenes(dataset: str, data_dir: str | pathlib.Path,
                phases: tuple[str, ...] = ("long", "short")) -> list[tfds_builders.Scene]:
  """The data set's scenes in its own layout, checked (no pixels decoded)."""
  if dataset == "deephdrvideo":
    scenes = tfds_builders.deephdrvideo_scenes(data_dir)
  elif dataset == "realhdrv":
    scenes = tfds_builders.realhdrv_scenes(data_dir, phases=phases)
  else:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(DATASETS)}")
  if not scenes:
    raise ValueError(f"{data_dir}: no {DATASETS[dataset]} scenes found (see `dealthdr "
                     "benchmark --help` for the expected layout)")
  return scenes


def exposure_count(stops: np.ndarray) -> int:
  return len(np.unique(np.round(np.asarray(stops, np.float64), 3)))


def _gt_over_pred(pred: np.ndarray, gt: np.ndarray) -> float:
  """Median of GT / prediction luminance where both are well above black."""
  p, g = pred.mean(-1), gt.mean(-1)
  ok = (p > np.percentile(p, 10)) & (g > 0) & (p > 0)
  return float(np.median(g[ok] / p[ok])) if ok.any() else float("nan")


def run_benchmark(dataset: str, data_dir: str | pathlib.Path, *,
                  methods: tuple[str, ...] = METHODS, checkpoint: str | None = None,
                  config: str | None = None, attn_ratio: float | None = None,
                  tile: int | None = None, overlap: int = 64,
                  phases: tuple[str, ...] = ("long", "short"), max_scenes: int | None = None,
                  perceptual: bool | None = None, fps: float = 25.0,
                  progress: bool = True) -> dict:
  """Scores `methods` on a data set's scenes that have GT; returns the report (see module).

  `perceptual` (default: when the extra is installed) adds the ColorVideoVDP JOD of each
  scene's GT frames as a clip at `fps` (`evaluation.perceptual`).

  Raises:
    FileNotFoundError / ValueError: missing folder, bad layout, a GT of the wrong size
      (each names the file).
  """
  if perceptual is None:
    perceptual = perceptual_lib.available()
  names = metrics.METRIC_NAMES + (("jod",) if perceptual else ())
  bad = [m for m in methods if m not in infer.METHODS]
  if bad or not methods:
    raise ValueError(f"unknown methods {bad}; expected some of {infer.METHODS}")
  scenes = list_scenes(dataset, data_dir, phases)
  skipped = [s.name for s in scenes if not any(p is not None for p in s.gt_paths)]
  scenes = [s for s in scenes if s.name not in skipped][:max_scenes]
  if not scenes:
    raise ValueError(f"{data_dir}: none of the {len(skipped)} scenes has ground truth")
  predictors: dict[tuple, tuple] = {}
  rows, start = [], time.perf_counter()
  gt_frames = sum(sum(p is not None for p in s.gt_paths) for s in scenes)
  done = 0
  for k, scene in enumerate(scenes):
    clip = clips.open_files(scene.frame_paths, scene.stops, response=scene.response,
                            source=pathlib.Path(data_dir) / scene.name.split("@")[0])
    count = exposure_count(clip.stops)
    gt_index = [i for i, p in enumerate(scene.gt_paths) if p is not None]
    row = {"scene": scene.name, "exposures": count, "gt_frames": len(gt_index),
           "size": list(clip.size), "methods": {}}
    for method in methods:
      key = (method, count, clip.response, clip.size if method == "dealthdr" else None)
      if key not in predictors:
        predictors[key] = infer.make_predictor(
            method, clip, checkpoint=checkpoint, config=config, attn_ratio=attn_ratio,
            tile=tile, overlap=overlap, verbose=progress)
      predictor, radius, description = predictors[key]
      scores, ratios, pred_paths = [], [], []
      # With the JOD, predictions go to a temporary folder one at a time (ColorVideoVDP
      # reads them back as a clip), so memory does not grow with the scene's length.
      with (tempfile.TemporaryDirectory(prefix="dealthdr-benchmark-") if perceptual
            else contextlib.nullcontext()) as folder:
        for t in gt_index:
          _, frames, stops = next(clips.iter_windows(clip, radius, t, t + 1))
          pred = predictor.predict(frames, stops, offsets=clips.window_offsets(
              len(clip), t, radius, clip.exposure_cycle))
          gt = hdr_io.read_hdr(scene.gt_paths[t])
          if gt.shape[:2] != clip.size:
            raise ValueError(f"{scene.gt_paths[t]}: ground truth is {gt.shape[0]}x"
                             f"{gt.shape[1]}, but the frames of {scene.name} are "
                             f"{clip.size[0]}x{clip.size[1]}")
          scores.append(metrics.frame_metrics(pred, gt))
          if method == "reference_only":
            ratios.append(_gt_over_pred(pred, gt))
          if perceptual:
            pred_paths.append(pathlib.Path(folder) / f"{t:06d}.exr")
            hdr_io.write_exr(pred_paths[-1], pred)
        row["methods"][method] = {
            "model": description,
            **{m: float(np.mean([s[m] for s in scores])) for m in metrics.METRIC_NAMES}}
        if perceptual:
          row["methods"][method]["jod"] = perceptual_lib.color_video_vdp(
              pred_paths, [scene.gt_paths[t] for t in gt_index], fps=fps)["jod"]
      if ratios:
        row["gt_over_pred"] = float(np.median(ratios))
    rows.append(row)
    done += len(gt_index)
    if progress:
      elapsed = time.perf_counter() - start
      eta = elapsed / done * (gt_frames - done)
      print(f"benchmark: scene {k + 1}/{len(scenes)} {scene.name} "
            + "  ".join(f"{m} {row['methods'][m]['psnr_t']:.2f}" for m in methods)
            + f"  (ETA {eta:.0f} s)", file=sys.stderr, flush=True)
  tables = {}
  for count in sorted({r["exposures"] for r in rows}):
    group = [r for r in rows if r["exposures"] == count]
    tables[f"{count}exp"] = {
        "scenes": len(group), "gt_frames": sum(r["gt_frames"] for r in group),
        "methods": {m: {"model": group[0]["methods"][m]["model"],
                        **{k: float(np.mean([r["methods"][m][k] for r in group]))
                           for k in names}} for m in methods}}
  report = {"dataset": dataset, "name": DATASETS[dataset], "data_dir": str(data_dir),
            "protocol": f"metrics.frame_metrics: / GT max, mu-law mu={response_lib.MU:g}; "
                        "scene = mean over GT frames, table = mean over scenes",
            "tables": tables, "scenes": rows, "skipped_without_gt": skipped,
            "wall_s": time.perf_counter() - start}
  far = [r["scene"] for r in rows
         if "gt_over_pred" in r and not 1 / 1.5 < r["gt_over_pred"] < 1.5]
  if far:
    report["warning"] = (f"{len(far)} scene(s) (e.g. {far[0]}) have GT on another scale than "
                         "DESIGN.md §3 units (gt_over_pred far from 1): metrics divide both by "
                         "the GT maximum, so predictions are compared at the wrong exposure")
  return report


def format_tables(report: dict) -> str:
  lines = []
  for name, table in report["tables"].items():
    lines.append(f"\n{report['name']}, {name[:-3]} exposures: {table['scenes']} scenes, "
                 f"{table['gt_frames']} GT frames")
    jod = any("jod" in m for m in table["methods"].values())
    lines.append(f"{'method':16s} {'PSNR-T':>7} {'PSNR-L':>7} {'SSIM-T':>7}"
                 + (f" {'JOD':>6}" if jod else "") + "  model")
    for method, m in table["methods"].items():
      lines.append(f"{method:16s} {m['psnr_t']:7.2f} {m['psnr_l']:7.2f} {m['ssim_t']:7.4f}"
                   + (f" {m['jod']:6.2f}" if jod else "") + f"  {m['model']}")
  if "warning" in report:
    lines.append(f"\nwarning: {report['warning']}")
  return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--dataset", required=True, choices=tuple(DATASETS))
  parser.add_argument("--data-dir", required=True, help="the unpacked release (its own layout)")
  parser.add_argument("--checkpoint", help="model for every scene (default: the shipped model "
                      "that fits each scene's exposures)")
  parser.add_argument("--config", help="run freshly initialised weights of this config instead")
  parser.add_argument("--methods", default=",".join(METHODS),
                      help=f"comma-separated, from {','.join(infer.METHODS)}")
  parser.add_argument("--attn-ratio", type=float, help="FGMA attention ratio (default: model's)")
  parser.add_argument("--tile", type=int, help="tile side in pixels for large frames")
  parser.add_argument("--overlap", type=int, default=64)
  parser.add_argument("--phases", default="long,short",
                      help="realhdrv: which alternations to form (long: frame 0 is long)")
  parser.add_argument("--max-scenes", type=int, help="only the first N scenes with GT")
  parser.add_argument("--out", help="write the report (tables and per-scene scores) as JSON")
  parser.add_argument("--no-perceptual", action="store_true",
                      help="skip the JOD column even when the perceptual extra is installed")
  parser.add_argument("--fps", type=float, default=25.0, help="frame rate, for the JOD")


def main(args: argparse.Namespace) -> int:
  report = run_benchmark(
      args.dataset, args.data_dir, methods=tuple(args.methods.split(",")),
      checkpoint=args.checkpoint, config=args.config, attn_ratio=args.attn_ratio,
      tile=args.tile, overlap=args.overlap, phases=tuple(args.phases.split(",")),
      max_scenes=args.max_scenes, perceptual=False if args.no_perceptual else None,
      fps=args.fps)
  print(format_tables(report))
  if args.out:
    with hdr_io.atomic_path(args.out) as tmp:
      tmp.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")
  return 0
