"""grain pipelines over the camera simulator.

Sample `i` of a synthetic dataset with seed `s` is a pure function of `(s, i)` and the
config: its random streams come from `np.random.SeedSequence([s, i])` (never from global
state), so it is the same whichever worker, shard or restart renders it.

Pipeline (`synthetic_dataset` → `make_synthetic_dataset` → `make_synthetic_loader`):
  MapDataset.range(num_records) → shard `[shard_index::shard_count]` → render + augment
  (random crop, horizontal/vertical flips, time reversal) → batch → IterDataset
  (thread prefetch) → `mp_prefetch` with `worker_count` processes.
Batches are formed before the workers, so a batch's content does not depend on
`worker_count`; the iterator's `get_state()` / `set_state()` resume exactly.

Batched layout (DESIGN.md §3), for batch size B and window T:
  frames [B, T, H, W, 3] float32 in [0, 1]; stops [B, T] float32; hdr [B, H, W, 3] float32;
  flow [B, T, H, W, 2] float32 (reference → frame t); occlusion [B, T, H, W] bool;
  response_id [B] int32; response_params [B, 2] float32; noise_ab [B, 2] float32;
  bits [B] int32; flow_exact [B] bool; index [B] int64 (the sample index).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import grain
import numpy as np

from data_pipeline import camera_pipeline
from data_pipeline import motion as motion_lib
from data_pipeline import simulator as sim_lib

# Far more samples than any run draws: an effectively infinite, never-repeating stream.
INFINITE_RECORDS = 2**40
VALIDATION_SEED = 1_000_003
BATCH_KEYS = ("frames", "stops", "hdr", "flow", "occlusion", "response_id", "response_params",
              "noise_ab", "bits", "flow_exact", "index")


def as_config(config: sim_lib.SimulatorConfig | Mapping[str, Any] | None
              ) -> sim_lib.SimulatorConfig:
  """A `SimulatorConfig` from itself, a (nested) dict / ConfigDict of its fields, or None
  (defaults).

  An experiment config (one with `data` and `pattern` sections, as in `configs/`) is also
  accepted: size = (data.crop, data.crop), pattern, radius = model.radius, source_dir,
  num_val_sources, camera_pipeline_fraction, responses (which also restrict the pipeline
  cameras' base curves) and response_weights from `data` when set (weights that do
  not match the responses in length mean uniform), and any fields in an
  optional `data.simulator` dict override the defaults.
  """
  if config is None:
    return sim_lib.SimulatorConfig()
  if isinstance(config, sim_lib.SimulatorConfig):
    return config
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if "data" in config and "pattern" in config:
    data = config["data"]
    fields = {"size": (int(data["crop"]), int(data["crop"])), "pattern": config["pattern"]}
    if "model" in config and "radius" in config["model"]:
      fields["radius"] = int(config["model"]["radius"])
    if data.get("responses"):
      responses = data["responses"]
      fields["responses"] = (responses,) if isinstance(responses, str) else tuple(responses)
      weights = tuple(data.get("response_weights") or ())
      fields["response_weights"] = weights if len(weights) == len(fields["responses"]) else None
    if data.get("camera_pipeline_fraction"):
      fields["camera_pipeline_fraction"] = float(data["camera_pipeline_fraction"])
      # The model linearises every training clip with its one response: pipeline cameras
      # keep to the named base curves too (an sRGB camera read as gamma 2.2 would teach
      # a correction that inference, told the clip's curve, does not need).
      bases = tuple(r for r in fields.get("responses", ())
                    if r in camera_pipeline.PipelineRanges().responses)
      if bases:
        fields["pipeline_ranges"] = {"responses": bases}
    if data.get("source_dir"):
      fields["source_dir"] = str(data["source_dir"])
      fields["num_val_sources"] = int(data.get("num_val_sources", 2))
    fields.update(data.get("simulator") or {})
    return sim_lib.SimulatorConfig.from_dict(fields)
  return sim_lib.SimulatorConfig.from_dict(config)


def sample_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
  """(render rng, augmentation rng) of sample `index` under `seed`."""
  render, augment = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
  return np.random.default_rng(render), np.random.default_rng(augment)


def hflip(sample: dict) -> dict:
  """Mirrors left-right: image axes flip and flow dx changes sign."""
  out = dict(sample)
  out["frames"] = sample["frames"][:, :, ::-1]
  out["hdr"] = sample["hdr"][:, ::-1]
  out["occlusion"] = sample["occlusion"][:, :, ::-1]
  flow = sample["flow"][:, :, ::-1].copy()
  flow[..., 0] *= -1
  out["flow"] = flow
  return out


def vflip(sample: dict) -> dict:
  """Mirrors top-bottom: image axes flip and flow dy changes sign."""
  out = dict(sample)
  out["frames"] = sample["frames"][:, ::-1]
  out["hdr"] = sample["hdr"][::-1]
  out["occlusion"] = sample["occlusion"][:, ::-1]
  flow = sample["flow"][:, ::-1].copy()
  flow[..., 1] *= -1
  out["flow"] = flow
  return out


def reverse_time(sample: dict) -> dict:
  """Plays the window backwards; valid because the reference is the centre frame."""
  out = dict(sample)
  for k in ("frames", "stops", "flow", "occlusion"):
    out[k] = sample[k][::-1]
  return out


def crop(sample: dict, top: int, left: int, height: int, width: int) -> dict:
  out = dict(sample)
  out["frames"] = sample["frames"][:, top:top + height, left:left + width]
  out["hdr"] = sample["hdr"][top:top + height, left:left + width]
  out["flow"] = sample["flow"][:, top:top + height, left:left + width]
  out["occlusion"] = sample["occlusion"][:, top:top + height, left:left + width]
  return out


@dataclasses.dataclass(frozen=True)
class Augment:
  """Augmentations applied to a rendered window, each with probability 1/2 if enabled."""
  crop: tuple[int, int] | None = None  # (height, width); None = the rendered size.
  flips: bool = True
  time_reversal: bool = True

  def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
    if self.crop is not None:
      h, w = sample["hdr"].shape[:2]
      ch, cw = self.crop
      if ch > h or cw > w:
        raise ValueError(f"crop {ch}x{cw} is larger than the rendered size {h}x{w}")
      sample = crop(sample, int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw)
    if self.flips:
      if rng.random() < 0.5:
        sample = hflip(sample)
      if rng.random() < 0.5:
        sample = vflip(sample)
    if self.time_reversal and rng.random() < 0.5:
      sample = reverse_time(sample)
    return {k: v if np.ndim(v) == 0 else np.ascontiguousarray(v) for k, v in sample.items()}


NO_AUGMENT = Augment(crop=None, flips=False, time_reversal=False)


def curriculum_configs(config: sim_lib.SimulatorConfig,
                       curriculum: Sequence[tuple[int, float]]
                       ) -> tuple[tuple[int, sim_lib.SimulatorConfig], ...]:
  """(first sample index, config with its motion scaled) for each (index, scale) step."""
  steps = sorted((int(i), float(s)) for i, s in curriculum)
  if steps and steps[0][0] != 0:
    raise ValueError(f"a motion curriculum must start at sample 0, got {curriculum}")
  return tuple((i, config.replace(motion=motion_lib.scale_motion(config.motion, s)))
               for i, s in steps)


class RenderSample:
  """Index → training sample (picklable; the simulator is built lazily per process).

  With a curriculum, sample i is rendered by the config of the last step starting at or
  before i (so a resumed run renders exactly what an uninterrupted one would).
  """

  def __init__(self, config: sim_lib.SimulatorConfig, seed: int, augment: Augment,
               curriculum: Sequence[tuple[int, float]] = ()):
    self.config, self.seed, self.augment = config, int(seed), augment
    self.schedule = curriculum_configs(config, curriculum)

  def config_at(self, index: int) -> sim_lib.SimulatorConfig:
    config = self.config
    for start, scheduled in self.schedule:
      if index >= start:
        config = scheduled
    return config

  def __call__(self, index: int) -> dict:
    render_rng, aug_rng = sample_rngs(self.seed, index)
    sample = sim_lib.get_simulator(self.config_at(index)).window(render_rng)
    sample.pop("meta")
    sample = self.augment(sample, aug_rng)
    sample["index"] = np.int64(index)
    return sample


def synthetic_dataset(config=None, *, seed: int, num_samples: int | None = None,
                      shard_index: int = 0, shard_count: int = 1,
                      augment: Augment = Augment(),
                      curriculum: Sequence[tuple[int, float]] = ()) -> grain.MapDataset:
  """Per-sample MapDataset (unbatched) of this shard; element j is global sample
  `shard_index + j * shard_count`. `curriculum`: ((first sample index, motion scale), ...)
  starting at index 0 (`motion.scale_motion`); empty = the config's motion throughout."""
  config = as_config(config)
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"need 0 <= shard_index < shard_count, got {shard_index}, {shard_count}")
  ds = grain.MapDataset.range(INFINITE_RECORDS if num_samples is None else num_samples)
  if shard_count > 1:
    ds = ds[shard_index::shard_count]
  return ds.map(RenderSample(config, seed, augment, curriculum))


