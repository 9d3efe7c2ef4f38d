"""Training-data throughput: windows rendered on the fly vs read from array_record shards.

  python tools/bench_array_record.py --size 256 --batch 8 --records 64 --workers 2

Renders `--records` windows of the simulator (2exp, 3 frames, stage-1 camera family,
procedural content unless `--sources`) into a shard folder with `--workers` processes
(the rendering rate of `dealthdr synth --format array_record`), then measures samples/s of
  on-the-fly  `pipeline.make_synthetic_loader` with 0 and `--workers` render processes;
  shards      `window_records.make_shard_dataset` (reader threads, then `--workers` processes),
              random crop of the stored size, flips and time reversal as in training.
Shard reads cycle over the records, so after the first epoch they come from the OS page
cache: the figure is decode + augment + batch, the upper bound a local SSD approaches.
Prints one JSON line per measurement and a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

from data_pipeline import pipeline
from data_pipeline import simulator as sim_lib
from data_pipeline import window_records
from dealthdr_jax.training import input_pipeline


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--size", type=int, default=256, help="window side (rendered and read)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--records", type=int, default=64, help="windows in the shard folder")
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--batches", type=int, default=6, help="timed batches on the fly")
  parser.add_argument("--read-batches", type=int, default=60, help="timed batches of reads")
  parser.add_argument("--sources", default=None, help="HDR image folder (default: procedural)")
  parser.add_argument("--out", default=None, help="shard folder (default: a temporary one)")
  args = parser.parse_args(argv)
  config = sim_lib.SimulatorConfig(size=(args.size, args.size), pattern="2exp", radius=1)
  if args.sources:
    config = config.replace(source_dir=args.sources)
  rows = []

  def emit(row):
    rows.append(row)
    print(json.dumps(row), flush=True)

  with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
    out = pathlib.Path(args.out or pathlib.Path(tmp) / "shards")
    start = time.perf_counter()
    meta = window_records.write_shards(out, config, seed=0, num_records=args.records,
                               workers=args.workers, overwrite=True)
    elapsed = time.perf_counter() - start
    emit({"what": f"synth --format array_record, {args.workers} processes",
          "samples_per_s": args.records / elapsed,
          "mb_per_window": meta["bytes"] / args.records / 2**20})
    for workers in (0, args.workers):
      it = pipeline.make_synthetic_loader(config, seed=1, batch_size=args.batch,
                                          worker_count=workers)
      emit({"what": f"on the fly, {workers} worker processes",
            **input_pipeline.samples_per_second(it, args.batches)})
    for workers in (0, args.workers):
      it = iter(window_records.make_shard_dataset(out, seed=1, batch_size=args.batch,
                                          crop=(args.size, args.size), worker_count=workers))
      emit({"what": f"array_record shards, {workers} worker processes",
            **input_pipeline.samples_per_second(it, args.read_batches, warmup=2)})
  base = rows[1]["samples_per_s"]
  print(f"\n{args.size}², batch {args.batch}, 3 frames ({args.records} records)\n")
  print("| data | samples/s | ms/batch | × on the fly (0 workers) |\n|---|---|---|---|")
  for r in rows:
    ms = f"{r['ms_per_batch']:.0f}" if "ms_per_batch" in r else "–"
    print(f"| {r['what']} | {r['samples_per_s']:.1f} | {ms} | {r['samples_per_s'] / base:.1f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
