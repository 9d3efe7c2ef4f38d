"""What a model's PSNR-T could still gain where no exposure recorded the scene (validation).

  python tools/unrecorded_headroom.py --sources ../shared/hdr_sources --pattern 2exp

Runs a model (default: the shipped one of `--pattern`, at its ratio and gain bound) on the
validation sets `tools/gain_bound_sweep.py` uses (large and gentle motion, with GT,
never a test set; `--sets large,gentle,cameras` adds its camera-pipeline set) and scores
each window with `evaluation.headroom`: PSNR-T, PSNR-T on the recorded pixels, the share of
the unrecorded pixels (clipped in every nearest frame of the shortest exposure) and of
PSNR-T's MSE that lies in them, and two ground-truth oracles:
the best single factor on the unrecorded pixels of each window (how bright its lights are),
and the ground truth put in them. The gap between a model and the first oracle is what a
better guess at the lights' level could gain; between the oracles, what a guess at their
shape inside the clipped area could. Prints one row per set; `--json F` writes them with
the per-window values. `--max-log-gain`, `--recon-kernel-range` and `--flow-fill-consistency`
run the same weights with another gain bound, blend-filter clamp or flow-fill consistency
scale (all parameter-free).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

import gain_bound_sweep  # pylint: disable=g-import-not-at-top
from dealthdr_jax.evaluation import headroom  # pylint: disable=g-import-not-at-top

COLUMNS = (("PSNR-T", "psnr_t"), ("PSNR-T rec.", "psnr_t_rec"),
           ("unrecorded %", "unrecorded_fraction"), ("their MSE %", "unrecorded_error_share"),
           ("best level", "psnr_t_best_scale"), ("GT filled", "psnr_t_gt_filled"))
PERCENT = ("unrecorded_fraction", "unrecorded_error_share")
# Parameter-free model settings the tool can override: (model field, rule, check, help).
SETTINGS = (("max_log_gain", "> 0", lambda v: v > 0, "gain bound"),
            ("recon_kernel_range", ">= 0", lambda v: v >= 0, "blend-filter clamp, 0 = none"),
            ("flow_fill_consistency", ">= 0", lambda v: v >= 0,
             "round-trip scale of its flow fill in pixels, 0 = off"))


def _flag(key: str) -> str:
  return "--" + key.replace("_", "-")


def score_windows(predict, batches) -> list[dict]:
  """`headroom.headroom` of every window (its reference frame's unrecorded pixels)."""
  rows = []
  for batch in batches:
    pred = np.asarray(predict(batch))
    frames, stops, gt = (np.asarray(batch[k]) for k in ("frames", "stops", "hdr"))
    ref = frames.shape[1] // 2
    for n in range(len(pred)):
      rows.append(headroom.headroom(pred[n], gt[n], headroom.unrecorded(frames[n], stops[n], ref)))
  return rows


def summary(rows: list[dict]) -> dict:
  """Mean of each column over windows (PSNR-T rec. over the windows that have one); the
  median best factor."""
  out = {}
  for _, key in COLUMNS:
    values = [r[key] for r in rows if r[key] is not None]
    out[key] = float(np.mean(values)) if values else None
  out["median_best_scale"] = float(statistics.median(r["best_scale"] for r in rows))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  gain_bound_sweep.add_model_arguments(parser)
  parser.add_argument("--ratio", type=float, default=None, help="default: the model's")
  for key, _, _, help_text in SETTINGS:
    parser.add_argument(_flag(key), type=float, default=None,
                        help=f"run the model with this {help_text} (model.{key}; default: "
                             "its own)")
  gain_bound_sweep.add_set_argument(parser)
  parser.add_argument("--windows", type=int, default=32)
  parser.add_argument("--crop", type=int, default=256)
  parser.add_argument("--json", help="write the rows here")
  args = parser.parse_args(argv)
  for key, rule, valid, _ in SETTINGS:
    value = getattr(args, key)
    if value is not None and not valid(value):
      parser.error(f"{_flag(key)} must be {rule}, got {value}")
  if args.ratio is not None and not 0.0 <= args.ratio <= 1.0:
    parser.error(f"--ratio must be in [0, 1], got {args.ratio}")
  if args.windows < 1:
    parser.error(f"--windows must be >= 1, got {args.windows}")
  names = gain_bound_sweep.parse_sets(parser, args.sets)
  checkpoint, params, model, ratio = gain_bound_sweep.load_model(parser, args)
  if args.flow_fill_consistency and not model.flow_fill:
    parser.error(f"--flow-fill-consistency acts on the flow fill, which {checkpoint} "
                 "does not use (model.flow_fill)")
  model = model.clone(**{key: getattr(args, key) for key, *_ in SETTINGS
                         if getattr(args, key) is not None})
  sets = gain_bound_sweep.validation_sets(args.pattern, args.sources, args.windows, args.crop,
                                          names)
  apply = jax.jit(lambda p, b: model.apply({"params": p}, b["frames"], b["stops"],
                                           ratio=ratio)[0])
  predict = lambda batch: apply(params, batch)
  settings = {key: getattr(model, key) for key, *_ in SETTINGS}
  print(f"{checkpoint}: ratio {ratio:g}, "
        + ", ".join(f"{key} {value:g}" for key, value in settings.items())
        + f"; {args.windows} validation windows of {args.crop}² per set", flush=True)
  print("| set | " + " | ".join(name for name, _ in COLUMNS) + " | median best factor |")
  print("|---" * (len(COLUMNS) + 2) + "|")
  result = {"checkpoint": str(checkpoint), "ratio": ratio, **settings,
            "windows": args.windows, "crop": args.crop, "sets": {}}
  for name, batches in sets.items():
    rows = score_windows(predict, batches)
    mean = summary(rows)
    result["sets"][name] = {"mean": mean, "per_window": rows}
    cells = [("–" if mean[k] is None else
              f"{100 * mean[k]:.1f}" if k in PERCENT else f"{mean[k]:.2f}") for _, k in COLUMNS]
    print(f"| {name} | " + " | ".join(cells) + f" | {mean['median_best_scale']:.2f} |",
          flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