def stack(samples) -> dict:
  """Sample dicts → one batch dict (arrays stacked on a new leading axis)."""
  return {k: np.stack([s[k] for s in samples]) for k in samples[0]}


def make_synthetic_loader(config=None, *, seed: int, batch_size: int, shard_index: int = 0,
                          shard_count: int = 1, worker_count: int = 0,
                          num_epochs: int | None = None, num_samples: int | None = None,
                          crop: tuple[int, int] | None = None, augment: bool = True,
                          other_camera: bool = False,
                          other_camera_response: str = sim_lib.STAGE2_RESPONSE,
                          num_threads: int = 1, prefetch: int = 2,
                          worker_buffer_size: int = 2,
                          curriculum: Sequence[tuple[int, float]] = ()
                          ) -> grain.DatasetIterator:
  """`iter(make_synthetic_dataset(...))`: a checkpointable iterator of batch dicts
  (module docstring) with `get_state()` / `set_state(state)`; same arguments."""
  return iter(make_synthetic_dataset(
      config, seed=seed, batch_size=batch_size, shard_index=shard_index,
      shard_count=shard_count, worker_count=worker_count, num_epochs=num_epochs,
      num_samples=num_samples, crop=crop, augment=augment, other_camera=other_camera,
      other_camera_response=other_camera_response, num_threads=num_threads,
      prefetch=prefetch, worker_buffer_size=worker_buffer_size, curriculum=curriculum))


