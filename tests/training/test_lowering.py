"""Beyond data parallelism, checked on this CPU: the sharded stage-1 / stage-2 train steps on a
(data=4, model=2) mesh of 8 fake devices lower for GPU and TPU, and one step there equals
the 1-device step; the inference program (fp32 and bf16) lowers for GPU and TPU."""
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

# One real stage-1 step on the (4, 2) mesh against the same step on one device.
import functools
import numpy as np
from dealthdr_jax.training import sharding, toy_data, train, train_state
cfg = dealthdr_2exp.get_config("size=tiny")
cfg.batch_size, cfg.data.crop = 4, 32
cfg.optim.warmup_steps = 0  # A non-zero learning rate at the first step.
rules = ((r"kernel$", (None, None, None, "model")),)
model = train.check_config(cfg)
tx = train_state.make_optimizer(cfg)
params = train.initial_params(model, 0)
samples = [toy_data.sample(0, i, frames=3, crop=32) for i in range(4)]
batch = {k: np.stack([s[k] for s in samples]) for k in ("frames", "stops", "hdr", "flow")}
batch["valid"] = np.ones(batch["flow"].shape[:-1], np.float32)

def one_step(mesh):
  init = lambda: params
  _, shardings = train_state.abstract_state(init, tx, mesh, rules)
  with jax.set_mesh(mesh):
    state = jax.jit(lambda p: train_state.create(p, tx), out_shardings=shardings)(params)
    step = jax.jit(functools.partial(train.stage1_step, model=model, tx=tx, config=cfg,
                                     ratio=0.25),
                   in_shardings=(shardings, sharding.batch_sharding(mesh)),
                   out_shardings=(shardings, sharding.replicated(mesh)))
    new, metrics = step(state, jax.device_put(batch, sharding.batch_sharding(mesh)))
  kernel = new.params["encoder"]
  split = [str(x.sharding.spec) for x in jax.tree.leaves(new.params)
           if "model" in str(x.sharding.spec)]
  values = metrics.compute()
  return (jax.device_get(new.params), float(values["loss"]), float(values["grad_norm"]),
          len(split))

auto = (jax.sharding.AxisType.Auto,) * 2
mesh8 = sharding.make_mesh((4, 2), ("data", "model"))
mesh1 = jax.make_mesh((1, 1), ("data", "model"), devices=jax.devices()[:1], axis_types=auto)
p8, loss8, grad8, split8 = one_step(mesh8)
p1, loss1, grad1, _ = one_step(mesh1)
# Parameter updates of both runs, in units of the learning rate (Adam's first step is about
# lr * sign(gradient), so entries whose gradient is ~0 may differ by rounding alone).
lr = float(cfg.optim.lr)
d8, d1 = (np.concatenate([np.ravel(a - b) for a, b in zip(jax.tree.leaves(p),
                                                          jax.tree.leaves(params))]) / lr
          for p in (p8, p1))
gap = np.abs(d8 - d1)
out["step"] = {"loss8": loss8, "loss1": loss1, "grad8": grad8, "grad1": grad1,
               "split_leaves": split8, "moved": float(np.max(np.abs(d1))),
               "update_gap_median": float(np.median(gap)),
               "update_gap_share_over_1pct": float(np.mean(gap > 0.01))}
print(json.dumps(out))
"""


def test_sharded_train_steps_lower_and_match_one_device():
  env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} "
                                   "--xla_force_host_platform_device_count=8",
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
  step = out["step"]
  print("one step, (data=4, model=2) mesh vs 1 device:", step)
  assert step["split_leaves"] > 10  # Kernels really are split over `model` ...
  assert step["moved"] > 0.5  # ... the step moves parameters by about the learning rate ...
  # ... and the sharded step computes what one device computes: loss, gradient norm, and
  # the updates (in learning-rate units) but for a few near-zero-gradient entries.
  assert abs(step["loss8"] - step["loss1"]) <= 1e-5 * abs(step["loss1"]), step
  assert abs(step["grad8"] - step["grad1"]) <= 1e-4 * abs(step["grad1"]), step
  assert step["update_gap_median"] < 1e-4 and step["update_gap_share_over_1pct"] < 0.01, step


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
