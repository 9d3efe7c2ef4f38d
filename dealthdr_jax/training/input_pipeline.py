"""Training and validation data for `train.py`, chosen by `config.data.source`.

Every source yields per-process batches of NumPy arrays from a checkpointable grain
iterator (`get_state` / `set_state`), sharded by process:
  frames [b, T, H, W, 3] float32 in [0, 1], stops [b, T] float32, and where there is
  ground truth hdr [b, H, W, 3] float32 (§3 units) and flow [b, T, H, W, 2] float32
  (reference → frame t, zero for the reference).

Sources:
  "synthetic"  `data_pipeline.pipeline` (the camera simulator); in stage 2 with
               `data.other_camera`, clips from a camera unlike stage 1's, GT dropped.
  "array_record"  windows pre-rendered by the simulator (`dealthdr synth --format
               array_record`, `data_pipeline.window_records`) under `data.records`: read, not
               rendered, so an accelerator host is not held back by the CPU simulator.
  "clips"      real clip folders / videos under `data.clips` (stage 2; no GT): random
               windows (clip edges as in `clips.window_indices`) and random crops.
  "toy"        `toy_data`: a sliding texture (tests; no simulator needed).
The validation set is always synthetic with GT (toy for the toy source; for
"array_record" the shards' own simulator config, on its held-out sources) and fixed by
`data.val_seed`.
"""
from __future__ import annotations

import functools
import pathlib
from typing import Any, Iterator

import grain
import ml_collections
from absl import flags
import numpy as np

from data_pipeline import clips as clips_lib
from dealthdr_jax.training import toy_data

SOURCES = ("synthetic", "array_record", "clips", "toy")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
# Keys passed on to the device; anything else a source yields stays on the host.
DEVICE_KEYS = ("frames", "stops", "hdr", "flow", "valid")


# Data keys that only some sources read (their defaults are empty): set under another
# source they would be ignored without a word, so that is an error.
SOURCE_ONLY_KEYS = {"source_dir": ("synthetic",), "clips": ("clips",), "exposures": ("clips",),
                    "records": ("array_record",), "camera_pipeline_fraction": ("synthetic",)}


class DataError(ValueError):
  """Bad data configuration or data (raised before any compute)."""


def _pipeline_module():
  try:
    from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError(f"data.source='synthetic' needs data_pipeline.pipeline, which could "
                    f"not be imported ({e}); use data.source='toy' for a smoke run") from e
  return pipeline


def _window(config) -> int:
  return 2 * int(config.model.radius) + 1


def find_clips(root: str) -> list[pathlib.Path]:
  """Clip folders and video files under `root` (or `root` itself if it is one clip)."""
  if not root:
    raise DataError("data.source='clips' needs data.clips: a folder of clip folders or "
                    "videos")
  root_path = pathlib.Path(root)
  if not root_path.is_dir():
    raise DataError(f"data.clips={root!r} is not a folder")
  try:
    clips_lib.open_clip(root_path)
    return [root_path]
  except (clips_lib.ClipError, FileNotFoundError):
    pass
  found = sorted(p for p in root_path.iterdir()
                 if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES)
  if not found:
    raise DataError(f"data.clips={root!r} holds no clip folders or video files")
  return found


def check_clips(config) -> list[tuple[str, int]]:
  """Opens every clip (headers only) → [(path, n_frames)]; raises DataError naming the bad one."""
  crop = int(config.data.crop)
  exposures = config.data.exposures or None
  result = []
  for path in find_clips(config.data.clips):
    if path.is_file() and not exposures:
      raise DataError(f"{path} is a video: set data.exposures to its exposure pattern "
                      f"(e.g. '0,3') or to a file with one number per frame")
    try:
      with clips_lib.open_clip(path, exposures if path.is_file() else None,
                               config.model.get("response")) as clip:
        n, size = len(clip), clip.size
    except (OSError, ValueError) as e:
      raise DataError(f"unreadable clip {path}: {e}") from e
    if min(size) < crop:
      raise DataError(f"clip {path} is {size[0]}x{size[1]}, smaller than data.crop={crop}")
    if config.stage == 2 and heldout_start(size[1], config) < crop:
      raise DataError(
          f"clip {path} is {size[1]} pixels wide: with data.heldout_fraction="
          f"{config.data.get('heldout_fraction', 0)} and data.crop={crop} it needs at least "
          f"{2 * crop} (a training region and a held-out strip each as wide as the crop); "
          "use smaller crops or data.heldout_fraction=0 (no held-out criterion)")
    result.append((str(path), n))
  return result


