"""The fixed test sets of the results table (and of tests): simulator configs and rendering.

Content comes only from the held-out validation split of a sources folder
(`data_pipeline.sources.split_names`), never seen in training; clips are rendered once per
(folder, seed) by `data_pipeline.synth.write_clips` and reused.
"""
from __future__ import annotations

import pathlib

from data_pipeline import camera_pipeline
from data_pipeline import motion as motion_lib
from data_pipeline import simulator as sim_lib
from data_pipeline import synth

# The hard-motion sets: camera 8–24 px/frame with rotation and zoom, 1–3 occluding layers
# at 12–32 px/frame in their own directions.
HARD_MOTION = motion_lib.MotionConfig(
    camera_speed=(8.0, 24.0), camera_accel=1.0, camera_shake=(0.0, 2.0),
    camera_rotation=1.0, camera_zoom=0.02, num_layers=(1, 3), layer_speed=(12.0, 32.0),
    layer_accel=1.0, layer_rotation=3.0, layer_zoom=0.03, layer_size=(0.2, 0.45))


# The other camera's clips declare a response no method is told ("sigmoid"): every method
# reads them as the stage-1 default instead.
OTHER_CAMERA_READ_AS = "gamma2.2"


def testset_config(pattern: str, size, sources: str, other_camera: str | None = None
                ) -> sim_lib.SimulatorConfig:
  """A test set's simulator; `other_camera` = that camera's response (None: stage 1's)."""
  config = sim_lib.SimulatorConfig(
      size=size, pattern=pattern, responses=("gamma2.2", "srgb"), response_weights=(0.7, 0.3),
      source_dir=sources, source_split="val", procedural_fraction=0.0)
  return sim_lib.stage2_camera(config, other_camera) if other_camera else config


def held_out_camera_config(pattern: str, size, sources: str) -> sim_lib.SimulatorConfig:
  """Clips written by real-camera pipelines never drawn in training
  (`camera_pipeline.HELD_OUT_RANGES`), with the stage-1 sensor noise."""
  return testset_config(pattern, size, sources).replace(
      camera_pipeline_fraction=1.0, pipeline_ranges=camera_pipeline.HELD_OUT_RANGES)


def hard_config(pattern: str, size, sources: str) -> sim_lib.SimulatorConfig:
  """The hard-motion set's simulator: the stage-1 camera, large motion, heavy blur."""
  return testset_config(pattern, size, sources).replace(
      motion=HARD_MOTION, duty=(0.6, 1.0), max_subframes=64, subframe_step=1.0,
      norm_level=(0.4, 0.95))


def render(out: pathlib.Path, name: str, config: sim_lib.SimulatorConfig, num_clips: int,
           frames: int, seed: int) -> list[pathlib.Path]:
  """The clip folders of test set `name` under `out/testsets/` (rendered if absent)."""
  folder = out / "testsets" / name
  found = sorted(folder.glob("clip_*"))
  if len(found) == num_clips:
    return found
  return synth.write_clips(folder, num_clips=num_clips, num_frames=frames, size=config.size,
                           seed=seed, overwrite=True, config=config)
