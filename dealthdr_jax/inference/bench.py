"""`dealthdr bench`: steady-state latency, XLA FLOPs and memory per attention ratio.

Each ratio is its own compiled program (top-k needs a static k). Latency is the median of
`--iters` timed calls after one warm-up call; FLOPs come from XLA's cost analysis of the
compiled program; `attn_gflops` is the difference to ratio 0 (pure flow), i.e. what FGMA's
unreliability score, selection, gather, attention and scatter cost at that ratio.

Peak memory: the device allocator's peak where the backend reports one (GPU/TPU),
otherwise XLA's own estimate for the program (arguments + outputs + temporaries).

`--edges` also measures, per ratio, the program of a clip-edge window whose slots hold
frames further away than they stand for (three exposures: `predictor.edge_layouts`), which
adds one flow pair. It runs on a clip's first and last frames only; where no slot takes the
chained flow the predictor runs the plain program after it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import patterns
from dealthdr_jax import model_files
from dealthdr_jax.inference import predictor as predictor_lib


def flop_count_note(backend: str) -> str | None:
  """What XLA's FLOP count means on `backend` ("cpu", "gpu", "tpu"); None where the counts
  compare across sizes and machines (the CPU's, the numbers the README quotes)."""
  if backend == "cpu":
    return None
  return (f"GFLOPs on {backend} are XLA's cost analysis of the program after its "
          f"{backend} passes, which does not count work handed to library kernels (it gave "
          "fewer FLOPs for 1080p than for 720p on an H200): compare FLOPs only between CPU "
          "runs; here, read ms/frame and memory")


def parse_size(text: str) -> tuple[int, int]:
  """'512x512' or '720p'/'1080p' → (height, width)."""
  named = {"720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}
  if text.lower() in named:
    return named[text.lower()]
  try:
    h, w = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise argparse.ArgumentTypeError(f"size must be HxW (e.g. 512x512) or 720p/1080p, got {text!r}")
  return h, w


def parse_ratios(text: str) -> list[float]:
  try:
    ratios = [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"ratios must be comma-separated numbers, got {text!r}")
  if not ratios or any(not 0 <= r <= 1 for r in ratios):
    raise argparse.ArgumentTypeError(f"ratios must lie in [0, 1], got {text!r}")
  return ratios


def xla_memory_mb(compiled) -> float | None:
  """XLA's estimate for one program: arguments + outputs + temporaries, MiB (None where
  the backend does not say). Unlike the allocator's peak, it is per program."""
  try:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes) / 2**20
  except Exception:  # pylint: disable=broad-except  Not every backend implements it.
    return None


def _peak_memory_mb(compiled) -> tuple[float | None, str]:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20, "allocator_peak"
  estimate = xla_memory_mb(compiled)
  return (estimate, "xla_estimate") if estimate is not None else (None, "unavailable")


def benchmark_tiled(model, params, height: int, width: int, ratios, tile: int,
                    overlap: int = 64, iters: int = 3, seed: int = 0) -> dict:
  """Like `benchmark`, through `Predictor` with `tile`: one compiled tile program per ratio,
  host-side tiling and blending included in the latency; FLOPs = tile program × tiles;
  memory = the tile program's."""
  rng = np.random.default_rng(seed)
  frames = rng.uniform(0, 1, (model.window, height, width, 3)).astype(np.float32)
  stops = (np.arange(model.window) % 2 * 3.0).astype(np.float32)
  results = {}
  for ratio in ratios:
    pred = predictor_lib.Predictor(model, params, ratio, tile=tile, overlap=overlap)
    th, tw = min(pred.tile, height), min(pred.tile, width)
    n_tiles = (len(predictor_lib.tile_starts(height, th, overlap))
               * len(predictor_lib.tile_starts(width, tw, overlap)))
    compiled = pred._program((1, model.window, th, tw, 3))
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    times = []
    if iters > 0:
      pred.predict(frames, stops)
    for _ in range(iters):
      start = time.perf_counter()
      pred.predict(frames, stops)
      times.append(time.perf_counter() - start)
    mem, mem_source = _peak_memory_mb(compiled)
    results[f"{ratio:g}"] = {
        "ms_per_frame": 1000 * statistics.median(times) if times else None,
        "gflops": cost.get("flops", float("nan")) * n_tiles / 1e9,
        "peak_mem_mb": mem, "peak_mem_source": mem_source,
        "xla_mem_mb": xla_memory_mb(compiled), "compile_s": pred.compile_seconds,
        "tiles": n_tiles, "tile": [th, tw],
    }
  _add_attention_share(results)
  return results


def _add_attention_share(results: dict) -> None:
  base = results.get("0")
  for r in results.values():
    r["attn_gflops"] = r["gflops"] - base["gflops"] if base else None


def _measure(model, params, frames, stops, ratio: float, iters: int,
             offsets: tuple[int, ...] | None = None) -> dict:
  """Compiles the model at `ratio` (with clip-edge `offsets`, or None) and measures it."""
  batch = frames.shape[0]
  fn = jax.jit(predictor_lib.window_program(model, ratio, offsets))
  start = time.perf_counter()
  compiled = fn.lower(params, frames, stops).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  times = []
  if iters > 0:
    jax.block_until_ready(compiled(params, frames, stops))  # warm-up
  for _ in range(iters):
    start = time.perf_counter()
    jax.block_until_ready(compiled(params, frames, stops))
    times.append(time.perf_counter() - start)
  mem, mem_source = _peak_memory_mb(compiled)
  return {
      "ms_per_frame": 1000 * statistics.median(times) / batch if times else None,
      "gflops": cost.get("flops", float("nan")) / 1e9 / batch,
      "peak_mem_mb": mem,
      "peak_mem_source": mem_source,
      "xla_mem_mb": xla_memory_mb(compiled),
      "compile_s": compile_s,
  }


def benchmark(model, params, height: int, width: int, ratios, batch: int = 1,
              iters: int = 5, seed: int = 0,
              edge_offsets: tuple[int, ...] | None = None) -> dict:
  """Measures each ratio; returns {"<r>": {"ms_per_frame", "gflops", ...}} (DESIGN.md §8).

  With `edge_offsets` (a layout of `predictor.edge_layouts`), each ratio also gets "edge":
  the same measurements for that clip-edge window's program.
  """
  rng = np.random.default_rng(seed)
  frames = jnp.asarray(rng.uniform(0, 1, (batch, model.window, height, width, 3)), jnp.float32)
  stops = jnp.asarray(np.tile(np.arange(model.window) % 2 * 3.0, (batch, 1)), jnp.float32)
  model.check_inputs(np.asarray(frames), np.asarray(stops))
  results = {}
  for ratio in ratios:
    results[f"{ratio:g}"] = _measure(model, params, frames, stops, ratio, iters)
    if edge_offsets is not None:
      results[f"{ratio:g}"]["edge"] = {
          "offsets": list(edge_offsets),
          **_measure(model, params, frames, stops, ratio, iters, tuple(edge_offsets))}
  _add_attention_share(results)
  return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
  src = parser.add_mutually_exclusive_group()
  src.add_argument("--checkpoint", help="params-only checkpoint or training workdir")
  src.add_argument("--config", default="dealthdr_2exp:size=small",
                   help="config file or name, with optional :arg (freshly initialised weights)")
  parser.add_argument("--size", type=parse_size, default=(512, 512), help="HxW, 720p or 1080p")
  parser.add_argument("--ratios", type=parse_ratios, default=[0.0, 0.25, 0.5, 1.0])
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--iters", type=int, default=5,
                      help="timed calls per ratio (0: FLOPs and memory only, no timing)")
  parser.add_argument("--tile", type=int, help="benchmark tiled inference with this tile side")
  parser.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
  parser.add_argument("--edges", action="store_true",
                      help="also measure the clip-edge window program (three-exposure models)")
  parser.add_argument("--json", help="write the results here as JSON")


