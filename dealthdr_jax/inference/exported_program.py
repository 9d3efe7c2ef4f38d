"""Runs an exported dealthdr program without the model code.

An export folder (written by `dealthdr export`) holds `program.json` (what the program
expects), `program.stablehlo` (serialized `jax.export` StableHLO) and `params.npz` (the
parameter leaves in the program's order). This module imports only json, numpy and jax,
and is copied into every export folder as `run_exported.py`, so that folder runs anywhere
jax is installed:

  python run_exported.py --frames window.npy --stops 0,3,0 --out hdr.npy [--offsets 1,2,0,1,2]

or from Python: `load(folder)(frames [B,T,H,W,3] float32, stops [B,T], offsets=None)
-> hdr [B,H,W,3]`.

A window of frames t-r..t+r is filled in at a clip's ends with the nearest in-clip frame of
each slot's own exposure (`data_pipeline.clips.window_indices`). `offsets` says how far from
t each slot's frame really is (T ints, 0 at the reference; None: -r..r, every slot where it
belongs). For the layouts listed in program.json's "edge_programs" (the first and last
windows of a three-exposure clip: (1, 2, 0, 1, 2) and (-2, -1, 0, -2, -1)) an edge program
chains the flow of the slots holding further frames, as `dealthdr infer` does, and returns
whether it did per window; where it did not, the answer is the plain program's. Any other
layout runs the plain program.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import jax
import numpy as np

PROGRAM_FILE = "program.stablehlo"
SPEC_FILE = "program.json"
LEAVES_FILE = "params.npz"


def edge_program_file(offsets) -> str:
  """File name of the clip-edge program for window layout `offsets` (e.g. (1, 2, 0, 1, 2)
  → program_edge_p1_p2_0_p1_p2.stablehlo)."""
  name = "_".join(f"p{o}" if o > 0 else f"m{-o}" if o < 0 else "0" for o in offsets)
  return f"program_edge_{name}.stablehlo"


def load(folder):
  """Loads an export folder → `fn(frames, stops, offsets=None) -> hdr` (numpy in, numpy
  out; `offsets` as in the module docstring)."""
  folder = pathlib.Path(folder)
  for name in (PROGRAM_FILE, SPEC_FILE, LEAVES_FILE):
    if not (folder / name).is_file():
      raise FileNotFoundError(f"{folder} is not a dealthdr export folder: {name} is missing")
  spec = json.loads((folder / SPEC_FILE).read_text())
  exported = jax.export.deserialize(bytearray((folder / PROGRAM_FILE).read_bytes()))
  edges = {}
  for entry in spec.get("edge_programs", []):  # Absent in folders exported before them.
    path = folder / entry["file"]
    if not path.is_file():
      raise FileNotFoundError(f"{folder} is incomplete: {entry['file']}, the program for "
                              f"clip-edge windows {entry['offsets']}, is missing")
    edges[tuple(entry["offsets"])] = path
  with np.load(folder / LEAVES_FILE) as npz:
    leaves = [npz[f"leaf_{i:05d}"] for i in range(spec["num_leaves"])]
  frames_shape = tuple(spec["frames_shape"])
  window = frames_shape[1]

  def run(frames, stops, offsets=None):
    frames = np.asarray(frames, np.float32)
    stops = np.asarray(stops, np.float32)
    if frames.shape != frames_shape or stops.shape != frames_shape[:2]:
      raise ValueError(f"this program was exported for frames {list(frames_shape)} and stops "
                       f"{list(frames_shape[:2])}, got {list(frames.shape)} and "
                       f"{list(stops.shape)}; export again with --size/--batch")
    if offsets is not None:
      offsets = tuple(int(o) for o in offsets)
      if len(offsets) != window or offsets[window // 2] != 0:
        raise ValueError(f"offsets must be {window} frame distances with 0 at the reference "
                         f"(slot {window // 2}), got {list(offsets)}")
    if offsets not in edges:
      return np.asarray(exported.call(leaves, frames, stops))
    if isinstance(edges[offsets], pathlib.Path):  # Deserialized on first use.
      edges[offsets] = jax.export.deserialize(bytearray(edges[offsets].read_bytes()))
    hdr, chained = (np.asarray(x) for x in edges[offsets].call(leaves, frames, stops))
    if chained.all():
      return hdr
    plain = np.asarray(exported.call(leaves, frames, stops))
    return np.where(chained[:, None, None, None], hdr, plain)

  run.spec = spec
  return run


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--folder", default=str(pathlib.Path(__file__).parent))
  parser.add_argument("--frames", required=True, help=".npy of [B,T,H,W,3] float32 in [0,1]")
  parser.add_argument("--stops", required=True, help=".npy of [B,T] or comma-separated stops")
  parser.add_argument("--out", required=True, help="output .npy of [B,H,W,3]")
  parser.add_argument("--offsets", default=None,
                      help="comma-separated frame distance of each slot from the reference, "
                           "for a clip-edge window (e.g. 1,2,0,1,2); default: -r..r")
  args = parser.parse_args(argv)
  fn = load(args.folder)
  frames = np.load(args.frames)
  if args.stops.endswith(".npy"):
    stops = np.load(args.stops)
  else:
    stops = np.tile(np.array([float(s) for s in args.stops.split(",")], np.float32),
                    (frames.shape[0], 1))
  try:
    offsets = None if args.offsets is None else [int(o) for o in args.offsets.split(",")]
  except ValueError:
    parser.error(f"--offsets must be comma-separated integers, got {args.offsets!r}")
  np.save(args.out, fn(frames, stops, offsets))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
