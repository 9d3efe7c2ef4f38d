"""Runs an exported dealthdr program without the model code.

An export folder (written by `dealthdr export`) holds `program.json` (what the program
expects), `program.stablehlo` (serialized `jax.export` StableHLO) and `params.npz` (the
parameter leaves in the program's order). This module imports only json, numpy and jax,
and is copied into every export folder as `run_exported.py`, so that folder runs anywhere
jax is installed:

  python run_exported.py --frames window.npy --stops 0,3,0 --out hdr.npy

or from Python: `load(folder)(frames [B,T,H,W,3] float32, stops [B,T]) -> hdr [B,H,W,3]`.
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


def load(folder):
  """Loads an export folder → `fn(frames, stops) -> hdr` (numpy in, numpy out)."""
  folder = pathlib.Path(folder)
  for name in (PROGRAM_FILE, SPEC_FILE, LEAVES_FILE):
    if not (folder / name).is_file():
      raise FileNotFoundError(f"{folder} is not a dealthdr export folder: {name} is missing")
  spec = json.loads((folder / SPEC_FILE).read_text())
  exported = jax.export.deserialize(bytearray((folder / PROGRAM_FILE).read_bytes()))
  with np.load(folder / LEAVES_FILE) as npz:
    leaves = [npz[f"leaf_{i:05d}"] for i in range(spec["num_leaves"])]
  frames_shape = tuple(spec["frames_shape"])

  def run(frames, stops):
    frames = np.asarray(frames, np.float32)
    stops = np.asarray(stops, np.float32)
    if frames.shape != frames_shape or stops.shape != frames_shape[:2]:
      raise ValueError(f"this program was exported for frames {list(frames_shape)} and stops "
                       f"{list(frames_shape[:2])}, got {list(frames.shape)} and "
                       f"{list(stops.shape)}; export again with --size/--batch")
    return np.asarray(exported.call(leaves, frames, stops))

  run.spec = spec
  return run


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--folder", default=str(pathlib.Path(__file__).parent))
  parser.add_argument("--frames", required=True, help=".npy of [B,T,H,W,3] float32 in [0,1]")
  parser.add_argument("--stops", required=True, help=".npy of [B,T] or comma-separated stops")
  parser.add_argument("--out", required=True, help="output .npy of [B,H,W,3]")
  args = parser.parse_args(argv)
  fn = load(args.folder)
  frames = np.load(args.frames)
  if args.stops.endswith(".npy"):
    stops = np.load(args.stops)
  else:
    stops = np.tile(np.array([float(s) for s in args.stops.split(",")], np.float32),
                    (frames.shape[0], 1))
  np.save(args.out, fn(frames, stops))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
