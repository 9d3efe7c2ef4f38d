"""Trains and evaluates the ablations on one fixed synthetic test set → a Markdown table.

  python tools/run_ablations.py --out out/ablations --size small --steps 2000
  python tools/run_ablations.py --out /tmp/abl --size tiny --steps 4 --only full,no_fgma  # smoke

Every entry is trained with `dealthdr train`'s own `train_and_evaluate` (same seed, steps
and data), then run through `dealthdr infer` on the same rendered test clips and scored
with `dealthdr eval`'s metrics; FLOPs and ms/frame come from `dealthdr bench` at the test
clip size. The full model is evaluated at every ratio of the sweep (one model serves every
ratio); each ablation at its config's inference ratio; both baselines run on the same clips
for reference. Runs resume from their workdirs and predictions are cached.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from data_pipeline import synth
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import scoring
from dealthdr_jax.inference import bench
from dealthdr_jax.training import train

RATIO_SWEEP = (0.0, 0.1, 0.25, 0.5, 1.0)
ENTRIES = {
    "full": "configs/dealthdr_2exp.py",
    "no_fgma": "configs/ablations/no_fgma.py",
    "no_flow_guidance": "configs/ablations/no_flow_guidance.py",
    "single_encoder": "configs/ablations/single_encoder.py",
    "radius2": "configs/ablations/radius2.py",
}


def baseline_row(method: str, clips, out: pathlib.Path) -> dict:
  row = {"entry": f"baseline: {method}", "ratio": None, "steps": 0,
         **scoring.score(out / "pred" / method, clips, method=method),
         "gflops": None, "ms_per_frame": None}
  print(json.dumps(row), flush=True)
  return row


def run(out: pathlib.Path, size: str, steps: int, overrides: list[str], only: list[str],
        test_clips: int, test_frames: int, test_size: tuple[int, int], seed: int) -> list[dict]:
  out.mkdir(parents=True, exist_ok=True)
  clips = sorted((out / "testset").glob("clip_*"))
  if len(clips) != test_clips:
    clips = synth.write_clips(out / "testset", num_clips=test_clips, num_frames=test_frames,
                              size=test_size, pattern="2exp", seed=seed, overwrite=True)
  rows = [baseline_row(method, clips, out) for method in ("reference_only", "dis_flow")]
  for name in only:
    config = config_loading.load_config(f"{ENTRIES[name]}:size={size}")
    config_loading.apply_overrides(config, [f"total_steps={steps}"] + overrides)
    workdir = out / "runs" / name
    summary = train.train_and_evaluate(config, workdir)
    ratios = RATIO_SWEEP if name == "full" else (float(config.attn_ratio),)
    model, params, _, _ = model_files.load_model(str(workdir / "export"))
    cost = bench.benchmark(model, params, *test_size, ratios, iters=3)
    for ratio in ratios:
      mean = scoring.score(out / "pred" / f"{name}_r{ratio:g}", clips,
                   checkpoint=str(workdir / "export"), attn_ratio=ratio)
      c = cost[f"{ratio:g}"]
      rows.append({"entry": name, "ratio": ratio, "steps": summary["step"], **mean,
                   "gflops": c["gflops"], "ms_per_frame": c["ms_per_frame"]})
      print(json.dumps(rows[-1]), flush=True)
  return rows


def markdown(rows: list[dict], test_size) -> str:
  return scoring.markdown(rows, [
      ("entry", "entry", "s"), ("ratio", "ratio", "g"), ("steps", "steps", "d"),
      ("PSNR-T", "psnr_t", ".2f"), ("PSNR-L", "psnr_l", ".2f"), ("SSIM-T", "ssim_t", ".4f"),
      (f"GFLOPs ({test_size[0]}×{test_size[1]})", "gflops", ".2f"),
      ("ms/frame (CPU)", "ms_per_frame", ".0f")])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--size", default="small", choices=("tiny", "small", "base"))
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--only", default=",".join(ENTRIES), help="comma-separated entries")
  parser.add_argument("--test-clips", type=int, default=4)
  parser.add_argument("--test-frames", type=int, default=6)
  parser.add_argument("--test-size", type=bench.parse_size, default=(128, 128))
  parser.add_argument("--seed", type=int, default=2024)
  args, overrides = parser.parse_known_args(argv)
  unknown = [o for o in overrides if not o.startswith("--config.")]
  if unknown:
    parser.error(f"unrecognised arguments: {unknown}")
  only = [o for o in args.only.split(",") if o]
  bad = [o for o in only if o not in ENTRIES]
  if bad:
    parser.error(f"unknown entries {bad}; known: {list(ENTRIES)}")
  out = pathlib.Path(args.out)
  rows = run(out, args.size, args.steps, overrides, only, args.test_clips, args.test_frames,
             args.test_size, args.seed)
  table = markdown(rows, args.test_size)
  (out / "ablations.md").write_text(table)
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
