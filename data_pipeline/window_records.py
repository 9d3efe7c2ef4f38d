"""Pre-rendered training shards: simulator windows in ArrayRecord files, read by grain.

Rendering a training window costs the camera simulator ~0.1–0.3 s of one CPU core (motion
blur integrates up to 24 sub-frames); an accelerator host's step wants hundreds of windows
a second. `dealthdr synth --format array_record` renders them once, in parallel
(`write_shards`, local processes; `window_records_beam.write_shards_beam` on Apache Beam), and
training reads them with `data.source='array_record'` (`make_shard_dataset`).

A shard folder DIR holds:
  shards.json                        what was rendered: format version, the simulator
                                     config, seed, record count, shard files, bytes; written
                                     first with "complete": false, set true at the end;
  train-SSSSS-of-NNNNN.array_record  records [start, stop) of the plan: record i is the
                                     un-augmented window of sample i, i.e.
                                     `pipeline.RenderSample(config, seed, NO_AUGMENT)(i)`,
                                     a pure function of (config, seed, i).
Each shard file is written under a temporary name and renamed when complete, so a killed
run leaves only whole shards; running the same command again renders only the missing
ones (a different plan in the same folder is an error unless `overwrite`).

Record encoding (`encode` / `decode`): b"DHS1", a little-endian uint32 header length, a
JSON header [(key, dtype, shape, codec, offset, nbytes)], then the buffers. Codecs: "raw";
"codes" for LDR frames, stored as their integer code values (uint8 for ≤ 8 bits, else
uint16) when that round-trips bit-exactly (it does for the simulator's quantiser), which
halves or quarters their size; "bits" for boolean masks (np.packbits). A 256² 3-frame
window takes ~2.9 MB (float32 GT radiance and flow dominate).

Reading: global sample j (the same stream positions the on-the-fly source uses) reads
record `perm_e[j mod n]` of epoch e = j // n (identity in epoch 0, a fixed permutation from
(seed, e) afterwards) and augments it with the augmentation stream of (seed, j). With
shards rendered at the training crop and the training seed, the first n samples are
therefore exactly the on-the-fly source's; later epochs revisit records with new crops,
flips and time reversal. Iterators checkpoint (`get_state` / `set_state`) as grain's do.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import secrets
import struct
import sys
import time
from concurrent import futures
from typing import Any, Callable

import grain
import numpy as np

from data_pipeline import pipeline
from data_pipeline import simulator as sim_lib

FORMAT = "dealthdr-shards"
VERSION = 1
META_NAME = "shards.json"
MAGIC = b"DHS1"
SUFFIX = ".array_record"
# Records per shard file when the shard count is not given.
RECORDS_PER_SHARD = 1024


class ShardError(ValueError):
  """A shard folder that cannot be read as asked (the message says which file and why)."""


# --------------------------------------------------------------------------- encoding


def _frames_as_codes(frames: np.ndarray, bits: int) -> np.ndarray | None:
  """Integer code values of quantised LDR frames, or None if they do not round-trip."""
  if not 1 <= bits <= 16:
    return None
  scale = np.float32(2**bits - 1)
  codes = np.rint(frames * scale)
  dtype = np.uint8 if bits <= 8 else np.uint16
  codes = codes.astype(dtype)
  if not np.array_equal(codes.astype(np.float32) / scale, frames):
    return None
  return codes


def encode(sample: dict[str, Any]) -> bytes:
  """One window dict (NumPy arrays and scalars) → bytes (module docstring)."""
  header, buffers, offset = [], [], 0
  bits = int(sample["bits"]) if "bits" in sample else 0
  for key in sorted(sample):
    value = np.asarray(sample[key])
    codec, stored, extra = "raw", value, None
    if key == "frames" and value.dtype == np.float32:
      codes = _frames_as_codes(value, bits)
      if codes is not None:
        codec, stored, extra = "codes", codes, bits
    elif value.dtype == np.bool_ and value.size > 8:
      codec, stored = "bits", np.packbits(value.reshape(-1))
    data = np.ascontiguousarray(stored).tobytes()
    header.append({"key": key, "dtype": value.dtype.str, "shape": list(value.shape),
                   "codec": codec, "stored": stored.dtype.str, "offset": offset,
                   "nbytes": len(data), **({"bits": extra} if extra is not None else {})})
    buffers.append(data)
    offset += len(data)
  head = json.dumps(header, separators=(",", ":")).encode()
  return b"".join([MAGIC, struct.pack("<I", len(head)), head] + buffers)


def decode(record: bytes) -> dict[str, np.ndarray]:
  """bytes from `encode` → the window dict (arrays own their memory, writable)."""
  if record[:4] != MAGIC:
    raise ShardError(f"not a dealthdr shard record (starts with {record[:4]!r}, expected "
                     f"{MAGIC!r})")
  (n,) = struct.unpack("<I", record[4:8])
  header = json.loads(record[8:8 + n])
  body = memoryview(record)[8 + n:]
  out = {}
  for item in header:
    raw = body[item["offset"]:item["offset"] + item["nbytes"]]
    stored = np.frombuffer(raw, dtype=np.dtype(item["stored"]))
    shape, dtype = tuple(item["shape"]), np.dtype(item["dtype"])
    if item["codec"] == "codes":
      value = stored.astype(np.float32) / np.float32(2**int(item["bits"]) - 1)
    elif item["codec"] == "bits":
      value = np.unpackbits(stored, count=math.prod(shape)).astype(bool)
    else:
      value = stored.copy()
    value = value.astype(dtype, copy=False).reshape(shape)
    out[item["key"]] = value if shape else value[()]
  return out


# --------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class ShardPlan:
  """What a shard folder holds: sample i of (config, seed), i < num_records, in files."""
  config: sim_lib.SimulatorConfig
  seed: int
  num_records: int
  num_shards: int

  def __post_init__(self):
    if self.num_records < 1:
      raise ValueError(f"--clips (records) must be ≥ 1, got {self.num_records}")
    if not 1 <= self.num_shards <= self.num_records:
      raise ValueError(f"shard count must be in [1, records={self.num_records}], got "
                       f"{self.num_shards}")

  def file_name(self, k: int) -> str:
    return f"train-{k:05d}-of-{self.num_shards:05d}{SUFFIX}"

  def bounds(self, k: int) -> tuple[int, int]:
    """[start, stop) record range of shard k (contiguous, sizes differ by at most one)."""
    per, extra = divmod(self.num_records, self.num_shards)
    start = k * per + min(k, extra)
    return start, start + per + (1 if k < extra else 0)

  def meta(self, complete: bool, total_bytes: int | None = None) -> dict[str, Any]:
    """The `shards.json` content (JSON types: lists, not tuples)."""
    return json.loads(json.dumps({"format": FORMAT, "version": VERSION, "complete": complete,
            "simulator": self.config.to_dict(), "seed": self.seed,
            "num_records": self.num_records, "num_shards": self.num_shards,
            "files": [self.file_name(k) for k in range(self.num_shards)],
            "records_per_file": [b - a for a, b in map(self.bounds, range(self.num_shards))],
            "pattern": self.config.pattern, "window": self.config.num_frames,
            "size": list(self.config.size), "bytes": total_bytes,
            "encoding": "data_pipeline.window_records.encode"}))

  def same_as(self, meta: dict[str, Any]) -> bool:
    mine = self.meta(False)
    keys = ("format", "version", "simulator", "seed", "num_records", "num_shards")
    return all(mine[k] == meta.get(k) for k in keys)


def default_num_shards(num_records: int, workers: int) -> int:
  return max(1, min(num_records, max(workers, math.ceil(num_records / RECORDS_PER_SHARD))))


def render_records(config: sim_lib.SimulatorConfig, seed: int, start: int, stop: int):
  """Encoded records start … stop-1 of (config, seed), in order."""
  render = pipeline.RenderSample(config, seed, pipeline.NO_AUGMENT)
  for i in range(start, stop):
    yield encode(render(i))


def write_shard_file(path: str | os.PathLike, config: sim_lib.SimulatorConfig, seed: int,
                     start: int, stop: int) -> int:
  """Renders records [start, stop) into the ArrayRecord file `path` (written in place);
  returns its size in bytes."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  # group_size:1 → each record is its own chunk: random access reads one record.
  writer = array_record_module.ArrayRecordWriter(str(path), "group_size:1")
  try:
    for record in render_records(config, seed, start, stop):
      writer.write(record)
  finally:
    writer.close()
  return os.path.getsize(path)