def check_records(config) -> dict:
  """The metadata of `data.records`, checked against the model and crop (DataError)."""
  from data_pipeline import window_records  # pylint: disable=g-import-not-at-top
  if not config.data.get("records"):
    raise DataError("data.source='array_record' needs data.records: a folder written by "
                    "`dealthdr synth --format array_record --config <this config>`")
  try:
    meta = window_records.read_meta(config.data.records)
    window_records.check_compatible(meta, pattern=config.pattern, window=_window(config),
                            crop=int(config.data.crop),
                            where=f"data.records={config.data.records!r}")
  except window_records.ShardError as e:
    raise DataError(str(e)) from None
  return meta


def check(config) -> None:
  """Validates the data section against the model; raises DataError before any compute."""
  source = config.data.source
  if source not in SOURCES:
    raise DataError(f"unknown data.source {source!r}; expected one of {SOURCES}")
  if source == "clips" and config.stage != 2:
    raise DataError("data.source='clips' has no ground truth; it needs stage=2")
  for key, readers in SOURCE_ONLY_KEYS.items():
    if config.data.get(key) and source not in readers:
      raise DataError(
          f"data.{key}={config.data[key]!r} has no effect: only data.source="
          f"{' or '.join(map(repr, readers))} reads it, and this config's data.source is "
          f"{source!r}" + (" (the tiny preset trains on the built-in toy texture)"
                           if source == "toy" else "")
          + f"; add --config.data.source={readers[0]} or drop data.{key}")
  if config.data.get("curriculum") and source != "synthetic":
    raise DataError(f"data.curriculum has no effect: only data.source='synthetic' reads it, "
                    f"and this config's data.source is {source!r}")
  min_gain = float(config.data.get("heldout_min_gain", 0.0))
  if not 0.0 <= min_gain < 1.0:
    raise DataError(f"data.heldout_min_gain={min_gain} must be in [0, 1): the relative "
                    "drop of the held-out criterion below the start's that a stage-2 step "
                    "needs to be exported instead of the starting model")
  if config.data.other_camera and config.stage != 2:
    raise DataError("data.other_camera=True has no effect in stage 1 (it simulates the "
                    "unpaired camera of stage 2); drop it or use a stage-2 config")
  if source == "synthetic":
    _pipeline_module()
    if config.data.source_dir:
      try:  # Validates the folder (readable HDR images, enough to hold some out) now.
        from data_pipeline import sources  # pylint: disable=g-import-not-at-top
        sources.ImageFolderSource(config.data.source_dir, split="train",
                                  num_val=int(config.data.num_val_sources))
      except (OSError, ValueError) as e:
        raise DataError(f"data.source_dir={config.data.source_dir!r}: {e}") from e
    if config.stage == 2 and config.data.other_camera and "other_camera_response" in config.data:
      from data_pipeline import camera  # pylint: disable=g-import-not-at-top
      try:
        camera.parse_response(config.data.other_camera_response)
      except ValueError as e:
        raise DataError(f"data.other_camera_response: {e}") from e
  if source == "clips":
    check_clips(config)
  if source == "array_record":
    _pipeline_module()
    check_records(config)


@functools.lru_cache(maxsize=16)
def _open(path: str, exposures: str | None, response: str | None):
  """Clips opened once per (worker) process, read with the model's response (`response`:
  what the clips are linearised and tone-calibrated with, whatever their meta.json says)."""
  return clips_lib.open_clip(path, exposures if pathlib.Path(path).is_file() else None,
                             response)


def heldout_start(width: int, config) -> int:
  """First column of a clip's held-out strip (stage 2): the right `data.heldout_fraction`
  of the frame, at least one crop wide; `width` when nothing is held out."""
  fraction = float(config.data.get("heldout_fraction", 0.0))
  if fraction <= 0:
    return width
  return width - max(int(config.data.crop), int(round(width * fraction)))


def _clip_window(record, rng: np.random.Generator, *, radius: int, crop: int,
                 exposures: str | None, response: str | None = None,
                 heldout_fraction: float = 0.0) -> dict[str, np.ndarray]:
  path, t = record
  clip = _open(path, exposures, response)
  frames, stops = clip.window(int(t), radius)
  h, w = frames.shape[1:3]
  # Training crops stay left of the held-out strip (`heldout_start`).
  right = w if heldout_fraction <= 0 else w - max(crop, int(round(w * heldout_fraction)))
  y = int(rng.integers(0, h - crop + 1))
  x = int(rng.integers(0, right - crop + 1))
  frames = frames[:, y:y + crop, x:x + crop]
  if rng.random() < 0.5:
    frames = frames[:, :, ::-1]
  return {"frames": np.ascontiguousarray(frames, np.float32),
          "stops": np.asarray(stops, np.float32)}


