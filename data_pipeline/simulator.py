"""The camera simulator: HDR content + motion + camera → training samples and clips.

`render_clip(rng, config)` renders one training window of T = 2r + 1 frames around a
reference frame (the centre); `render_sequence(rng, num_frames, config)` renders a whole
clip with ground truth for every frame. Both are deterministic functions of the seed (or
Generator) and the config.

Timing: frame j is exposed over an interval centred on its instant `t_j` (frame periods;
the window's reference instant is 0, a clip's frames are at 0..N-1). The longest exposure
lasts `duty` frame periods (drawn from `config.duty`), a frame `k` stops shorter lasts
2**-k of that. Each frame is the average of sharp renders at sub-frame instants spaced so
that nothing moves more than `subframe_step` pixels between them (at most
`max_subframes`); a static scene uses one render, so it has no blur at all.

Units (DESIGN.md §3): each clip is scaled so that the `norm_percentile` of the reference
ground truth's luminance (a window's centre frame; a clip's middle frame) sits at a level
drawn from `norm_level` for the shortest exposure (e = 1). Small bright parts (emitters,
sun) lie above it and may clip even in the shortest frame, as in real footage.

Window sample (`render_clip`):
  frames:    [T, H, W, 3] float32 in [0, 1], camera-encoded LDR, quantised to `bits`.
  stops:     [T] float32, shortest frame of the window = 0.
  hdr:       [H, W, 3] float32, clean sharp radiance at the reference instant.
  flow:      [T, H, W, 2] float32 (dx, dy), reference → frame j (zero for the reference).
  occlusion: [T, H, W] bool, reference pixel not visible in frame j.
  response_id: int32 index into `camera.ALL_RESPONSES`; response_params: [2] float32
  (sigmoid n, sigma; 0 otherwise); noise_ab: [2] float32 (a, b of variance a·x + b, 0 if
  noiseless); bits: int32; flow_exact: bool (False when the content itself moves, i.e. an
  EXR-sequence background); meta: dict of JSON-able details (not batched).
Clip sample (`render_sequence`): the same keys, with hdr [N, H, W, 3] (every frame's
instant), flow [N-1, H, W, 2] and occlusion [N-1, H, W] from frame j to frame j + 1.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import cv2
import numpy as np

from data_pipeline import camera
from data_pipeline import camera_pipeline
from data_pipeline import motion as motion_lib
from data_pipeline import patterns
from data_pipeline import response as response_lib
from data_pipeline import sources
from data_pipeline import tone_calibration

SeedOrRng = int | np.random.Generator
TONE_CALIBRATION = ("off", "estimate", "exact")


@dataclasses.dataclass(frozen=True)
class SimulatorConfig:
  """Everything the simulator draws from. Immutable and hashable (one cached simulator
  per config and process). `from_dict` builds one from a plain (nested) dict."""
  size: tuple[int, int] = (128, 128)  # (height, width) rendered.
  pattern: str = "2exp"  # "2exp" | "3exp".
  radius: int | None = None  # Window radius r; None → patterns.default_radius(pattern).
  patterns: patterns.PatternConfig = patterns.PatternConfig()
  motion: motion_lib.MotionConfig = motion_lib.MotionConfig()
  noise: camera.NoiseRanges | None = camera.NoiseRanges()  # None → noiseless.
  responses: tuple[str, ...] = ("gamma2.2", "srgb", "sigmoid")
  response_weights: tuple[float, ...] | None = (0.5, 0.2, 0.3)
  bits: tuple[int, ...] = (8, 10, 12)
  duty: tuple[float, float] = (0.3, 1.0)  # Longest exposure / frame period.
  subframe_step: float = 0.75  # px of motion between sub-frame renders.
  max_subframes: int = 24
  norm_percentile: float = 95.0  # Above ~97 small emitters and halos would set the scale.
  norm_level: tuple[float, float] = (0.25, 0.9)
  min_stops: float = 16.0  # Procedural scenes' minimum dynamic range.
  source_dir: str | None = None  # Folder of .exr/.hdr images.
  source_split: str = "train"  # "train" | "val" | "all" (sources.split_names).
  num_val_sources: int = 2
  procedural_fraction: float = 0.5  # With source_dir: share of procedural scenes.
  source_cover: tuple[float, float] = (0.35, 0.9)  # Frame side / source short side.
  sequence_dir: str | None = None  # Folder of numbered EXRs (HDR video).
  sequence_fraction: float = 0.0  # Share of clips using sequence_dir as background.
  # Share of clips written by a sampled real-camera pipeline (`camera_pipeline`: Bayer
  # raw noise, demosaicing, white balance, colour matrix, tone curve, JPEG) instead of
  # `camera.capture`; `pipeline_ranges` are the cameras it draws from.
  camera_pipeline_fraction: float = 0.0
  pipeline_ranges: camera_pipeline.PipelineRanges = camera_pipeline.PipelineRanges()
  # One camera for every pipeline clip: drawn from `pipeline_ranges` by this seed (None:
  # a new camera per clip), e.g. several clips of the same held-out camera.
  pipeline_camera_seed: int | None = None
  # Frames as the clip readers hand them to every method (`clips.open_clip`), with the
  # undeclared S-curve undone (`tone_calibration`), so that a model trains on what it reads
  # at inference: "off" (camera files, as test sets are rendered), "estimate" (measured
  # from the frames, as the readers do: right for whole clips) or "exact" (the camera's
  # own contrast times a log-normal error of `tone_calibration_jitter`: for training
  # windows, whose 3 frames of 128² measure it far less well than a whole clip does).
  tone_calibration: str = "off"
  tone_calibration_jitter: float = 0.04

  def __post_init__(self):
    patterns.default_radius(self.pattern)  # Validates the name.
    h, w = self.size
    if h < 8 or w < 8:
      raise ValueError(f"size must be at least 8x8, got {h}x{w}")
    if self.radius is not None and self.radius < 1:
      raise ValueError(f"radius must be ≥ 1 (a window needs neighbours), got {self.radius}")
    for b in self.bits:
      if b not in camera.BITS:
        raise ValueError(f"bits must be among {camera.BITS}, got {b}")
    for r in self.responses:
      camera.parse_response(r)
    if self.response_weights is not None and len(self.response_weights) != len(self.responses):
      raise ValueError("response_weights must match responses in length")
    if self.sequence_fraction > 0 and not self.sequence_dir:
      raise ValueError("sequence_fraction > 0 needs sequence_dir")
    if self.tone_calibration not in TONE_CALIBRATION:
      raise ValueError(f"tone_calibration must be one of {TONE_CALIBRATION}, got "
                       f"{self.tone_calibration!r}")
    if not 0.0 <= self.camera_pipeline_fraction <= 1.0:
      raise ValueError(f"camera_pipeline_fraction must be in [0, 1], got "
                       f"{self.camera_pipeline_fraction}")
    if self.camera_pipeline_fraction > 0 and (h % 2 or w % 2):
      raise ValueError(f"the camera pipeline (Bayer mosaic) needs even frame sides, got "
                       f"{h}x{w}")

  @property
  def window_radius(self) -> int:
    return patterns.default_radius(self.pattern) if self.radius is None else self.radius

  @property
  def num_frames(self) -> int:
    return 2 * self.window_radius + 1

  def replace(self, **changes) -> "SimulatorConfig":
    return dataclasses.replace(self, **changes)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "SimulatorConfig":
    """From a plain dict (e.g. `ConfigDict.to_dict()`); nested dicts for `patterns`,
    `motion`, `noise`; lists become tuples; unknown keys raise."""
    return _from_dict(cls, d)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _from_dict(cls, d: Mapping[str, Any]):
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - set(fields))
  if unknown:
    raise ValueError(f"unknown {cls.__name__} keys {unknown}; known: {sorted(fields)}")
  nested = {"patterns": patterns.PatternConfig, "motion": motion_lib.MotionConfig,
            "noise": camera.NoiseRanges, "pipeline_ranges": camera_pipeline.PipelineRanges}
  kwargs = {}
  for k, v in d.items():
    if cls is SimulatorConfig and k in nested and isinstance(v, Mapping):
      v = _from_dict(nested[k], v)
    elif isinstance(v, list):
      v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    kwargs[k] = v
  return cls(**kwargs)


# The response of `stage2_camera`: one fixed sigmoid (HDRFlow's curve family), unlike any
# stage-1 curve (at LDR 0.5 it reads 0.10 linear where gamma 2.2 reads 0.22).
STAGE2_RESPONSE = "sigmoid:0.6,0.5"


def stage2_camera(config: SimulatorConfig, response: str = STAGE2_RESPONSE) -> SimulatorConfig:
  """A different camera for stage-2 style unlabeled clips: one response curve (`response`,
  "sigmoid" for a random shape per clip instead) and a noisier, smaller-pixel sensor range
  than the stage-1 default."""
  return config.replace(responses=(response,), response_weights=None,
                        noise=camera.NoiseRanges(full_well=(2500.0, 12000.0),
                                                 gain=(2.0, 32.0), read_noise=(1.5, 8.0)))


def _as_rng(rng: SeedOrRng) -> np.random.Generator:
  if isinstance(rng, np.random.Generator):
    return rng
  return np.random.default_rng(rng)


class _ResizedSequence:
  """An EXR sequence resized by `factor`, starting at sequence frame `offset`."""

  def __init__(self, seq: sources.ExrSequenceSource, factor: float, offset: float):
    self.seq, self.factor, self.offset = seq, factor, offset

  def at(self, t: float) -> np.ndarray:
    img = self.seq.at(t + self.offset)
    if self.factor == 1.0:
      return img
    h, w, _ = img.shape
    return cv2.resize(img, (max(1, round(w * self.factor)), max(1, round(h * self.factor))),
                      interpolation=cv2.INTER_AREA)


class Simulator:
  """Holds a config and its (validated, cached) content sources; renders samples."""

  def __init__(self, config: SimulatorConfig = SimulatorConfig(), *,
               source: sources.ImageFolderSource | None = None,
               sequence: sources.ExrSequenceSource | None = None):
    self.config = config
    if source is None and config.source_dir:
      source = sources.ImageFolderSource(config.source_dir, split=config.source_split,
                                         num_val=config.num_val_sources)
    if sequence is None and config.sequence_dir:
      sequence = sources.ExrSequenceSource(config.sequence_dir)
    self.source = source
    self.video = sequence

  # ------------------------------------------------------------------------------ scene

  def _fit_factor(self, rng: np.random.Generator, shape: tuple[int, ...]) -> float:
    """Downscale factor (≤ 1) so the frame covers `source_cover` of the source's short side."""
    h, w = self.config.size
    cover = rng.uniform(*self.config.source_cover)
    return min(1.0, min(h, w) / cover / min(shape[0], shape[1]))

  def _base(self, rng: np.random.Generator, bg_shape: tuple[int, ...], flip: bool,
            theta: float) -> np.ndarray:
    """Output pixel → background pixel at the anchor: centred somewhere the frame fits."""
    h, w = self.config.size
    bh, bw = bg_shape[:2]
    zoom = min(1.0, bh / h, bw / w)  # < 1 only for sources smaller than the frame.
    half_w, half_h = zoom * (w - 1) / 2, zoom * (h - 1) / 2
    cx = rng.uniform(half_w, bw - 1 - half_w) if bw - 1 > 2 * half_w else (bw - 1) / 2
    cy = rng.uniform(half_h, bh - 1 - half_h) if bh - 1 > 2 * half_h else (bh - 1) / 2
    mirror = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
    return (motion_lib.translate(cx, cy) @ mirror @ motion_lib.rotate_scale(theta, zoom)
            @ motion_lib.translate(-(w - 1) / 2, -(h - 1) / 2))

  def _margin(self, span: float) -> int:
    """Background margin (px) so the moving camera mostly stays on real content."""
    m = self.config.motion
    h, w = self.config.size
    travel = (m.camera_speed[1] * (span / 2 + 1) + m.camera_accel * (span / 2 + 1)**2
              + 2 * m.camera_shake[1])
    rot = math.radians(m.camera_rotation) * (span / 2 + 1) * max(h, w) / 2
    zoom = m.camera_zoom * (span / 2 + 1) * max(h, w) / 2
    return int(min(0.1 * max(h, w) + travel + rot + zoom + 4, 2 * max(h, w)))

  def build_scene(self, rng: np.random.Generator, span: float, anchor: float
                  ) -> tuple[motion_lib.Scene, dict]:
    """A random scene lasting `span` frame periods around `anchor`; returns (scene, meta)."""
    cfg = self.config
    h, w = cfg.size
    kind = "procedural"
    if self.video is not None and rng.random() < cfg.sequence_fraction:
      kind = "sequence"
    elif self.source is not None and rng.random() >= cfg.procedural_fraction:
      kind = "image"
    flip = bool(rng.random() < 0.5)
    real_image = None
    if kind == "procedural":
      m = self._margin(span)
      background = sources.procedural_scene(rng, h + 2 * m, w + 2 * m, min_stops=cfg.min_stops)
      base = self._base(rng, background.shape, flip, rng.uniform(0, 2 * np.pi))
      name = "procedural"
    elif kind == "image":
      name, img = self.source.sample(rng)
      f = self._fit_factor(rng, img.shape)
      if f < 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
      background = real_image = img
      base = self._base(rng, img.shape, flip, np.deg2rad(rng.uniform(-5.0, 5.0)))
    else:
      seq = self.video
      first = seq.frame(0)
      f = self._fit_factor(rng, first.shape)
      max_offset = max(0.0, len(seq) - 1 - span)
      offset = float(rng.integers(0, int(max_offset) + 1))
      background = _ResizedSequence(seq, f, offset - (anchor - span / 2))
      real_image = background.at(anchor)
      base = self._base(rng, real_image.shape, flip, np.deg2rad(rng.uniform(-5.0, 5.0)))
      name = f"{seq.name}@{int(offset)}"
    cam = motion_lib.sample_camera(rng, cfg.motion, anchor)
    layers = []
    lo, hi = cfg.motion.num_layers
    for _ in range(int(rng.integers(lo, hi + 1)) if hi > 0 else 0):
      side = max(4, int(rng.uniform(*cfg.motion.layer_size) * min(h, w)))
      lh, lw = (max(4, int(side * rng.uniform(0.6, 1.4))) for _ in range(2))
      if real_image is not None and rng.random() < 0.5:
        rgba = sources.cut_layer(rng, real_image, lh, lw)
      else:
        rgba = sources.procedural_layer(rng, lh, lw)
        if real_image is not None:  # Match the layer's brightness to the content.
          rgba[..., :3] *= np.float32(np.median(sources.luminance(real_image)) + 1e-12)
        else:
          rgba[..., :3] *= np.float32(np.median(sources.luminance(background)))
      layers.append(motion_lib.sample_layer(rng, rgba, cfg.size, cfg.motion, anchor))
    scene = motion_lib.Scene(background=background, base=base, camera=cam, layers=layers,
                             size=cfg.size, anchor=anchor)
    return scene, {"source": name, "source_kind": kind, "num_layers": len(layers)}

  # ---------------------------------------------------------------------------- capture

  def num_subframes(self, scene: motion_lib.Scene, t0: float, t1: float) -> int:
    if scene.is_static or t1 <= t0:
      return 1
    if not isinstance(scene.background, np.ndarray):  # Video content: sample densely.
      base = max(2, math.ceil((t1 - t0) * 8))
    else:
      base = 1
    disp = scene.max_displacement(t0, t1)
    n = max(base, math.ceil(disp / self.config.subframe_step) + 1)
    return int(min(n, self.config.max_subframes))

  def _render(self, rng: np.random.Generator, times: np.ndarray, stops: np.ndarray,
              gt_times: np.ndarray, norm_index: int, anchor: float) -> dict:
    """Shared core: renders LDR frames at `times` and sharp GT at `gt_times`."""
    cfg = self.config
    # A fourth stream for the camera pipeline leaves the first three (and so every clip
    # rendered without the pipeline) as they were.
    scene_rng, cam_rng, noise_rng, isp_rng = rng.spawn(4)
    span = float(times.max() - times.min()) + 1.0
    scene, meta = self.build_scene(scene_rng, span, anchor)
    gts = np.stack([scene.render(float(t)) for t in gt_times])
    scale = sources.normalisation_scale(gts[norm_index], cfg.norm_percentile,
                                        cam_rng.uniform(*cfg.norm_level))
    duty = float(cam_rng.uniform(*cfg.duty))
    durations = duty * np.exp2(stops - stops.max())
    response = camera.sample_response(cam_rng, cfg.responses, cfg.response_weights)
    bits = int(cam_rng.choice(cfg.bits))
    noise = None if cfg.noise is None else camera.sample_noise_params(cam_rng, cfg.noise)
    isp = None
    if cfg.camera_pipeline_fraction > 0 and isp_rng.random() < cfg.camera_pipeline_fraction:
      isp = camera_pipeline.sample_settings(
          isp_rng if cfg.pipeline_camera_seed is None
          else np.random.default_rng(cfg.pipeline_camera_seed), cfg.pipeline_ranges)
      response, bits = isp.tone.base, isp.output_bits
    frames, subframes = [], []
    for t, s, d in zip(times, stops, durations):
      t0, t1 = float(t - d / 2), float(t + d / 2)
      n = self.num_subframes(scene, t0, t1)
      radiance = camera.integrate_exposure(scene.render, t0, t1, n) * np.float32(scale)
      if isp is None:
        frames.append(camera.capture(noise_rng, radiance, float(s), noise, response, bits))
      else:
        frames.append(camera_pipeline.capture(noise_rng, radiance, float(s), noise, isp))
      subframes.append(n)
    frames = np.stack(frames)
    if cfg.tone_calibration == "estimate":
      # What a clip reader declares: the base curve, gamma 2.2 where it has no name.
      declared = response.name if response.name in response_lib.RESPONSES else "gamma2.2"
      fit = tone_calibration.estimate_contrast(frames, stops, declared)
      frames = tone_calibration.undo_contrast(frames, fit.contrast)
      meta["tone_calibration"] = fit.to_json()
    elif cfg.tone_calibration == "exact" and isp is not None and isp.tone.contrast != 1.0:
      contrast = isp.tone.contrast * float(np.exp(cfg.tone_calibration_jitter
                                                  * isp_rng.standard_normal()))
      frames = tone_calibration.undo_contrast(frames, contrast)
      meta["tone_calibration"] = {"contrast": round(contrast, 4)}
    meta.update(response.to_json())
    meta["camera_pipeline"] = None if isp is None else isp.to_json()
    meta.update({"noise": None if noise is None else noise.to_json(), "bits": bits,
                 "duty": duty, "durations": [float(d) for d in durations],
                 "subframes": subframes, "scale": scale, "pattern": cfg.pattern,
                 "flow_exact": isinstance(scene.background, np.ndarray)})
    return {
        "frames": frames,
        "stops": stops.astype(np.float32),
        "hdr": (gts * np.float32(scale)).astype(np.float32),
        "response_id": np.int32(response.response_id),
        "response_params": np.array([response.n, response.sigma], np.float32),
        "noise_ab": np.array([0.0, 0.0] if noise is None else [noise.a, noise.b], np.float32),
        "bits": np.int32(bits),
        "flow_exact": np.bool_(meta["flow_exact"]),
        "meta": meta,
        "_scene": scene,
    }

  def window(self, rng: SeedOrRng) -> dict:
    """One training window (see the module docstring for the keys)."""
    rng = _as_rng(rng)
    r = self.config.window_radius
    t = 2 * r + 1
    pattern_rng, rest = rng.spawn(2)
    stops = patterns.sample_stops(pattern_rng, self.config.pattern, t, self.config.patterns,
                                  reference=r)
    times = np.arange(t, dtype=np.float64) - r
    out = self._render(rest, times, stops, np.zeros(1), 0, 0.0)
    scene = out.pop("_scene")
    out["hdr"] = out["hdr"][0]
    ids_ref = scene.surface_ids(0.0)
    flows, occ = zip(*(scene.flow(0.0, float(tj), ids_ref) for tj in times))
    out["flow"] = np.stack(flows)
    out["occlusion"] = np.stack(occ)
    return out

  def sequence(self, rng: SeedOrRng, num_frames: int) -> dict:
    """A whole clip of `num_frames` frames with GT HDR for each (module docstring)."""
    if num_frames < 2:
      raise ValueError(f"a clip needs at least 2 frames (alternating exposures), "
                       f"got num_frames={num_frames}")
    rng = _as_rng(rng)
    pattern_rng, rest = rng.spawn(2)
    stops = patterns.sample_stops(pattern_rng, self.config.pattern, num_frames,
                                  self.config.patterns)
    times = np.arange(num_frames, dtype=np.float64)
    anchor = (num_frames - 1) / 2
    out = self._render(rest, times, stops, times, num_frames // 2, anchor)
    scene = out.pop("_scene")
    flows, occ = zip(*(scene.flow(float(a), float(b)) for a, b in zip(times[:-1], times[1:])))
    out["flow"] = np.stack(flows)
    out["occlusion"] = np.stack(occ)
    return out


@functools.lru_cache(maxsize=8)
def get_simulator(config: SimulatorConfig) -> Simulator:
  """One simulator per config and process (source folders are validated once)."""
  return Simulator(config)


def render_clip(rng: SeedOrRng, config: SimulatorConfig = SimulatorConfig()) -> dict:
  """One training window: frames [T, H, W, 3], stops [T], hdr [H, W, 3], flow
  [T, H, W, 2], occlusion [T, H, W] and metadata (module docstring)."""
  return get_simulator(config).window(rng)


def render_sequence(rng: SeedOrRng, num_frames: int,
                    config: SimulatorConfig = SimulatorConfig()) -> dict:
  """A whole clip: frames [N, H, W, 3], stops [N], hdr [N, H, W, 3], flow/occlusion
  [N-1, ...] from each frame to the next, and metadata (module docstring)."""
  return get_simulator(config).sequence(rng, num_frames)
