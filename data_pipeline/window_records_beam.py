"""`dealthdr synth --format array_record --beam`: the same shards, rendered on Apache Beam.

For data sets beyond one machine. The pipeline is `Create(shard jobs) → Reshuffle →
render one shard file each`; a worker renders its shard to a local temporary ArrayRecord
file (ArrayRecord writes local files only) and copies it through Beam's `FileSystems` to
`out`, so `out` may be a local folder, `gs://…`, `s3://…` or `hdfs://…` (with that Beam
file-system extra installed). The records are `window_records.render_records`' — a shard is a
pure function of (config, seed, its record range), so the output is byte-identical to
`window_records.write_shards` of the same plan, whatever the runner or its parallelism.

Runners: DirectRunner here (`--beam-options "--runner=DirectRunner
--direct_num_workers=8 --direct_running_mode=multi_processing"`); Dataflow, Flink or Spark
with their usual options, unchanged (workers need this package: `--setup_file
./setup.py` or a container image). Needs the `beam` extra (`pip install -e '.[beam]'`);
no TensorFlow. Training reads shards from a local or mounted folder (`window_records.ShardReader`).
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any, Sequence

from data_pipeline import simulator as sim_lib
from data_pipeline import window_records

INSTALL_HINT = "Apache Beam is not installed: pip install -e '.[beam]'"
COPY_CHUNK = 16 * 2**20


def _beam():
  try:
    import apache_beam as beam  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{INSTALL_HINT} ({e})") from None
  return beam


def _join(out: str, name: str) -> str:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  return FileSystems.join(out, name)


def _write_bytes(path: str, data: bytes) -> None:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  with FileSystems.create(path) as f:
    f.write(data)


def _copy_local_to(local: str, dest: str) -> None:
  """Copies a local file to `dest` on any Beam file system; the final name appears only
  when the copy is complete (written under a temporary name, then renamed)."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  tmp = dest + f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
  with open(local, "rb") as src, FileSystems.create(tmp) as dst:
    while chunk := src.read(COPY_CHUNK):
      dst.write(chunk)
  if FileSystems.exists(dest):
    FileSystems.delete([dest])
  FileSystems.rename([tmp], [dest])


def render_shard_job(job: tuple[str, dict, int, int, int]) -> tuple[str, int]:
  """(destination, config dict, seed, start, stop) → (destination, bytes)."""
  dest, config, seed, start, stop = job
  with tempfile.TemporaryDirectory(prefix="dealthdr-shard-") as tmp:
    local = os.path.join(tmp, "shard" + window_records.SUFFIX)
    size = window_records.write_shard_file(local, sim_lib.SimulatorConfig.from_dict(config), seed,
                                   start, stop)
    _copy_local_to(local, dest)
  return dest, size


def write_shards_beam(out: str, config: sim_lib.SimulatorConfig, *, seed: int,
                      num_records: int, num_shards: int | None = None,
                      beam_options: Sequence[str] = ("--runner=DirectRunner",),
                      overwrite: bool = False) -> dict[str, Any]:
  """Renders the plan's shards on Beam and writes `shards.json`; returns the metadata.

  A local `out` gets `window_records.write_shards`' folder checks (resume of the same plan, an
  error for another one unless `overwrite`); a remote `out` is written as given.
  """
  beam = _beam()
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
  plan = window_records.ShardPlan(config, int(seed), int(num_records),
                          int(num_shards or window_records.default_num_shards(num_records, 1)))
  local = "://" not in str(out)
  if local:
    todo = window_records.prepare_folder(pathlib.Path(out), plan, overwrite)
  else:
    todo = list(range(plan.num_shards))
  out = str(out)
  jobs = [(_join(out, plan.file_name(k)), config.to_dict(), plan.seed, *plan.bounds(k))
          for k in todo]
  meta_path = _join(out, window_records.META_NAME)
  if jobs:
    _write_bytes(meta_path, json.dumps(plan.meta(complete=False), indent=1).encode())
    with beam.Pipeline(options=PipelineOptions(list(beam_options))) as p:
      _ = (p | "Jobs" >> beam.Create(jobs)
           | "Spread" >> beam.Reshuffle()
           | "Render" >> beam.Map(render_shard_job))
  sizes = [m.size_in_bytes for k in range(plan.num_shards)
           for m in FileSystems.match([_join(out, plan.file_name(k))])[0].metadata_list]
  if len(sizes) != plan.num_shards:
    raise RuntimeError(f"the Beam pipeline finished but {out} holds {len(sizes)} of "
                       f"{plan.num_shards} shard files")
  meta = plan.meta(complete=True, total_bytes=int(sum(sizes)))
  _write_bytes(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
  return meta