def _without_gt(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {"frames": sample["frames"], "stops": sample["stops"]}


def _finish(ds: grain.MapDataset, batch_size: int, worker_count: int) -> Iterator:
  ds = ds.batch(batch_size, drop_remainder=True)
  it = ds.to_iter_dataset()
  if worker_count > 0:
    # grain's workers read absl flags, which `dealthdr` (not absl.app.run) never parses.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return iter(it)


def make_train_iterator(config: ml_collections.ConfigDict, *, seed: int, batch_size: int,
                        shard_index: int = 0, shard_count: int = 1) -> Any:
  """A checkpointable iterator over this process's training batches.

  Args:
    config: the experiment config.
    seed: data seed (samples are a function of (seed, index)).
    batch_size: per-process batch.
    shard_index, shard_count: this process's shard (process index, process count).
  """
  source = config.data.source
  window = _window(config)
  crop = int(config.data.crop)
  if source == "toy":
    make = functools.partial(toy_data.sample, seed, frames=window, crop=crop,
                             pattern=config.pattern)
    ds = grain.MapDataset.range(2**31 - 1)[shard_index::shard_count].map(make)
    if config.stage == 2:
      ds = ds.map(_without_gt)
    return _finish(ds, batch_size, config.data.worker_count)
  if source == "clips":
    records = [(path, t) for path, n in check_clips(config) for t in range(n)]
    ds = grain.MapDataset.source(records).shuffle(seed=seed)[shard_index::shard_count]
    ds = ds.repeat(None).random_map(
        functools.partial(_clip_window, radius=int(config.model.radius), crop=crop,
                          exposures=config.data.exposures or None,
                          response=config.model.get("response"),
                          heldout_fraction=float(config.data.get("heldout_fraction", 0.0))),
        seed=seed)
    return _finish(ds, batch_size, config.data.worker_count)
  if source == "array_record":
    from data_pipeline import window_records  # pylint: disable=g-import-not-at-top
    check_records(config)
    return iter(window_records.make_shard_dataset(
        config.data.records, seed=seed, batch_size=batch_size, shard_index=shard_index,
        shard_count=shard_count, worker_count=config.data.worker_count, crop=(crop, crop)))
  pipeline = _pipeline_module()
  kwargs = {}
  if config.data.get("curriculum"):
    # (step, motion scale) → (first global sample index, scale): a step draws one global
    # batch, so the schedule is the same whatever the process count or a resume.
    kwargs["curriculum"] = tuple((int(step) * int(config.batch_size), float(scale))
                                 for step, scale in config.data.curriculum)
  if config.stage == 2 and config.data.other_camera:
    kwargs["other_camera"] = True
    if "other_camera_response" in config.data:  # Older configs: the simulator's default.
      kwargs["other_camera_response"] = config.data.other_camera_response
  return pipeline.make_synthetic_loader(
      config, seed=seed, batch_size=batch_size, shard_index=shard_index,
      shard_count=shard_count, worker_count=config.data.worker_count, **kwargs)


def make_val_batches(config: ml_collections.ConfigDict, *, batch_size: int,
                     shard_index: int = 0, shard_count: int = 1) -> list[dict[str, np.ndarray]]:
  """This process's share of the fixed validation set (with GT), in batches.

  The set has `data.val_size` windows, the same on every run; process p gets every
  shard_count-th of them, so the global batches are the same whatever the process count.
  """
  window = _window(config)
  crop = int(config.data.crop)
  n = int(config.data.val_size)
  if n % (batch_size * shard_count):
    n -= n % (batch_size * shard_count)
  if n <= 0:
    raise DataError(f"data.val_size={config.data.val_size} is smaller than one global "
                    f"batch ({batch_size * shard_count})")
  if config.data.source == "toy":
    samples = [toy_data.sample(config.data.val_seed, i, frames=window, crop=crop,
                               pattern=config.pattern) for i in range(n)]
  elif config.data.source == "array_record":
    from data_pipeline import simulator as sim_lib  # pylint: disable=g-import-not-at-top
    stored = sim_lib.SimulatorConfig.from_dict(check_records(config)["simulator"])
    samples = _pipeline_module().make_validation_set(
        stored.replace(size=(crop, crop)), seed=config.data.val_seed, size=n)
  else:
    pipeline = _pipeline_module()
    samples = pipeline.make_validation_set(config, seed=config.data.val_seed, size=n)
  samples = samples[shard_index::shard_count]
  batches = []
  for i in range(0, len(samples), batch_size):
    chunk = samples[i:i + batch_size]
    batches.append(device_batch({k: np.stack([s[k] for s in chunk]) for k in chunk[0]}))
  return batches


def make_heldout_batches(config: ml_collections.ConfigDict, *, batch_size: int,
                         shard_index: int = 0, shard_count: int = 1
                         ) -> list[dict[str, np.ndarray]]:
  """Stage 2's held-out windows (frames and stops only), in batches, this process's share.

  "clips": `data.heldout_windows` fixed crops from the held-out strip of the clips (frames
  spread evenly over each clip, centred vertically); "synthetic": that many windows of
  the training camera rendered with a seed of their own; "toy": toy windows of another
  seed. Empty when `data.heldout_windows` is 0.
  """
  n = int(config.data.get("heldout_windows", 0))
  n -= n % (batch_size * shard_count)
  if n <= 0:
    return []
  window, crop, seed = _window(config), int(config.data.crop), int(config.data.val_seed) + 1
  radius = int(config.model.radius)
  if config.data.source == "clips":
    clips = check_clips(config)
    samples = []
    for k in range(n):
      path, frames_in_clip = clips[k % len(clips)]
      per_clip = -(-n // len(clips))
      t = int(round((k // len(clips) + 0.5) * frames_in_clip / per_clip)) % frames_in_clip
      clip = _open(path, config.data.exposures or None, config.model.get("response"))
      frames, stops = clip.window(t, radius)
      h, w = frames.shape[1:3]
      y, x = (h - crop) // 2, heldout_start(w, config)
      samples.append({"frames": np.ascontiguousarray(frames[:, y:y + crop, x:x + crop],
                                                     np.float32),
                      "stops": np.asarray(stops, np.float32)})
  elif config.data.source == "toy":
    samples = [toy_data.sample(seed, i, frames=window, crop=crop, pattern=config.pattern)
               for i in range(n)]
  else:
    pipeline = _pipeline_module()
    sim = pipeline.as_config(config)
    if config.data.source == "synthetic" and config.data.get("other_camera"):
      from data_pipeline import simulator as sim_lib  # pylint: disable=g-import-not-at-top
      sim = sim_lib.stage2_camera(sim, config.data.get("other_camera_response",
                                                       sim_lib.STAGE2_RESPONSE))
    if config.data.source == "array_record":
      from data_pipeline import simulator as sim_lib  # pylint: disable=g-import-not-at-top
      sim = sim_lib.SimulatorConfig.from_dict(check_records(config)["simulator"]).replace(
          size=(crop, crop))
    samples = pipeline.make_validation_set(sim, seed=seed, size=n)
  samples = samples[shard_index::shard_count]
  return [device_batch({k: np.stack([s[k] for s in samples[i:i + batch_size]])
                        for k in ("frames", "stops")}, ground_truth=False)
          for i in range(0, len(samples), batch_size)]


def device_batch(batch: dict[str, Any], ground_truth: bool = True) -> dict[str, np.ndarray]:
  """The keys the step functions use, as float32 NumPy arrays.

  The simulator's `occlusion` [b, T, H, W] and `flow_exact` [b] become the flow-loss
  weights `valid` [b, T, H, W] (1 where the GT flow is exact and the pixel is visible).
  With `ground_truth=False` (stage 2) only frames and stops are kept.
  """
  if not ground_truth:
    return {k: np.asarray(batch[k], np.float32) for k in ("frames", "stops")}
  out = {k: np.asarray(batch[k], np.float32) for k in DEVICE_KEYS if k in batch}
  if "valid" not in out and "occlusion" in batch and "flow" in batch:
    valid = ~np.asarray(batch["occlusion"], bool)
    if "flow_exact" in batch:
      valid &= np.asarray(batch["flow_exact"], bool)[:, None, None, None]
    out["valid"] = valid.astype(np.float32)
  return out


def samples_per_second(iterator, batches: int, warmup: int = 1) -> dict[str, float]:
  """Throughput of a batch iterator: `warmup` batches (worker start-up, first reads) are
  drawn untimed, then `batches` timed. Returns samples/s, ms per batch and MB/s of arrays."""
  import time  # pylint: disable=g-import-not-at-top
  for _ in range(warmup):
    next(iterator)
  start, samples, nbytes = time.perf_counter(), 0, 0
  for _ in range(batches):
    batch = next(iterator)
    samples += len(batch["frames"])
    nbytes += sum(np.asarray(v).nbytes for v in batch.values())
  elapsed = time.perf_counter() - start
  return {"samples_per_s": samples / elapsed, "ms_per_batch": 1e3 * elapsed / batches,
          "mb_per_s": nbytes / elapsed / 2**20}