def make_synthetic_dataset(config=None, *, seed: int, batch_size: int, shard_index: int = 0,
                           shard_count: int = 1, worker_count: int = 0,
                           num_epochs: int | None = None, num_samples: int | None = None,
                           crop: tuple[int, int] | None = None, augment: bool = True,
                           other_camera: bool = False,
                           other_camera_response: str = sim_lib.STAGE2_RESPONSE,
                           num_threads: int = 1, prefetch: int = 2,
                           worker_buffer_size: int = 2,
                           curriculum: Sequence[tuple[int, float]] = ()) -> grain.IterDataset:
  """Batched synthetic training data for one process.

  Args:
    config: SimulatorConfig, a plain/ConfigDict dict of its fields, an experiment config
      (see `as_config`), or None (defaults).
    seed: the data seed; sample i is a function of (seed, i) only.
    batch_size: per-process batch size (batches with fewer samples are dropped).
    shard_index, shard_count: this process's shard (e.g. jax.process_index(),
      jax.process_count()); shards are interleaved and disjoint.
    worker_count: rendering processes (0 = render in this process).
    num_epochs: passes over `num_samples` (None = forever); ignored when num_samples is
      None (the stream is then effectively infinite and never repeats).
    num_samples: size of a finite sample set (all shards together).
    crop: (H, W) random crop of the rendered `config.size`; None = no crop.
    augment: random flips and time reversal (and the crop position).
    other_camera: render with `simulator.stage2_camera(config, other_camera_response)`
      (stage-2 unlabeled data from a camera unlike stage 1's; GT keys are still present).
    other_camera_response: that camera's response (`camera.parse_response`).
    num_threads, prefetch: thread prefetch inside each process.
    curriculum: ((first global sample index, motion scale), ...) from small to large
      motion (`synthetic_dataset`).
  Returns:
    An IterDataset; `iter(ds)` gives a checkpointable iterator.
  """
  config = as_config(config)
  if other_camera:
    config = sim_lib.stage2_camera(config, other_camera_response)
  if worker_count > 0:
    from absl import flags  # grain's worker processes read absl flags.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
  aug = Augment(crop=crop) if augment else Augment(crop=crop, flips=False, time_reversal=False)
  ds = synthetic_dataset(config, seed=seed, num_samples=num_samples, shard_index=shard_index,
                         shard_count=shard_count, augment=aug, curriculum=curriculum)
  if num_samples is not None:
    ds = ds.repeat(num_epochs)
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=stack)
  it = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                            prefetch_buffer_size=prefetch))
  if worker_count > 0:
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count,
                                                     per_worker_buffer_size=worker_buffer_size))
  return it


def validation_config(config=None) -> sim_lib.SimulatorConfig:
  """The training config switched to held-out sources (split "val"), every reference
  exposure level equally often (training's `patterns.reference_weights` dropped: the
  validation score measures the model as clips use it)."""
  config = as_config(config)
  if config.patterns.reference_weights:
    config = config.replace(patterns=dataclasses.replace(config.patterns, reference_weights=()))
  return config.replace(source_split="val") if config.source_dir else config


def make_validation_set(config=None, *, num_samples: int = 16, batch_size: int | None = None,
                        seed: int = VALIDATION_SEED, size: int | None = None) -> list[dict]:
  """A fixed validation set: held-out sources (when `config.source_dir` is set) and a seed
  of its own, no augmentation.

  Returns a list of `num_samples` sample dicts (`size` is an alias of num_samples), or with
  `batch_size`, a list of batch dicts (the last may be smaller).
  """
  num_samples = num_samples if size is None else int(size)
  ds = synthetic_dataset(validation_config(config), seed=seed, num_samples=num_samples,
                         augment=NO_AUGMENT)
  samples = [ds[i] for i in range(num_samples)]
  if batch_size is None:
    return samples
  return [stack(samples[i:i + batch_size]) for i in range(0, num_samples, batch_size)]
