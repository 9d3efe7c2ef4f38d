"""Throughput of the synthetic training pipeline (samples/s) on this machine.

  python tools/bench_data.py --sizes 128,256 --windows 3,5 --workers 0,2 --seconds 8

For each (size, window, workers) it builds `make_synthetic_loader` with procedural scenes
(or `--sources DIR`), draws one warm-up batch (worker start-up excluded), then counts
samples for `--seconds`. Prints one line per setting and, with `--json F`, writes them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
from data_pipeline import simulator  # pylint: disable=g-import-not-at-top


def _ints(text: str) -> list[int]:
  return [int(v) for v in text.split(",") if v]


def bench_one(size: int, window: int, workers: int, seconds: float, batch_size: int,
              sources: str | None) -> dict:
  pattern = "2exp" if window == 3 else "3exp"
  config = simulator.SimulatorConfig(size=(size, size), pattern=pattern,
                                     radius=(window - 1) // 2, source_dir=sources)
  it = iter(pipeline.make_synthetic_loader(config, seed=0, batch_size=batch_size,
                                           worker_count=workers))
  next(it)  # Warm-up: worker start-up, source loading.
  n, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    n += len(next(it)["index"])
  elapsed = time.perf_counter() - start
  if hasattr(it, "close"):
    it.close()
  return {"size": size, "window": window, "workers": workers, "batch_size": batch_size,
          "samples": n, "seconds": round(elapsed, 2), "samples_per_s": round(n / elapsed, 2)}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="128,256")
  parser.add_argument("--windows", default="3,5")
  parser.add_argument("--workers", default="0,2")
  parser.add_argument("--seconds", type=float, default=8.0)
  parser.add_argument("--batch-size", type=int, default=4)
  parser.add_argument("--sources", default=None, help="folder of .exr/.hdr images")
  parser.add_argument("--json", default=None)
  args = parser.parse_args(argv)
  rows = []
  print(f"# {platform.node()} cpus={os.cpu_count()} sources={args.sources or 'procedural'}")
  for size in _ints(args.sizes):
    for window in _ints(args.windows):
      for workers in _ints(args.workers):
        row = bench_one(size, window, workers, args.seconds, args.batch_size, args.sources)
        rows.append(row)
        print(f"size={size} T={window} workers={workers}: {row['samples_per_s']:.1f} "
              f"samples/s ({row['samples']} in {row['seconds']} s)", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"cpus": os.cpu_count(), "results": rows}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
