"""Training-step throughput of a config on this machine's devices (`tools/device_check.py`).

`measure_train_step(config)` builds the step as `train.py` does (the config's stage, mesh,
parameter shardings, optimizer; the state donated), feeds it a random batch of the
config's global shape already on the devices (so the input pipeline is not in the
figure), and times steady-state steps. Compare its samples/s with the input pipeline's
(`input_pipeline.samples_per_second`) to see whether data keeps up.
"""
from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections

from dealthdr_jax.training import lowering
from dealthdr_jax.training import train_state


def random_batch(config: ml_collections.ConfigDict, window: int, mesh, seed: int = 0
                 ) -> dict[str, jax.Array]:
  """A global batch of `lowering.abstract_batch`'s shapes, made on the devices: frames in
  [0, 1], alternating stops 0/3, positive radiance, flow within ±4 px, all flow valid."""
  abstract = lowering.abstract_batch(config, window, mesh)
  keys = dict(zip(sorted(abstract), jax.random.split(jax.random.key(seed), len(abstract))))

  def make():
    out = {}
    for name, spec in abstract.items():
      if name == "stops":
        out[name] = jnp.broadcast_to((jnp.arange(spec.shape[1]) % 2) * 3.0, spec.shape)
      elif name == "valid":
        out[name] = jnp.ones(spec.shape, spec.dtype)
      elif name == "flow":
        out[name] = jax.random.uniform(keys[name], spec.shape, spec.dtype, -4.0, 4.0)
      elif name == "hdr":
        out[name] = jax.random.uniform(keys[name], spec.shape, spec.dtype, 0.0, 8.0)
      else:
        out[name] = jax.random.uniform(keys[name], spec.shape, spec.dtype)
    return out

  return jax.jit(make, out_shardings={k: v.sharding for k, v in abstract.items()})()


def measure_train_step(config: ml_collections.ConfigDict, *, steps: int = 5, warmup: int = 1,
                       ratio: float | None = None) -> dict[str, float | None]:
  """Steady-state time of the config's train step at its global batch and crop.

  Returns steps/s, samples/s, ms per step (median), compile seconds, XLA's FLOPs per step
  and its memory estimate in MiB: arguments + temporaries + outputs not aliased to a
  donated argument (the new state reuses the old one's buffers); None where the backend
  does not say.
  """
  model, mesh, tx, init, _, state_shardings, step_fn = lowering.step_setup(config)
  ratio = float(config.attn_ratio if ratio is None else ratio)
  with jax.set_mesh(mesh):
    state = jax.jit(lambda: train_state.create(init(), tx), out_shardings=state_shardings)()
    batch = random_batch(config, model.window, mesh)
    step = jax.jit(functools.partial(step_fn, model=model, tx=tx, config=config, ratio=ratio),
                   donate_argnums=(0,))
    start = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
      state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics) if warmup else state)
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      state, metrics = compiled(state, batch)
      jax.block_until_ready(state)
      times.append(time.perf_counter() - start)
  cost = compiled.cost_analysis()
  cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
  try:
    m = compiled.memory_analysis()
    mem = (m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes
           - m.alias_size_in_bytes) / 2**20
  except Exception:  # pylint: disable=broad-except  Not every backend implements it.
    mem = None
  ms = 1e3 * statistics.median(times)
  return {"steps_per_s": 1e3 / ms, "samples_per_s": config.batch_size * 1e3 / ms,
          "ms_per_step": ms, "compile_s": compile_s,
          "gflops_per_step": cost.get("flops", float("nan")) / 1e9,
          "xla_mem_mb": mem}