def _shard_job(job: tuple[str, dict, int, int, int]) -> tuple[str, int]:
  """(final path, config dict, seed, start, stop) → (final path, bytes); atomic rename."""
  final, config, seed, start, stop = job
  final = pathlib.Path(final)
  tmp = final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}")
  try:
    size = write_shard_file(tmp, sim_lib.SimulatorConfig.from_dict(config), seed, start, stop)
    os.replace(tmp, final)
  finally:
    tmp.unlink(missing_ok=True)
  return str(final), size


def _write_json(path: pathlib.Path, data: dict) -> None:
  tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
  tmp.write_text(json.dumps(data, indent=1) + "\n")
  os.replace(tmp, path)


def prepare_folder(out: pathlib.Path, plan: ShardPlan, overwrite: bool) -> list[int]:
  """Checks `out` against `plan` and returns the shard indices still to render.

  An empty or missing folder: all. The same plan, incomplete: the missing shards (resume).
  The same plan, complete: none (nothing to do). Another plan or other files: an error
  unless `overwrite`, which removes the old shard files and metadata first.
  """
  meta_path = out / META_NAME
  if out.exists() and not out.is_dir():
    raise FileExistsError(f"--out {out} exists and is not a folder")
  old = None
  if meta_path.exists():
    try:
      old = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
      raise ShardError(f"{meta_path}: not valid JSON ({e})") from None
  others = sorted(p.name for p in out.iterdir()
                  if p.name != META_NAME and not p.name.startswith(".")) if out.is_dir() else []
  if old is not None and plan.same_as(old) and not overwrite:
    return [k for k in range(plan.num_shards) if not (out / plan.file_name(k)).exists()]
  if (old is not None or others) and not overwrite:
    what = ("shards of another plan (config, seed, records or shard count differ)"
            if old is not None else f"other files ({', '.join(others[:3])})")
    raise FileExistsError(f"--out {out} holds {what}; use --overwrite to replace them, or "
                          "another folder")
  if overwrite and out.is_dir():
    for p in out.glob(f"*{SUFFIX}"):
      p.unlink()
    meta_path.unlink(missing_ok=True)
  out.mkdir(parents=True, exist_ok=True)
  return list(range(plan.num_shards))


