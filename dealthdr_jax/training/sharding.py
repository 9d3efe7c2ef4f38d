"""Device mesh, shardings and multi-process setup, driven by the config's `mesh` section.

Sharding is data, not code paths (STYLE.md): the mesh shape and axis names come from the
config; parameters are replicated unless a `param_rules` entry splits them; batches are
split over the `data` axis. Nothing here uses pmap.
"""
from __future__ import annotations

import os
import re
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

# Environment variables whose presence means "this is one process of a multi-process
# job": jax.distributed.initialize() then reads the cluster from the environment.
# `DEALTHDR_DISTRIBUTED=1` forces it (launch/tpu_pod.sh: TPU pods are auto-detected by
# JAX from their metadata, not from the environment).
_MULTIPROCESS_ENV = ("DEALTHDR_DISTRIBUTED", "JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID",
                     "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS",
                     "OMPI_COMM_WORLD_SIZE")


def maybe_initialize_distributed() -> bool:
  """Calls `jax.distributed.initialize()` when the environment describes a cluster.

  `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` (launch/
  local_multiprocess.sh) are passed explicitly; SLURM, Open MPI and Cloud TPU are detected
  by JAX itself (`DEALTHDR_DISTRIBUTED=1` asks for that detection explicitly, e.g. on TPU
  pods). A `SLURM_JOB_ID` with one task is not a cluster. Must run before anything touches
  the devices. Returns True if it initialised.
  """
  if not any(k in os.environ for k in _MULTIPROCESS_ENV):
    return False
  if "JAX_COORDINATOR_ADDRESS" in os.environ:
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
        process_id=int(os.environ["JAX_PROCESS_ID"]))
    return True
  if (os.environ.get("DEALTHDR_DISTRIBUTED") != "1" and "SLURM_JOB_ID" in os.environ
      and int(os.environ.get("SLURM_NTASKS", "1")) <= 1):
    return False
  jax.distributed.initialize()
  return True


def make_mesh(shape: Sequence[int], axes: Sequence[str]) -> jax.sharding.Mesh:
  """A mesh over all devices; one -1 in `shape` takes the remaining devices.

  Raises:
    ValueError: if the axes lack `data`, or the shape does not match the device count.
  """
  shape, axes = tuple(int(s) for s in shape), tuple(axes)
  if DATA_AXIS not in axes:
    raise ValueError(f"mesh.axes must include {DATA_AXIS!r}, got {axes}")
  if len(shape) != len(axes):
    raise ValueError(f"mesh.shape {shape} and mesh.axes {axes} differ in length")
  n = jax.device_count()
  known = int(np.prod([s for s in shape if s != -1]))
  if shape.count(-1) > 1 or n % known:
    raise ValueError(f"mesh.shape {shape} does not fit {n} devices")
  shape = tuple(n // known if s == -1 else s for s in shape)
  if int(np.prod(shape)) != n:
    raise ValueError(f"mesh.shape {shape} has {int(np.prod(shape))} devices, but there "
                     f"are {n}")
  # Auto axes: the compiler propagates shardings through the model, which is written
  # without sharding annotations (explicit axes would reject e.g. its edge padding).
  return jax.make_mesh(shape, axes, axis_types=(jax.sharding.AxisType.Auto,) * len(axes))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def _path_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                  for k in path)


def tree_shardings(mesh, tree: Any, rules: Sequence[tuple[str, Sequence[str | None]]] = ()
                   ) -> Any:
  """NamedShardings for every leaf of `tree` (arrays or ShapeDtypeStructs).

  A leaf whose path ("params/encoder/conv0/kernel", ...) matches a rule's regex (first
  match wins) is split as that rule's PartitionSpec, if its shape divides; everything
  else is replicated. Optimizer and EMA copies of a parameter match the same rule
  because their paths end in the parameter's path.
  """
  compiled = [(re.compile(pattern), P(*spec)) for pattern, spec in rules]

  def one(path, leaf):
    name = _path_name(path)
    for pattern, spec in compiled:
      if pattern.search(name) and len(spec) <= len(np.shape(leaf)):
        dims = [mesh.shape[a] if isinstance(a, str) else 1 for a in spec]
        if all(d == 1 or s % d == 0 for s, d in zip(np.shape(leaf), dims)):
          return NamedSharding(mesh, spec)
    return replicated(mesh)
  return jax.tree_util.tree_map_with_path(one, tree)


def data_shard_count(mesh) -> int:
  return mesh.shape[DATA_AXIS]


def check_batch_size(global_batch: int, mesh) -> int:
  """The per-process batch, after checking the global batch splits over data and hosts."""
  shards = data_shard_count(mesh)
  procs = jax.process_count()
  if global_batch % shards or global_batch % procs:
    raise ValueError(f"batch_size {global_batch} must be a multiple of the data-parallel "
                     f"size {shards} and of the process count {procs}")
  return global_batch // procs


def make_global_batch(batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
  """Per-process numpy batch → global arrays split over `data` along axis 0."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}
