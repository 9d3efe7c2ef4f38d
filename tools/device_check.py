"""One command that answers what an accelerator run must answer (issue 14), in minutes.

  python tools/device_check.py --out device_check.json          # on a GPU / TPU host
  python tools/device_check.py --quick --out /tmp/dc.json      # CPU smoke run, tiny sizes

Measures, in this order (most wanted first), stopping cleanly when `--budget-s` is spent
(what did not run is listed under "skipped"):
  1. inference at ratio 0.25: ms/frame, XLA's per-program memory and GFLOPs, for the
     small and base models at 720p and 1080p, in float32 and bfloat16 compute;
  2. training: the base stage-1 step at two global batch sizes (crop `data.crop` of the
     base preset): steps/s and samples/s (`training.step_benchmark`);
  3. the input pipeline on this host at that crop: samples/s rendered on the fly
     (`--input-workers` processes) and read from array_record shards (rendered here
     first), and each one's ratio to the step's appetite (the larger batch's samples/s);
  4. 4K (2160×3840) tiled inference, the first of `--models`, ratio 0.25, both dtypes;
  5. inference at ratios 0 and 1 (the cost of the attention knob), same grid as 1.
Weights are freshly initialised (cost does not depend on their values). `--quick` shrinks
every size (frames 32×48 / 48×64, 4K → 96×160 in 64² tiles overlapping by 16, crop 32, batch 2 and 4,
tiny shard set), for CI and for checking the tool itself; its figures mean nothing.
Writes the JSON (`--out`) and prints a Markdown table per section.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import jax

from data_pipeline import hdr_io
from data_pipeline import pipeline
from data_pipeline import window_records
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.inference import bench
from dealthdr_jax.training import input_pipeline
from dealthdr_jax.training import step_benchmark

FULL = {"resolutions": {"720p": (720, 1280), "1080p": (1080, 1920)}, "uhd": (2160, 3840),
        "tile": 1024, "overlap": 64, "train_batches": (8, 16), "crop": None, "iters": 5, "train_steps": 5,
        "records": 64, "input_batches": 6, "read_batches": 40}
QUICK = {"resolutions": {"720p": (32, 48), "1080p": (48, 64)}, "uhd": (96, 160),
         "tile": 64, "overlap": 16, "train_batches": (2, 4), "crop": 32, "iters": 2, "train_steps": 2,
         "records": 4, "input_batches": 1, "read_batches": 4}
# HDRFlow (CVPR 2024) reports these per-frame times at 720p and 1080p (REFERENCES.md).
HDRFLOW_MS = {"720p": 25.0, "1080p": 76.0}


class Budget:
  """Wall-clock budget: `allows()` is False once `seconds` have passed since start."""

  def __init__(self, seconds: float):
    self.start, self.seconds = time.perf_counter(), float(seconds)

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def allows(self) -> bool:
    return self.elapsed() < self.seconds


def _model(size: str, dtype: str):
  loaded = model_files.load_model(config=f"dealthdr_2exp:size={size}")
  model = loaded.model if dtype == loaded.model.dtype else loaded.model.clone(dtype=dtype)
  return model, loaded.params


def inference_rows(plan, models, dtypes, ratios, budget, skipped, log):
  rows = []
  cache = {}
  for ratio in ratios:
    for size in models:
      for dtype in dtypes:
        for label, (h, w) in plan["resolutions"].items():
          what = f"inference {size} {dtype} {label} ratio {ratio:g}"
          if not budget.allows():
            skipped.append(what)
            continue
          if (size, dtype) not in cache:
            cache[(size, dtype)] = _model(size, dtype)
          model, params = cache[(size, dtype)]
          r = bench.benchmark(model, params, h, w, [ratio], iters=plan["iters"])[f"{ratio:g}"]
          rows.append({"model": size, "dtype": dtype, "resolution": label, "size": [h, w],
                       "ratio": ratio, "ms_per_frame": r["ms_per_frame"],
                       "gflops": r["gflops"], "xla_mem_mb": r["xla_mem_mb"],
                       "allocator_peak_mb": (r["peak_mem_mb"]
                                             if r["peak_mem_source"] == "allocator_peak"
                                             else None),
                       "compile_s": r["compile_s"]})
          log(what, rows[-1])
  return rows


def tiled_rows(plan, size, dtypes, budget, skipped, log):
  rows = []
  h, w = plan["uhd"]
  for dtype in dtypes:
    what = f"4K tiled {size} {dtype}"
    if not budget.allows():
      skipped.append(what)
      continue
    model, params = _model(size, dtype)
    r = bench.benchmark_tiled(model, params, h, w, [0.25], plan["tile"], plan["overlap"],
                              iters=plan["iters"])["0.25"]
    rows.append({"model": size, "dtype": dtype, "size": [h, w], "ratio": 0.25,
                 "tile": r["tile"], "tiles": r["tiles"], "ms_per_frame": r["ms_per_frame"],
                 "gflops": r["gflops"], "xla_mem_mb": r["xla_mem_mb"],
                 "compile_s": r["compile_s"]})
    log(what, rows[-1])
  return rows


def train_config(plan, batch: int, size: str = "base"):
  config = config_loading.load_config(f"dealthdr_2exp:size={size}")
  config.batch_size = batch
  if plan["crop"]:
    config.data.crop = plan["crop"]
  return config


def train_rows(plan, size, budget, skipped, log):
  rows = []
  for batch in plan["train_batches"]:
    what = f"train {size} stage 1 batch {batch}"
    if not budget.allows():
      skipped.append(what)
      continue
    config = train_config(plan, batch, size)
    r = step_benchmark.measure_train_step(config, steps=plan["train_steps"])
    rows.append({"model": size, "stage": 1, "batch": batch, "crop": config.data.crop,
                 "ratio": config.attn_ratio, **r})
    log(what, rows[-1])
  return rows


def input_rows(plan, size, workers: int, appetite: float | None, budget, skipped, log):
  rows = []
  config = train_config(plan, plan["train_batches"][-1], size)
  batch, crop = config.batch_size, config.data.crop
  sim_config = pipeline.as_config(config)
  for w in (workers,):
    what = f"input on the fly, {w} processes"
    if not budget.allows():
      skipped.append(what)
      break
    it = pipeline.make_synthetic_loader(sim_config, seed=1, batch_size=batch, worker_count=w)
    rows.append({"source": "synthetic (on the fly)", "workers": w, "batch": batch,
                 "crop": crop,
                 **input_pipeline.samples_per_second(it, plan["input_batches"])})
    log(what, rows[-1])
  what = "input from array_record shards"
  if not budget.allows():
    skipped.append(what)
  else:
    with tempfile.TemporaryDirectory(prefix="device-check-shards-") as tmp:
      start = time.perf_counter()
      meta = window_records.write_shards(pathlib.Path(tmp) / "s", sim_config, seed=1,
                                 num_records=plan["records"], workers=workers)
      render_rate = plan["records"] / (time.perf_counter() - start)
      it = iter(window_records.make_shard_dataset(pathlib.Path(tmp) / "s", seed=1, batch_size=batch,
                                          crop=(crop, crop)))
      rows.append({"source": "array_record shards (page cache)", "workers": 0, "batch": batch,
                   "crop": crop, "render_samples_per_s": render_rate,
                   "mb_per_window": meta["bytes"] / plan["records"] / 2**20,
                   **input_pipeline.samples_per_second(it, plan["read_batches"], warmup=2)})
      log(what, rows[-1])
  for r in rows:
    r["ratio_to_step"] = r["samples_per_s"] / appetite if appetite else None
  return rows


def _fmt(value, spec):
  return "–" if value is None else format(value, spec)


def tables(result: dict) -> str:
  out = [f"device: {result['device']} ({result['platform']}), jax {result['jax']}, "
         f"{result['host_cpus']} host CPUs{' — QUICK (tiny sizes)' if result['quick'] else ''}",
         ""]
  if result.get("flop_count_note"):
    out += [f"Note: {result['flop_count_note']}.", ""]
  if result["inference"]:
    out += ["| model | dtype | resolution | ratio | ms/frame | HDRFlow ms | GFLOPs | "
            "XLA MiB | compile s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["inference"]:
      ref = HDRFLOW_MS.get(r["resolution"]) if not result["quick"] else None
      out.append(f"| {r['model']} | {r['dtype']} | {r['resolution']} {r['size'][0]}×"
                 f"{r['size'][1]} | {r['ratio']:g} | {_fmt(r['ms_per_frame'], '.1f')} | "
                 f"{_fmt(ref, '.0f')} | {r['gflops']:.1f} | {_fmt(r['xla_mem_mb'], '.0f')} | "
                 f"{r['compile_s']:.1f} |")
    out.append("")
  if result["tiled"]:
    out += ["| 4K tiled | dtype | tile | tiles | ms/frame | GFLOPs | XLA MiB (tile) |",
            "|---|---|---|---|---|---|---|"]
    for r in result["tiled"]:
      out.append(f"| {r['model']} {r['size'][0]}×{r['size'][1]} r{r['ratio']:g} | "
                 f"{r['dtype']} | {r['tile'][0]}×{r['tile'][1]} | {r['tiles']} | "
                 f"{_fmt(r['ms_per_frame'], '.0f')} | {r['gflops']:.0f} | "
                 f"{_fmt(r['xla_mem_mb'], '.0f')} |")
    out.append("")
  if result["train"]:
    out += ["| train | batch | crop | steps/s | samples/s | ms/step | GFLOPs/step | XLA MiB |",
            "|---|---|---|---|---|---|---|---|"]
    for r in result["train"]:
      out.append(f"| {r['model']} stage 1 | {r['batch']} | {r['crop']} | {r['steps_per_s']:.2f} | "
                 f"{r['samples_per_s']:.1f} | {r['ms_per_step']:.0f} | "
                 f"{r['gflops_per_step']:.0f} | {_fmt(r['xla_mem_mb'], '.0f')} |")
    out.append("")
  if result["input"]:
    out += ["| input | processes | batch | crop | samples/s | × step appetite |",
            "|---|---|---|---|---|---|"]
    for r in result["input"]:
      out.append(f"| {r['source']} | {r['workers']} | {r['batch']} | {r['crop']} | "
                 f"{r['samples_per_s']:.1f} | {_fmt(r['ratio_to_step'], '.2f')} |")
    out.append("")
  if result["skipped"]:
    out.append(f"skipped (time budget): {', '.join(result['skipped'])}")
  return "\n".join(out) + "\n"


def run(args) -> dict:
  plan = dict(QUICK if args.quick else FULL)
  if args.resolutions:
    unknown = set(args.resolutions) - set(plan["resolutions"])
    if unknown:
      raise ValueError(f"--resolutions: unknown {sorted(unknown)}; "
                       f"expected some of {sorted(plan['resolutions'])}")
    plan["resolutions"] = {k: v for k, v in plan["resolutions"].items()
                           if k in args.resolutions}
  if args.train_batches:
    plan["train_batches"] = tuple(args.train_batches)
  budget = Budget(args.budget_s)
  skipped: list[str] = []

  def log(what, row):
    print(f"[{budget.elapsed():6.1f} s] {what}: {json.dumps(row)}", file=sys.stderr,
          flush=True)

  device = jax.devices()[0]
  result = {"device": device.device_kind, "platform": jax.default_backend(),
            "devices": jax.device_count(), "jax": jax.__version__,
            "host_cpus": os.cpu_count(), "python": platform.python_version(),
            "quick": bool(args.quick), "budget_s": args.budget_s,
            "flop_count_note": bench.flop_count_note(jax.default_backend())}
  first = [r for r in args.ratios if r == 0.25] or args.ratios[:1]
  rest = [r for r in args.ratios if r not in first]
  result["inference"] = inference_rows(plan, args.models, args.dtypes, first, budget, skipped,
                                       log)
  result["train"] = (train_rows(plan, args.train_model, budget, skipped, log)
                     if "train" in args.sections else [])
  appetite = max((r["samples_per_s"] for r in result["train"]), default=None)
  result["input"] = (input_rows(plan, args.train_model, args.input_workers, appetite, budget,
                                skipped, log)
                     if "input" in args.sections else [])
  result["tiled"] = (tiled_rows(plan, args.models[0], args.dtypes, budget, skipped, log)
                     if "tiled" in args.sections else [])
  result["inference"] += inference_rows(plan, args.models, args.dtypes, rest, budget, skipped,
                                        log)
  result["skipped"] = skipped
  result["wall_s"] = budget.elapsed()
  return result


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", help="write the JSON here")
  parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke run)")
  parser.add_argument("--budget-s", type=float, default=420.0,
                      help="stop starting new measurements after this many seconds")
  parser.add_argument("--models", type=lambda t: t.split(","), default=["small", "base"])
  parser.add_argument("--dtypes", type=lambda t: t.split(","), default=["float32", "bfloat16"])
  parser.add_argument("--ratios", type=bench.parse_ratios, default=[0.25, 0.0, 1.0])
  parser.add_argument("--sections", type=lambda t: t.split(","),
                      default=["train", "input", "tiled"],
                      help="besides inference: any of train,input,tiled")
  parser.add_argument("--resolutions", type=lambda t: t.split(","),
                      help="inference resolutions (default: 720p,1080p)")
  parser.add_argument("--train-model", default="base", help="model of the train and input rows")
  parser.add_argument("--train-batches", type=lambda t: [int(v) for v in t.split(",")],
                      help="global batch sizes of the train rows (default: 8,16; quick 2,4)")
  parser.add_argument("--input-workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                      help="render processes for the input measurements")
  args = parser.parse_args(argv)
  for dtype in args.dtypes:
    if dtype not in ("float32", "bfloat16"):
      parser.error(f"--dtypes: {dtype!r} is not float32 or bfloat16")
  for size in args.models + [args.train_model]:
    if size not in ("tiny", "small", "base"):
      parser.error(f"model size {size!r} is not tiny, small or base")
  unknown = set(args.sections) - {"train", "input", "tiled"}
  if unknown:
    parser.error(f"--sections: unknown {sorted(unknown)}")
  try:
    result = run(args)
  except ValueError as e:
    parser.error(str(e))
  if args.out:
    with hdr_io.atomic_path(args.out) as tmp:
      pathlib.Path(tmp).write_text(json.dumps(result, indent=1))
  print(tables(result), end="")
  return 0


if __name__ == "__main__":
  sys.exit(main())