def write_shards(out: str | os.PathLike, config: sim_lib.SimulatorConfig, *, seed: int,
                 num_records: int, workers: int = 1, num_shards: int | None = None,
                 overwrite: bool = False,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Renders `num_records` windows of (config, seed) into `out` with `workers` processes;
  returns the final metadata (also `out/shards.json`). Resumes an interrupted run of the
  same plan."""
  if workers < 1:
    raise ValueError(f"--workers must be ≥ 1, got {workers}")
  out = pathlib.Path(out)
  plan = ShardPlan(config, int(seed),
                   int(num_records), int(num_shards or default_num_shards(num_records, workers)))
  todo = prepare_folder(out, plan, overwrite)
  if todo:
    _write_json(out / META_NAME, plan.meta(complete=False))
  jobs = [(str(out / plan.file_name(k)), config.to_dict(), plan.seed, *plan.bounds(k))
          for k in todo]
  start, done = time.perf_counter(), 0
  todo_records = sum(b - a for _, _, _, a, b in jobs)

  def report(stop: int) -> None:
    nonlocal done
    done += stop
    if log:
      elapsed = time.perf_counter() - start
      eta = elapsed / done * (todo_records - done)
      log(f"{done}/{todo_records} records ({done / elapsed:.1f}/s), ETA {eta:.0f} s")

  if workers == 1 or len(jobs) <= 1:
    for job in jobs:
      _shard_job(job)
      report(job[4] - job[3])
  elif jobs:
    # spawn: a forked child of a process that imported JAX or grain threads can hang.
    import multiprocessing  # pylint: disable=g-import-not-at-top
    with futures.ProcessPoolExecutor(min(workers, len(jobs)),
                                     mp_context=multiprocessing.get_context("spawn")) as ex:
      sizes = {ex.submit(_shard_job, job): job for job in jobs}
      for fut in futures.as_completed(sizes):
        fut.result()
        job = sizes[fut]
        report(job[4] - job[3])
  total = sum((out / plan.file_name(k)).stat().st_size for k in range(plan.num_shards))
  meta = plan.meta(complete=True, total_bytes=total)
  _write_json(out / META_NAME, meta)
  return meta


# --------------------------------------------------------------------------- reading


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
  """The metadata of a complete shard folder, every listed file checked to exist."""
  directory = pathlib.Path(directory)
  path = directory / META_NAME
  if not directory.is_dir():
    raise ShardError(f"shard folder {directory} does not exist")
  if not path.exists():
    raise ShardError(f"{directory} has no {META_NAME}: not a shard folder written by "
                     "`dealthdr synth --format array_record`")
  try:
    meta = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ShardError(f"{path}: not valid JSON ({e})") from None
  if meta.get("format") != FORMAT or meta.get("version") != VERSION:
    raise ShardError(f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                     f"expected {FORMAT!r} version {VERSION}")
  if not meta.get("complete"):
    raise ShardError(f"{directory}: the shards are incomplete (an interrupted synth run); "
                     "run the same `dealthdr synth` command again to finish them")
  missing = [f for f in meta["files"] if not (directory / f).exists()]
  if missing:
    raise ShardError(f"{directory}: shard files listed in {META_NAME} are missing: "
                     f"{', '.join(missing[:3])}")
  return meta


class ShardReader:
  """Random access to the decoded records of a shard folder (a grain data source).

  Picklable: each process opens the files on first access.
  """

  def __init__(self, directory: str | os.PathLike):
    self.directory = pathlib.Path(directory)
    self.meta = read_meta(self.directory)
    self.paths = [str(self.directory / f) for f in self.meta["files"]]
    self._source = None

  def __len__(self) -> int:
    return int(self.meta["num_records"])

  def _open(self):
    if self._source is None:
      self._source = grain.sources.ArrayRecordDataSource(self.paths)
      if len(self._source) != len(self):
        raise ShardError(f"{self.directory}: the files hold {len(self._source)} records, "
                         f"{META_NAME} says {len(self)}")
    return self._source

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    try:
      return decode(self._open()[int(index)])
    except ShardError as e:
      raise ShardError(f"{self.directory}: record {index}: {e}") from None

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_source"] = None
    return state

  def __repr__(self) -> str:
    return f"ShardReader({str(self.directory)!r}, {len(self)} records)"


class ReadSample:
  """Global sample index j → augmented training sample (module docstring)."""

  def __init__(self, reader: ShardReader, seed: int, augment: pipeline.Augment):
    self.reader, self.seed, self.augment = reader, int(seed), augment
    self._perm: tuple[int, np.ndarray] | None = None

  def record_of(self, j: int) -> int:
    n = len(self.reader)
    epoch, k = divmod(int(j), n)
    if epoch == 0:
      return k
    if self._perm is None or self._perm[0] != epoch:
      self._perm = (epoch, np.random.default_rng([self.seed, 7, epoch]).permutation(n))
    return int(self._perm[1][k])

  def __call__(self, j: int) -> dict:
    sample = self.reader[self.record_of(j)]
    _, aug_rng = pipeline.sample_rngs(self.seed, j)
    sample = self.augment(sample, aug_rng)
    sample["index"] = np.int64(j)
    return sample


def check_compatible(meta: dict[str, Any], *, pattern: str, window: int, crop: int,
                     where: str) -> None:
  """Errors when shards cannot feed a model of this pattern, window and crop."""
  problems = []
  if meta["pattern"] != pattern:
    problems.append(f"pattern {meta['pattern']!r}, the config's is {pattern!r}")
  if int(meta["window"]) != int(window):
    problems.append(f"windows of {meta['window']} frames, the model reads {window}")
  h, w = meta["size"]
  if crop > min(h, w):
    problems.append(f"size {h}x{w}, smaller than data.crop={crop}")
  if problems:
    raise ShardError(f"{where}: shards hold " + "; ".join(problems)
                     + " (render them with `dealthdr synth --format array_record --config` "
                     "and this training config)")


def make_shard_dataset(directory: str | os.PathLike, *, seed: int, batch_size: int,
                       shard_index: int = 0, shard_count: int = 1, worker_count: int = 0,
                       crop: tuple[int, int] | None = None, augment: bool = True,
                       num_threads: int = 8, prefetch: int = 16,
                       worker_buffer_size: int = 2) -> grain.IterDataset:
  """Batched training data read from a shard folder, for one process.

  Same batch layout and process sharding as `pipeline.make_synthetic_dataset` (global
  sample `shard_index + j·shard_count` is this process's j-th), an infinite stream.

  Args:
    directory: a complete shard folder.
    seed: the augmentation seed (and the epoch permutations'): the training data seed.
    batch_size: per-process batch size.
    shard_index, shard_count: this process's share (process index, process count).
    worker_count: decoding processes (0 = this process, with `num_threads` reader threads).
    crop: (H, W) random crop; None or the stored size = no crop.
    augment: random flips and time reversal.
  """
  reader = ShardReader(directory)
  size = tuple(reader.meta["size"])
  if crop is not None and tuple(crop) == size:
    crop = None  # Same draws as the on-the-fly source, which renders at the crop size.
  aug = pipeline.Augment(crop=crop, flips=augment, time_reversal=augment)
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}")
  ds = grain.MapDataset.range(pipeline.INFINITE_RECORDS)
  if shard_count > 1:
    ds = ds[shard_index::shard_count]
  ds = ds.map(ReadSample(reader, seed, aug))
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=pipeline.stack)
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                            prefetch_buffer_size=prefetch))
  if worker_count > 0:
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count,
                                                     per_worker_buffer_size=worker_buffer_size))
  return it


def print_progress(message: str) -> None:
  print(f"dealthdr synth: {message}", file=sys.stderr, flush=True)


def summary(meta: dict[str, Any]) -> str:
  mb = (meta.get("bytes") or 0) / 2**20
  return (f"{meta['num_records']} windows of {meta['window']} frames at "
          f"{meta['size'][0]}x{meta['size'][1]} ({meta['pattern']}) in {meta['num_shards']} "
          f"shard file(s), {mb:.1f} MiB ({mb / meta['num_records']:.2f} MiB/window)")

