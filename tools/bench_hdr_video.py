"""Benchmark of the HDR video writer: ms/frame, bitrate and memory per size and format.

  python tools/bench_hdr_video.py --sizes 256x384,1080x1920 --frames 24 --out out/bench_hdr

The clip is a procedural HDR scene (data_pipeline.sources) panning 6 px/frame, made one
frame at a time on demand (so the writer's own memory is what is measured). Per row:
grading passes (statistics + light levels) ms/frame, encoding ms/frame (colour conversion,
PQ/HLG, Y'CbCr and libx265), kbit/s at 25 fps, and the growth of the process's peak
resident memory during the run. Run a size twice with different --frames to see that
memory does not grow with the clip's length.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import resource
import sys
from collections.abc import Sequence

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from data_pipeline import sources  # pylint: disable=g-import-not-at-top,wrong-import-position
from dealthdr_jax.inference import hdr_video  # pylint: disable=g-import-not-at-top,wrong-import-position


class PanningClip(Sequence):
  """`frames` [H, W, 3] float32 HDR frames of one scene panning 6 px/frame, made on demand."""

  def __init__(self, height: int, width: int, frames: int, seed: int = 0):
    self.scene = sources.procedural_scene(np.random.default_rng(seed), height,
                                          width + 6 * frames)
    self.width, self.frames = width, frames

  def __len__(self) -> int:
    return self.frames

  def __getitem__(self, i):
    if not 0 <= i < self.frames:
      raise IndexError(i)
    return self.scene[:, 6 * i:6 * i + self.width]


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="256x384,1080x1920")
  parser.add_argument("--frames", type=int, default=24)
  parser.add_argument("--formats", default="pq,hlg")
  parser.add_argument("--preset", default="medium")
  parser.add_argument("--crf", type=int, default=18)
  parser.add_argument("--out", default="out/bench_hdr_video")
  args = parser.parse_args()
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  rows = []
  print(f"{'size':>10} {'format':>6} {'frames':>6} {'grading ms/f':>12} {'encode ms/f':>11} "
        f"{'kbit/s':>8} {'MaxCLL':>6} {'MaxFALL':>7} {'peak RSS +MB':>12}")
  for size in args.sizes.split(","):
    h, w = (int(v) for v in size.split("x"))
    clip = PanningClip(h, w, args.frames)
    for fmt in args.formats.split(","):
      before = _peak_rss_mb()
      s = hdr_video.write_hdr_video(out / f"{size}_{fmt}.mp4", clip, hdr_format=fmt,
                                    preset=args.preset, crf=args.crf)
      s["peak_rss_growth_mb"] = _peak_rss_mb() - before
      s["preset"], s["crf"] = args.preset, args.crf
      rows.append(s)
      print(f"{size:>10} {fmt:>6} {s['frames']:6d} {s['stats_ms_per_frame']:12.1f} "
            f"{s['encode_ms_per_frame']:11.1f} {s['kbit_per_s']:8.0f} {s['max_cll']!s:>6} "
            f"{s['max_fall']!s:>7} {s['peak_rss_growth_mb']:12.1f}", flush=True)
  (out / "bench.json").write_text(json.dumps(rows, indent=1))
  print(f"wrote {out / 'bench.json'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
