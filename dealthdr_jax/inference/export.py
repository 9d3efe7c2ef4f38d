"""`dealthdr export`: a params-only checkpoint plus a serialized StableHLO program.

The program (`jax.export`) is specialised to one frame size, batch and attention ratio and
takes the parameter leaves as inputs, so the same folder serves the Python loader
(`inference/exported_program.py`, copied in as `run_exported.py`) and any StableHLO
runtime.

A model whose clip-edge windows hold frames further away than their slots (those of its
pattern's clips: three exposures, `dealthdr.chain_plan`) also gets one program per such
window layout (`predictor.edge_layouts`). It chains those slots' flow as `dealthdr infer`
does and also returns, per window, whether it did; where it did not, the plain program's
output is the answer (what `predictor.Predictor` returns). `program.json` lists them under
"edge_programs".
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import patterns
from dealthdr_jax import model_files
from dealthdr_jax.inference import bench
from dealthdr_jax.inference import exported_program as exported_lib
from dealthdr_jax.inference import predictor as predictor_lib


def export_program(model, params, height: int, width: int, ratio: float, batch: int = 1,
                   platforms: tuple[str, ...] = ("cpu",),
                   offsets: tuple[int, ...] | None = None) -> tuple[bytes, list, dict]:
  """Serializes `hdr = model(params, frames, stops)` for fixed shapes; with clip-edge
  `offsets` (`predictor.edge_layouts`), `(hdr, chained [B] bool) = model(..., offsets)`.

  Returns:
    (serialized program, parameter leaves in input order, spec dict for program.json).
  """
  leaves, treedef = jax.tree.flatten(params)
  frames_shape = (batch, model.window, height, width, 3)

  program = predictor_lib.window_program(model, ratio, offsets)

  def fn(param_leaves, frames, stops):
    return program(jax.tree.unflatten(treedef, param_leaves), frames, stops)

  args = ([jax.ShapeDtypeStruct(np.shape(x), jnp.asarray(x).dtype) for x in leaves],
          jax.ShapeDtypeStruct(frames_shape, jnp.float32),
          jax.ShapeDtypeStruct(frames_shape[:2], jnp.float32))
  exp = jax.export.export(jax.jit(fn), platforms=platforms)(*args)
  spec = {"frames_shape": list(frames_shape), "ratio": ratio, "platforms": list(platforms),
          "dtype": model.dtype,
          "num_leaves": len(leaves), "radius": model.radius, "response": model.response,
          "output": "hdr [B, H, W, 3] float32, linear radiance (DESIGN.md §3 units)"}
  return exp.serialize(), [np.asarray(x) for x in leaves], spec


def export(checkpoint: str, out: str, height: int, width: int, ratio: float | None,
           batch: int = 1, platforms: tuple[str, ...] = ("cpu",),
           dtype: str | None = None) -> pathlib.Path:
  """Writes the export folder (each file atomically); returns its path.

  `platforms` may name platforms this machine lacks (e.g. cuda, tpu: lowering needs no
  device). `dtype` ("float32" or "bfloat16") overrides the model's compute dtype
  (parameters stay float32; softmax, top-k and the output stay float32).
  """
  checkpoint = model_files.resolve_checkpoint(checkpoint)
  model, params, config, _ = model_files.load_model(checkpoint)
  if dtype is not None:
    if dtype not in ("float32", "bfloat16"):
      raise ValueError(f"--dtype must be float32 or bfloat16, got {dtype!r}")
    model = model.clone(dtype=dtype)
  ratio = config.attn_ratio if ratio is None else ratio
  model.check_inputs(np.zeros((batch, model.window, height, width, 3), np.float32),
                     np.zeros((batch, model.window), np.float32))
  program, leaves, spec = export_program(model, params, height, width, ratio, batch, platforms)
  edge_programs = {
      offsets: export_program(model, params, height, width, ratio, batch, platforms,
                              offsets)[0]
      for offsets in predictor_lib.edge_layouts(model.radius,
                                                patterns.period(config.pattern))}
  spec["edge_programs"] = [
      {"offsets": list(offsets), "file": exported_lib.edge_program_file(offsets)}
      for offsets in edge_programs]
  out = pathlib.Path(out)
  if out.exists() and (not out.is_dir() or any(out.iterdir())):
    raise FileExistsError(f"export folder {out} already exists and is not empty")
  card = None
  card_path = checkpoint / model_files.CARD_FILE
  if card_path.is_file():
    card = json.loads(card_path.read_text())
  out.parent.mkdir(parents=True, exist_ok=True)
  # Everything goes to a temporary folder that is renamed into place at the end, so a
  # failed export leaves nothing behind.
  tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
  try:
    model_files.save_params(tmp, params, config, card)
    (tmp / exported_lib.PROGRAM_FILE).write_bytes(program)
    for offsets, edge_program in edge_programs.items():
      (tmp / exported_lib.edge_program_file(offsets)).write_bytes(edge_program)
    (tmp / exported_lib.SPEC_FILE).write_text(json.dumps(spec, indent=1))
    np.savez(tmp / exported_lib.LEAVES_FILE, **{f"leaf_{i:05d}": x for i, x in enumerate(leaves)})
    shutil.copyfile(exported_lib.__file__, tmp / "run_exported.py")
    if out.exists():
      out.rmdir()
    os.replace(tmp, out)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--checkpoint", required=True, help="params-only checkpoint or training workdir")
  parser.add_argument("--out", required=True, help="export folder to write")
  parser.add_argument("--size", type=bench.parse_size, default=(512, 512), help="HxW of the program")
  parser.add_argument("--ratio", type=float, default=None, help="attention ratio (default: config's)")
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--platforms", default="cpu",
                      help="comma-separated, from cpu, cuda, rocm, tpu (no device needed)")
  parser.add_argument("--dtype", choices=("float32", "bfloat16"),
                      help="compute dtype (default: the model's)")


def main(args: argparse.Namespace) -> int:
  h, w = args.size
  out = export(args.checkpoint, args.out, h, w, args.ratio, args.batch,
               tuple(p.strip() for p in args.platforms.split(",") if p.strip()), args.dtype)
  edges = json.loads((out / exported_lib.SPEC_FILE).read_text())["edge_programs"]
  extra = (f" and {len(edges)} clip-edge program{'s' if len(edges) > 1 else ''} "
           f"({', '.join(str(tuple(e['offsets'])) for e in edges)})") if edges else ""
  print(f"exported {h}x{w} program{extra} and params to {out}")
  return 0
