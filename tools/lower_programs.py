"""Lowers the inference program and the train steps for cpu, cuda and tpu, from this machine.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tools/lower_programs.py \
      --out out/lowering.json

Inference: `size=small|base` (untrained weights of the preset: lowering depends on shapes
only), one 720p window (720×1280), attention ratio 0.25, fp32 and bf16, per platform:
serialized StableHLO size and lowering time; for cpu also XLA's compiled cost analysis
(FLOPs, bytes accessed) and memory analysis (temp + argument + output bytes), the only
platform this machine can compile for. Train steps: stage 1 and stage 2 of the preset at
batch 8 on 256² crops, sharded over a (data=4, model=2) mesh (kernels split over `model`)
when 8 devices exist, else over `data` alone.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# pylint: disable=g-import-not-at-top,wrong-import-position
from configs import dealthdr_2exp
from configs import dealthdr_2exp_stage2
from dealthdr_jax.inference import export as export_lib
from dealthdr_jax.training import lowering
from dealthdr_jax.training import train


def inference_rows(size: str, height: int, width: int, platforms) -> list[dict]:
  rows = []
  base = train.check_config(dealthdr_2exp.get_config(f"size={size}"))
  params = jax.eval_shape(lambda: train._random_init(base, 0))  # pylint: disable=protected-access
  params = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), params)
  for dtype in ("float32", "bfloat16"):
    model = base.clone(dtype=dtype)
    for platform in platforms:
      start = time.perf_counter()
      program, leaves, _ = export_lib.export_program(model, params, height, width, 0.25,
                                                     platforms=(platform,))
      row = {"program": f"infer {size}", "dtype": dtype, "platform": platform,
             "size": f"{height}x{width}", "ratio": 0.25, "bytes": len(program),
             "lower_s": time.perf_counter() - start}
      if platform == "cpu":
        exported = jax.export.deserialize(bytearray(program))
        frames = jax.ShapeDtypeStruct((1, model.window, height, width, 3), jnp.float32)
        stops = jax.ShapeDtypeStruct((1, model.window), jnp.float32)
        compiled = jax.jit(exported.call).lower(
            [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves], frames, stops).compile()
        cost = compiled.cost_analysis() or {}
        cost = cost[0] if isinstance(cost, list) else cost
        memory = compiled.memory_analysis()
        row.update(gflops=cost.get("flops", 0) / 1e9,
                   gbytes_accessed=cost.get("bytes accessed", 0) / 1e9,
                   temp_mb=getattr(memory, "temp_size_in_bytes", 0) / 2**20)
      rows.append(row)
      print(json.dumps(row), flush=True)
  return rows


def train_rows(size: str, platforms) -> list[dict]:
  rows = []
  for stage, module in ((1, dealthdr_2exp), (2, dealthdr_2exp_stage2)):
    cfg = module.get_config(f"size={size}")
    cfg.batch_size, cfg.data.crop = 8, 256
    if jax.device_count() == 8:
      cfg.mesh.shape, cfg.mesh.axes = (4, 2), ("data", "model")
      cfg.mesh.param_rules = ((r"kernel$", (None, None, None, "model")),)
    for platform in platforms:
      start = time.perf_counter()
      exported = lowering.export_train_step(cfg, (platform,), ratio=0.25)
      row = {"program": f"train stage {stage} {size}", "dtype": cfg.model.dtype,
             "platform": platform, "size": "8x256x256", "mesh": dict(
                 zip(cfg.mesh.axes, cfg.mesh.shape)), "bytes": len(exported.serialize()),
             "lower_s": time.perf_counter() - start}
      rows.append(row)
      print(json.dumps(row), flush=True)
  return rows


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="small,base")
  parser.add_argument("--platforms", default="cpu,cuda,tpu")
  parser.add_argument("--frame", default="720x1280")
  parser.add_argument("--out", default="out/lowering.json")
  args = parser.parse_args()
  h, w = (int(v) for v in args.frame.split("x"))
  platforms = args.platforms.split(",")
  rows = []
  for size in args.sizes.split(","):
    rows += inference_rows(size, h, w, platforms)
    rows += train_rows(size, platforms)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(rows, indent=1))
  print(f"\n{'program':22s} {'dtype':9s} {'platform':8s} {'KB':>7s} {'lower s':>7s} "
        f"{'GFLOP':>7s} {'temp MB':>8s}")
  for r in rows:
    print(f"{r['program']:22s} {r['dtype']:9s} {r['platform']:8s} {r['bytes'] / 1024:7.0f} "
          f"{r['lower_s']:7.1f} {r.get('gflops', float('nan')):7.1f} "
          f"{r.get('temp_mb', float('nan')):8.0f}")
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