def main(args: argparse.Namespace) -> int:
  model, params, config, description = model_files.load_model(
      args.checkpoint, args.config, overrides=getattr(args, "config_overrides", None))
  h, w = args.size
  edge_offsets = None
  if args.edges:
    if args.tile:
      print("error: --edges measures whole frames; leave out --tile", file=sys.stderr)
      return 2
    layouts = predictor_lib.edge_layouts(model.radius, patterns.period(config.pattern))
    if not layouts:
      print(f"--edges: a {config.pattern} clip's edge windows hold every frame where it "
            "belongs; they run the plain program")
    else:
      edge_offsets = layouts[-1]
  device = jax.devices()[0]
  print(f"bench: {description}, {model_files.count_params(params):,} params, {h}x{w}, "
        f"batch {args.batch}, on {device.device_kind} ({jax.default_backend()})")
  if args.tile:
    ratios = benchmark_tiled(model, params, h, w, args.ratios, args.tile, args.overlap,
                             args.iters)
  else:
    ratios = benchmark(model, params, h, w, args.ratios, args.batch, args.iters,
                       edge_offsets=edge_offsets)
  print(f"{'ratio':>6} {'ms/frame':>9} {'GFLOPs':>8} {'attn GFLOPs':>11} {'peak MB':>8} {'compile s':>9}")
  fmt = lambda x, spec: format(x, spec) if x is not None else "-"
  for r, v in ratios.items():
    print(f"{r:>6} {fmt(v['ms_per_frame'], '.1f'):>9} {v['gflops']:8.2f} "
          f"{fmt(v['attn_gflops'], '.3f'):>11} {fmt(v['peak_mem_mb'], '.0f'):>8} "
          f"{v['compile_s']:9.1f}")
  if edge_offsets is not None:
    print(f"clip-edge window {edge_offsets} (a clip's first and last frames):")
    for r, v in ratios.items():
      e = v["edge"]
      print(f"{r:>6} {fmt(e['ms_per_frame'], '.1f'):>9} {e['gflops']:8.2f} "
            f"{'+%.1f %%' % (100 * (e['gflops'] / v['gflops'] - 1)):>11} "
            f"{fmt(e['peak_mem_mb'], '.0f'):>8} {e['compile_s']:9.1f}")
  note = flop_count_note(jax.default_backend())
  if note:
    print(f"note: {note}")
  if args.json:
    from data_pipeline import hdr_io  # atomic writes live with the file I/O.
    out = {"device": f"{device.device_kind} ({jax.default_backend()})", "model": description,
           "params": model_files.count_params(params), "size": [h, w], "batch": args.batch,
           "tile": args.tile, "flop_count_note": note,
           "ratios": ratios}
    with hdr_io.atomic_path(args.json) as tmp:
      with open(tmp, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.json}")
  return 0
