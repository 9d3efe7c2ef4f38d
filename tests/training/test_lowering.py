"""Lowering for GPU and TPU from this CPU: the inference program (fp32 and bf16) and the
sharded stage-1 / stage-2 train steps on a (data=4, model=2) mesh of 8 fake devices."""
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from configs import dealthdr_2exp
from dealthdr_jax.inference import export as export_lib
from dealthdr_jax.training import train

REPO = pathlib.Path(__file__).resolve().parents[2]

# Run in a subprocess: the 8 fake devices must be set before JAX starts.
SCRIPT = r"""
import json, sys
import jax
from configs import dealthdr_2exp, dealthdr_2exp_stage2
from dealthdr_jax.training import lowering
out = {}
for name, module in (("stage1", dealthdr_2exp), ("stage2", dealthdr_2exp_stage2)):
  cfg = module.get_config("size=tiny")
  cfg.batch_size = 4
  cfg.mesh.shape, cfg.mesh.axes = (4, 2), ("data", "model")
  # Convolution kernels split over `model` along their output channels.
  cfg.mesh.param_rules = ((r"kernel$", (None, None, None, "model")),)
  exported = lowering.export_train_step(cfg, ("cuda", "tpu"), ratio=0.25)
  args, results = lowering.sharding_specs(exported)
  again = jax.export.deserialize(exported.serialize())
  out[name] = {"platforms": list(again.platforms), "devices": again.nr_devices,
               "args": args, "results": results, "mlir": len(exported.mlir_module())}
print(json.dumps(out))
"""


def test_sharded_train_steps_lower_for_gpu_and_tpu():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  for stage, batch_keys in (("stage1", 5), ("stage2", 2)):
    o = out[stage]
    assert o["platforms"] == ["cuda", "tpu"] and o["devices"] == 8
    args, results = o["args"], o["results"]
    # The batch (the last arguments) is split over `data`; kernels over `model`; the new
    # state keeps the shardings of the old.
    assert all(a.startswith('{"data"}') for a in args[-batch_keys:]), args[-batch_keys:]
    assert sum(a.endswith('{"model"}') for a in args) > 10
    n_state = len(args) - batch_keys
    assert results[:n_state] == args[:n_state]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_inference_lowers_for_gpu_and_tpu(dtype):
  model = train.check_config(dealthdr_2exp.get_config("size=tiny")).clone(dtype=dtype)
  params = jax.eval_shape(lambda: train._random_init(model, 0))  # pylint: disable=protected-access
  params = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), params)
  program, _, spec = export_lib.export_program(model, params, 72, 128, 0.25,
                                               platforms=("cuda", "tpu"))
  exported = jax.export.deserialize(bytearray(program))
  assert exported.platforms == ("cuda", "tpu") and spec["platforms"] == ["cuda", "tpu"]
  assert exported.out_avals[0].shape == (1, 72, 128, 3)
  assert exported.out_avals[0].dtype == jnp.float32  # HDR out in fp32 whatever the compute.
  text = exported.mlir_module()
  assert ("bf16" in text) == (dtype == "bfloat16")
  # FGMA's selection stays fp32 in a bf16 model: every top-k ranks float32 scores.
  top_k = re.findall(r'"chlo\.top_k" [^\n]*?: \(tensor<([^>]*)>', text)
  assert top_k and all(t.endswith("xf32") for t in top_k), top_k
