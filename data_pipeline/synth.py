"""`dealthdr synth`: writes simulated clip folders with ground truth (DESIGN.md §7, §8), or
with `--format array_record --config CONFIG` pre-rendered training windows for
`data.source=array_record` (`data_pipeline.window_records`; `--workers` processes, or `--beam`).

Each clip `DIR/clip_NNNN/` holds:
  exposures.txt          one number per frame, in stops (shortest = 0);
  NNNNN.png              LDR frames: 8-bit PNG for 8-bit quantisation, else 16-bit PNG
                         (code value v/(2**bits - 1) rescaled to 16 bits);
  meta.json              {"response": ..., "bits", "noise", "pattern", "stops", "seed",
                         "clip_index", "source", "flow": <format note>, ...}; for the
                         "sigmoid" response also "sigmoid_n", "sigmoid_sigma";
  gt/NNNNN.exr           clean sharp radiance at each frame's instant (§3 units);
  flow/NNNNN.npy         float32 [H, W, 2] (dx, dy): pixel p of frame NNNNN is at p + flow in
                         the next frame (none for the last frame);
  flow/NNNNN_occ.png     8-bit mask, 255 where that pixel is not visible in the next frame;
  preview/contact_sheet.png   frames, tone-mapped GT and flow colour maps, for a person.

Clip k is rendered from `np.random.SeedSequence([seed, k])`, so a clip does not depend on
how many clips are written. Each clip is written to a hidden temporary folder and renamed
into place, so an error never leaves a partial clip; an existing clip folder is an error
unless `--overwrite`.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import shutil
import sys

import cv2
import numpy as np

from data_pipeline import camera
from data_pipeline import camera_pipeline
from data_pipeline import hdr_io
from data_pipeline import patterns
from data_pipeline import simulator as sim_lib

RESPONSE_CHOICES = camera.ALL_RESPONSES + ("random",)
FORMATS = ("clips", "array_record")
# Options that only clip folders use, with their defaults (array_record windows take them
# from --config).
CLIP_ONLY = {"frames": None, "pattern": "2exp", "sources": None, "sequence": None,
             "response": "gamma2.2", "bits": 8, "no_noise": False, "camera_pipeline": None}
# `--camera-pipeline`: the cameras of `camera_pipeline` to draw from.
PIPELINE_RANGES = {"train": camera_pipeline.PipelineRanges(),
                   "held_out": camera_pipeline.HELD_OUT_RANGES}
MAX_SHEET_FRAMES = 8


def parse_size(text: str) -> tuple[int, int]:
  """'HxW' → (H, W)."""
  try:
    h, w = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise ValueError(f"size must look like HxW (e.g. 256x256), got {text!r}") from None
  if h < 8 or w < 8:
    raise ValueError(f"size must be at least 8x8, got {text!r}")
  return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--out", required=True,
                      help="output folder (clip folders, or shard files, go inside)")
  parser.add_argument("--format", choices=FORMATS, default="clips",
                      help="clips: clip folders with GT (evaluation, inspection); "
                           "array_record: training windows in shards for "
                           "data.source=array_record (needs --config)")
  parser.add_argument("--clips", type=int, default=1,
                      help="number of clips (array_record: number of training windows)")
  parser.add_argument("--frames", type=int, default=None,
                      help="frames per clip (≥ 2; default 8); array_record windows have "
                           "the config's 2·radius+1 frames")
  parser.add_argument("--size", default=None,
                      help="frame size HxW (default 256x256; array_record: the config's "
                           "data.crop, or larger for random crops at training time)")
  parser.add_argument("--pattern", choices=patterns.PATTERNS, default=CLIP_ONLY["pattern"])
  parser.add_argument("--seed", type=int, default=None,
                      help="clip k renders from (seed, k); default 0 (array_record: the "
                           "config's seed, so the windows are those training would render)")
  parser.add_argument("--sources", default=None,
                      help="folder of .exr/.hdr images to use instead of procedural scenes")
  parser.add_argument("--sequence", default=None,
                      help="folder of numbered .exr frames (HDR video) to use as background")
  parser.add_argument("--response", choices=RESPONSE_CHOICES, default=CLIP_ONLY["response"],
                      help="camera response ('random': gamma2.2/srgb/sigmoid mix)")
  parser.add_argument("--bits", type=int, choices=camera.BITS, default=CLIP_ONLY["bits"])
  parser.add_argument("--no-noise", action="store_true", help="noise-free sensor")
  parser.add_argument("--camera-pipeline", choices=tuple(PIPELINE_RANGES), default=None,
                      help="write every clip through a sampled real-camera pipeline (Bayer "
                           "raw noise, demosaicing, white balance, colour matrix, tone "
                           "curve, JPEG or 16-bit; meta.json has its settings): the "
                           "training cameras or the held-out ones; --response and --bits "
                           "then come from the sampled camera")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace existing clips (or a shard folder of another plan)")
  shards_group = parser.add_argument_group("array_record shards")
  shards_group.add_argument("--config", default=None,
                            help="the training config whose data the shards feed (as for "
                                 "`dealthdr train`, with --config.a.b=value overrides): "
                                 "simulator, pattern, window, crop and content folder")
  shards_group.add_argument("--workers", type=int, default=1,
                            help="rendering processes (default 1)")
  shards_group.add_argument("--shards", type=int, default=None,
                            help="shard files (default: max(workers, records/1024))")
  shards_group.add_argument("--beam", action="store_true",
                            help="render on Apache Beam (extra `beam`) instead of local "
                                 "processes; --out may then be any Beam file system path")
  shards_group.add_argument("--beam-options", default="--runner=DirectRunner",
                            help="Beam pipeline options, one string (default: "
                                 "--runner=DirectRunner)")


def flow_to_colour(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
  """Colour wheel visualisation: hue = direction, saturation = magnitude.

  Args:
    flow: [H, W, 2] float (dx, dy).
  Returns:
    [H, W, 3] float32 RGB in [0, 1].
  """
  dx, dy = flow[..., 0], flow[..., 1]
  mag = np.hypot(dx, dy)
  top = max_magnitude if max_magnitude else max(float(mag.max()), 1e-6)
  hsv = np.stack([(np.degrees(np.arctan2(dy, dx)) + 360.0) % 360.0,
                  np.clip(mag / top, 0, 1), np.ones_like(mag)], -1).astype(np.float32)
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def tonemap(hdr: np.ndarray, key: float) -> np.ndarray:
  """Reinhard + gamma 2.2 display of [..., 3] radiance; `key` maps to mid-grey."""
  x = np.asarray(hdr, np.float32) * np.float32(0.18 / max(key, 1e-12))
  return (x / (1.0 + x)) ** (1 / 2.2)


def contact_sheet(sample: dict) -> np.ndarray:
  """[rows * H, cols * W, 3] uint8: LDR frames (with stops), tone-mapped GT, flow to the
  next frame (occluded pixels darkened), for the first `MAX_SHEET_FRAMES` frames."""
  n = min(len(sample["frames"]), MAX_SHEET_FRAMES)
  key = float(np.median(sample["hdr"][:n])) + 1e-12
  flows = sample["flow"][:n]
  top = max(float(np.abs(flows).max()), 1.0) if len(flows) else 1.0
  rows = [[], [], []]
  for j in range(n):
    ldr = (sample["frames"][j] * 255).round().astype(np.uint8).copy()
    cv2.putText(ldr, f"{sample['stops'][j]:.1f}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 0, 255), 1, cv2.LINE_AA)
    rows[0].append(ldr)
    rows[1].append((tonemap(sample["hdr"][j], key) * 255).round().astype(np.uint8))
    if j < len(sample["flow"]):
      col = flow_to_colour(sample["flow"][j], top)
      col[sample["occlusion"][j]] *= 0.25
      rows[2].append((col * 255).round().astype(np.uint8))
    else:
      rows[2].append(np.zeros_like(ldr))
  return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def _write_text(path: pathlib.Path, text: str) -> None:
  with hdr_io.atomic_path(path) as tmp:
    tmp.write_text(text)


def _write_npy(path: pathlib.Path, array: np.ndarray) -> None:
  with hdr_io.atomic_path(path) as tmp:
    np.save(tmp, array)


def write_clip(clip_dir: pathlib.Path, sample: dict, info: dict) -> None:
  """Writes one rendered clip (`render_sequence` output) into `clip_dir` (created)."""
  bits = int(sample["bits"])
  file_bits = 8 if bits == 8 else 16
  names = [f"{j:05d}" for j in range(len(sample["frames"]))]
  _write_text(clip_dir / "exposures.txt",
              "".join(f"{float(s):.6g}\n" for s in sample["stops"]))
  for name, ldr, gt in zip(names, sample["frames"], sample["hdr"]):
    hdr_io.write_ldr(clip_dir / f"{name}.png", ldr, bits=file_bits)
    hdr_io.write_exr(clip_dir / "gt" / f"{name}.exr", gt)
  for name, flow, occ in zip(names, sample["flow"], sample["occlusion"]):
    _write_npy(clip_dir / "flow" / f"{name}.npy", flow.astype(np.float32))
    occ_rgb = np.repeat(occ[..., None], 3, -1).astype(np.uint8) * 255
    hdr_io.write_ldr(clip_dir / "flow" / f"{name}_occ.png", occ_rgb, bits=8)
  meta = dict(sample["meta"])
  meta.update(info)
  meta.update({
      "stops": [float(s) for s in sample["stops"]],
      "frames": [f"{n}.png" for n in names],
      "flow": ("flow/<frame>.npy: float32 [H, W, 2] (dx, dy), pixel p of <frame> is at "
               "p + flow in the next frame; flow/<frame>_occ.png: 255 where not visible "
               "in the next frame; none for the last frame"),
      "gt": "gt/<frame>.exr: clean sharp radiance at the frame's instant, DESIGN.md §3 units",
  })
  _write_text(clip_dir / "meta.json", json.dumps(meta, indent=2) + "\n")
  hdr_io.write_ldr(clip_dir / "preview" / "contact_sheet.png", contact_sheet(sample), bits=8)


def synth_config(*, size: tuple[int, int], pattern: str, sources: str | None = None,
                 sequence: str | None = None, response: str = "gamma2.2", bits: int = 8,
                 noise: bool = True, camera_pipeline: str | None = None
                 ) -> sim_lib.SimulatorConfig:
  """The simulator config `dealthdr synth` uses for these options."""
  if response == "random":
    responses, weights = ("gamma2.2", "srgb", "sigmoid"), (0.5, 0.2, 0.3)
  else:
    responses, weights = (response,), None
  config = sim_lib.SimulatorConfig(
      size=size, pattern=pattern, responses=responses, response_weights=weights, bits=(bits,))
  if not noise:
    config = config.replace(noise=None)
  if sources:
    config = config.replace(source_dir=str(sources), source_split="all",
                            procedural_fraction=0.0)
  if sequence:
    config = config.replace(sequence_dir=str(sequence), sequence_fraction=1.0)
  if camera_pipeline:
    config = config.replace(camera_pipeline_fraction=1.0,
                            pipeline_ranges=PIPELINE_RANGES[camera_pipeline])
  return config


def write_clips(out_dir: str | os.PathLike, *, num_clips: int, num_frames: int,
                size: tuple[int, int], pattern: str = "2exp", seed: int = 0,
                sources: str | None = None, sequence: str | None = None,
                response: str = "gamma2.2", bits: int = 8, noise: bool = True,
                camera_pipeline: str | None = None, overwrite: bool = False,
                config: sim_lib.SimulatorConfig | None = None) -> list[pathlib.Path]:
  """Renders and writes `num_clips` clip folders; returns their paths.

  `config`, if given, replaces the one built from the other options (size/pattern/...
  are then ignored).
  """
  if num_clips < 1:
    raise ValueError(f"--clips must be ≥ 1, got {num_clips}")
  if num_frames < 2:
    raise ValueError(f"--frames must be ≥ 2 (alternating exposures need two frames), "
                     f"got {num_frames}")
  out_dir = pathlib.Path(out_dir)
  config = config or synth_config(size=size, pattern=pattern, sources=sources,
                                  sequence=sequence, response=response, bits=bits, noise=noise,
                                  camera_pipeline=camera_pipeline)
  sim = sim_lib.Simulator(config)
  targets = [out_dir / f"clip_{k:04d}" for k in range(num_clips)]
  existing = [str(t) for t in targets if t.exists()]
  if existing and not overwrite:
    raise FileExistsError(f"clip folders already exist (use --overwrite): {existing[:3]}"
                          + (" ..." if len(existing) > 3 else ""))
  out_dir.mkdir(parents=True, exist_ok=True)
  for k, target in enumerate(targets):
    sample = sim.sequence(np.random.default_rng(np.random.SeedSequence([seed, k])), num_frames)
    tmp = out_dir / f".{target.name}.tmp-{secrets.token_hex(4)}"
    try:
      tmp.mkdir()
      write_clip(tmp, sample, {"seed": seed, "clip_index": k, "generator": "dealthdr synth",
                               "size": list(config.size)})
      if target.exists():
        shutil.rmtree(target)
      os.replace(tmp, target)
    finally:
      if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
  return targets


def shard_config(spec: str, overrides: list[str], size: str | None
                 ) -> tuple[sim_lib.SimulatorConfig, int]:
  """(the simulator config that training with this experiment config renders — its
  `data.crop` square, or `size` —, the config's seed)."""
  from dealthdr_jax import config_loading  # pylint: disable=g-import-not-at-top
  from data_pipeline import pipeline  # pylint: disable=g-import-not-at-top
  experiment = config_loading.load_config(spec)
  config_loading.apply_overrides(experiment, overrides)
  if experiment.data.source not in ("synthetic", "array_record"):
    raise ValueError(f"--config {spec}: data.source={experiment.data.source!r} does not "
                     "render with the camera simulator; use a stage-1 config (size=small or "
                     "base)")
  config = pipeline.as_config(experiment)
  if size is not None:
    h, w = parse_size(size)
    if min(h, w) < int(experiment.data.crop):
      raise ValueError(f"--size {size} is smaller than the config's data.crop="
                       f"{experiment.data.crop}")
    config = config.replace(size=(h, w))
  return config, int(experiment.seed)


def main_shards(args: argparse.Namespace) -> int:
  from data_pipeline import window_records  # pylint: disable=g-import-not-at-top
  if not args.config:
    raise ValueError("--format array_record needs --config (the training config whose "
                     "data the shards feed, e.g. --config dealthdr_2exp:size=base)")
  given = [f"--{k.replace('_', '-')}" for k, default in CLIP_ONLY.items()
           if getattr(args, k) != default]
  if given:
    raise ValueError(f"{', '.join(given)}: clip-folder options; array_record windows take "
                     "them from --config (use --config.a.b=value to change them)")
  config, config_seed = shard_config(args.config, getattr(args, "config_overrides", None) or [],
                                     args.size)
  seed = config_seed if args.seed is None else args.seed
  if args.beam:
    from data_pipeline import window_records_beam  # pylint: disable=g-import-not-at-top
    meta = window_records_beam.write_shards_beam(args.out, config, seed=seed,
                                         num_records=args.clips, num_shards=args.shards,
                                         beam_options=args.beam_options.split(),
                                         overwrite=args.overwrite)
  else:
    meta = window_records.write_shards(args.out, config, seed=seed, num_records=args.clips,
                               workers=args.workers, num_shards=args.shards,
                               overwrite=args.overwrite, log=window_records.print_progress)
  print(f"wrote {window_records.summary(meta)} to {args.out}; train on them with "
        f"--config.data.source=array_record --config.data.records={args.out}")
  return 0


def main(args: argparse.Namespace) -> int:
  try:
    if args.format == "array_record":
      return main_shards(args)
    if args.config or args.beam or args.shards is not None or args.workers != 1:
      raise ValueError("--config, --workers, --shards and --beam are for --format "
                       "array_record")
    size = parse_size(args.size or "256x256")
    clips = write_clips(args.out, num_clips=args.clips,
                        num_frames=8 if args.frames is None else args.frames, size=size,
                        pattern=args.pattern, seed=args.seed or 0, sources=args.sources,
                        sequence=args.sequence, response=args.response, bits=args.bits,
                        noise=not args.no_noise, camera_pipeline=args.camera_pipeline,
                        overwrite=args.overwrite)
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    print(f"dealthdr synth: error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {len(clips)} clip(s) to {args.out}")
  return 0
