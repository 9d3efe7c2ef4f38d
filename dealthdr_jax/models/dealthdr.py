"""The DeAltHDR model: frames of one window → linear HDR of the centre frame.

Per output frame (DESIGN.md §4): linearise and exposure-normalise every frame of the window
`t-r..t+r`; encode with the dual encoder; estimate flow reference↔neighbour on exposure-
matched images with the pyramid flow network; align every neighbour at every feature
scale with FGMA (pure flow warping at scales without FGMA, or at ratio 0); fuse and
reconstruct linear HDR in the radiance units of §3.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dealthdr_jax.models import fgma as fgma_lib
from dealthdr_jax.models import flow as flow_lib
from dealthdr_jax.models import recon
from dealthdr_jax.models import response as resp
from dealthdr_jax.models import warp as warp_lib

# Weights of the unreliability score u = fb_error[px] + PHOTO_WEIGHT·photo + SAT_WEIGHT·sat.
PHOTO_WEIGHT = 10.0
SAT_WEIGHT = 1.0
SATURATED = 0.95
UNDEREXPOSED = 0.05


def exposure_matched(lin: jnp.ndarray, expo: jnp.ndarray, radius: int
                     ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The flow network's inputs: each (reference, neighbour) pair at the same exposure.

  Args:
    lin: [B, T, H, W, 3] linearised frames; expo: [B, T] their relative exposures;
    radius: the reference is frame `radius`.
  Returns:
    (ref, nbr), each [B·M, H, W, 3] (M = T-1 neighbours in window order): the reference
    re-exposed to each neighbour's exposure, and the neighbour, gamma-2.2 encoded, clipped.
  """
  b, t, h, w, _ = lin.shape
  nbr_ids = [i for i in range(t) if i != radius]
  gain = (expo[:, nbr_ids] / expo[:, radius:radius + 1])[:, :, None, None, None]
  ref = resp.apply_response(lin[:, radius:radius + 1] * gain, "gamma2.2")
  nbr = resp.apply_response(lin[:, nbr_ids], "gamma2.2")
  return ref.reshape(b * (t - 1), h, w, 3), nbr.reshape(b * (t - 1), h, w, 3)


def flow_reliability(ref_ldr: jnp.ndarray, ref_lin: jnp.ndarray, gain: jnp.ndarray,
                     response: str) -> jnp.ndarray:
  """How well each reference pixel can be matched in each neighbour, in [0, 1].

  The product of the well-exposedness of the reference and of the reference re-exposed to
  the neighbour (`response.well_exposedness`): 0 where either is saturated or black.

  Args:
    ref_ldr: [B, H, W, 3] the reference, response-encoded; ref_lin: [B, H, W, 3] linear;
    gain: [B, M] each neighbour's exposure over the reference's; response: the camera's.
  Returns:
    [B·M, H, W] float32.
  """
  b, h, w, _ = ref_ldr.shape
  m = gain.shape[1]
  matched = resp.apply_response(
      jnp.clip(ref_lin[:, None] * gain[:, :, None, None, None], 0.0, 1.0), response)
  own = resp.well_exposedness(jnp.max(ref_ldr, axis=-1))[:, None]        # [B, 1, H, W]
  return (own * resp.well_exposedness(jnp.max(matched, axis=-1))).reshape(b * m, h, w)


# A clip-edge slot takes its chained flow where that flow's mismatch is below this share
# of the direct flow's (`DeAltHDR._chained_flow`). Chosen on the 3exp validation windows
# laid out as clip edges (docs/results_history.md, "Clip-edge windows chain their flow"):
# 0.9 gains as 1 does on large motion and the cameras, and loses nothing on gentle motion.
CHAIN_MARGIN = 0.9


def chain_plan(offsets: Sequence[int] | None, radius: int) -> tuple[tuple[int, int], ...]:
  """Which slots of a window take a chained flow: ((slot, via), ...) frame indices.

  A slot whose frame is further from the reference than the slot itself (a clip-edge fill,
  `clips.window_offsets`) is reached through a slot holding the frame one step nearer in
  the same direction and no further than its own place: the one at that very place if
  there is one, else the nearest. Without such a slot it keeps its own flow.

  Args:
    offsets: T ints, each slot's frame's distance from the reference in frames (negative
      before it), or None (every slot where it belongs: no chains).
    radius: r, the reference is slot r.
  Raises:
    ValueError: offsets of the wrong length, or a reference that is not at offset 0.
  """
  if offsets is None:
    return ()
  offsets = tuple(int(o) for o in offsets)
  if len(offsets) != 2 * radius + 1 or offsets[radius] != 0:
    raise ValueError(f"offsets must be {2 * radius + 1} frame distances with 0 at the "
                     f"reference (slot {radius}), got {offsets}")
  chains = []
  for i, d in enumerate(offsets):
    if abs(d) <= abs(i - radius):
      continue
    nearer = d - (1 if d > 0 else -1)
    via = [j for j, e in enumerate(offsets) if e == nearer and j != radius
           and abs(e) <= abs(j - radius)]
    if nearer and via:
      chains.append((i, min(via, key=lambda j: (j - radius != nearer, abs(j - i)))))
  return tuple(chains)


def block_mean(x: jnp.ndarray, factor: int) -> jnp.ndarray:
  """Mean over factor×factor blocks. x: [N, H, W, C], H and W multiples of factor →
  [N, H/factor, W/factor, C]."""
  n, h, w, c = x.shape
  return x.reshape(n, h // factor, factor, w // factor, factor, c).mean((2, 4))


def flow_inputs(model: "DeAltHDR", frames: jnp.ndarray, stops: jnp.ndarray
                ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """What `model`'s flow network sees for a window, without running the rest.

  frames: [B, T, H, W, 3] LDR in [0, 1] (H, W multiples of `pad_multiple`), stops: [B, T]
  → `exposure_matched` pairs, [B·M, H, W, 3] each (no response calibration applied).
  """
  rel = stops - jnp.min(stops, axis=1, keepdims=True)
  lin = resp.linearise(frames.astype(jnp.float32), model.response)
  return exposure_matched(lin, 2.0 ** rel, model.radius)


FLOW_ARCHS = ("spynet", "pwc")
FLOW_PAIR_MODES = ("off", "select", "all")


def flow_network(model: "DeAltHDR", name: str | None = None) -> nn.Module:
  """The model's flow network; its parameters are the model's `params["flow"]` (the same
  construction as in `DeAltHDR.__call__`, which passes `name="flow"`)."""
  if model.flow_arch == "spynet":
    return flow_lib.PyramidFlow(model.flow_levels, model.flow_finest_log2, model.flow_channels,
                                model.flow_kernel, _dtype(model.dtype), name=name)
  if model.flow_arch == "pwc":
    return flow_lib.CostVolumeFlow(model.flow_levels, model.flow_finest_log2,
                                   model.flow_features, model.flow_channels,
                                   model.flow_corr_radius, model.flow_refine,
                                   _dtype(model.dtype), name=name)
  raise ValueError(f"unknown flow_arch {model.flow_arch!r}; expected one of {FLOW_ARCHS}")


def _dtype(name: str):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


class DeAltHDR(nn.Module):
  """HDR reconstruction from a window of alternating-exposure LDR frames.

  Attributes: see `configs/common.py` (`model` section) for their meaning and presets.
  """
  radius: int = 1
  features: Sequence[int] = (16, 24, 32)
  flow_levels: int = 4
  flow_finest_log2: int = 2
  flow_channels: Sequence[int] = (16, 32, 16)
  flow_kernel: int = 5
  # "spynet": image pyramid, residual from [ref, warped nbr, flow] (models up to v1);
  # "pwc": feature pyramid `flow_features` (one entry per octave from 1/2) and a local
  # cost volume of radius `flow_corr_radius` at every level (`models/flow.py`).
  flow_arch: str = "spynet"
  flow_features: Sequence[int] = ()
  flow_corr_radius: int = 3
  # "pwc" only: hidden channels of a dilated-conv refinement of the finest flow on a fresh
  # cost volume (`flow.FlowRefiner`); () = none (the shipped models; docs/results_history.md,
  # "A refinement pass on the flow").
  flow_refine: Sequence[int] = ()
  fgma_levels: Sequence[int] = (1, 2)
  fgma_window: int = 3
  fgma_heads: int = 2
  head_features: int = 16
  # Ablation switches: FGMA windows at the flow-displaced (True) or the same position;
  # separate short/long stems (True) or one shared stem.
  fgma_flow_guided: bool = True
  dual_encoder: bool = True
  # Alignment uses flow filled, where the reference is saturated or black (in its own or
  # the neighbour's exposure), from the reliable flow around (`warp.fill_flow`; the flow
  # network's own outputs, and its loss, are unchanged). No parameters.
  flow_fill: bool = False
  # With `flow_fill`: the fill also replaces flow whose forward-backward round trip misses
  # (`warp.round_trip_weight`): each pixel's reliability is scaled by exp(-miss / c), the
  # miss in input pixels, so flow the two directions disagree on (occlusions, mismatches)
  # is filled from the consistent flow around it. 0 = off (models up to v7 2exp / v6
  # 3exp were trained without it). No parameters.
  flow_fill_consistency: float = 0.0
  # Pairs of neighbours of one exposure on either side of a reference longer than they
  # are, where the reference has the window's longest exposure (a two-exposure pattern's
  # long frames: t-1 and t+1; a three-exposure pattern's, radius 2: t-2 with t+1 and t-1
  # with t+2): the flow to them may come from the flow between them, split where the
  # reference lies between them under constant velocity (`warp.straddle_flow`; -/+ half of
  # it for t∓1), since short frames are sharp and unclipped where a long reference is
  # blurred or saturated. The same flow network computes it, on both neighbours
  # downsampled by `flow_pair_scale` (a power of two) so that their two or three frames'
  # motion stays within its reach. "select": per region, the candidate (the reference's
  # own flow, after the fill, or the pair's) under which the two neighbours, warped onto
  # the reference, agree best (the pair's where its disagreement is below
  # `flow_pair_margin` times the own flow's: < 1 keeps the own flow unless the pair's is
  # clearly better; 0.8 was best on the 2exp validation sets); "all": the pair's wherever
  # it applies; "off": never (the shipped models). Either takes it only where both
  # neighbours recorded the scene and both its samples lie in the frame (clipped or
  # off-frame, the neighbours agree under any flow). No parameters.
  flow_pair: str = "off"
  flow_pair_scale: int = 2
  flow_pair_margin: float = 0.8
  # "select" blends the two flows by its choice averaged over (2k+1)² flow-grid cells,
  # k = `flow_pair_smooth` (a hard switch per cell, as measured up to 2026-12-07, at 0; 5,
  # 44 pixels across at the shipped grid, was best on the 2exp validation sets).
  flow_pair_smooth: int = 5
  # FGMA moves the flow too: at the selected tokens of the FGMA level at the flow's
  # resolution, a correction read from where the attention looked (`fgma.FlowCorrection`,
  # zero-initialised) is added to the flow that warps the full-resolution candidates and
  # the coarser levels' features; adds parameters["fgma_flow_correction"]. Needs
  # `flow_finest_log2 - 1` in `fgma_levels`. In aux["flow"]; the pyramid is unchanged.
  fgma_flow_correction: bool = False
  # How that correction starts (`fgma.FlowCorrection`): "zero" (none until trained) or
  # "mean_offset" (the attention's soft argmax: the heads' mean expected window offset).
  fgma_correction_init: str = "zero"
  # Adds log(well-exposedness + 0.01) of each candidate's LDR value to its blend logit, so
  # clipped or nearly black candidates start near zero weight (the learned logits can
  # still override); no parameters, so it can be switched on for a fine-tune.
  exposure_prior: bool = False
  # Learned response calibration: K > 0 adds K logits of a monotone curve (identity at
  # init, `response.curve_knots`) applied to the LDR before `response`'s linearisation,
  # so stage 2 can learn a camera whose curve differs from the assumed one. The curve is
  # in aux["response_curve"] for the re-exposure loss. 0 = off (no parameter).
  response_calibration: int = 0
  # The calibration curve's least slope (`response.curve_knots`): > 0 keeps every range of
  # the input's contrast (the curve cannot flatten or invert it).
  response_min_slope: float = 0.0
  # Side k of a per-pixel k×k filter on the reconstruction's blend, its taps predicted by
  # the head (`recon.filter_with_taps`; adds params["recon"]["head_kernel"], zero-
  # initialised: a model trained without it starts unchanged). 0 = off (odd k ≥ 3).
  recon_kernel: int = 0
  # How far the kernel reaches in brightness (`recon.filter_with_taps`' value_range c): each
  # neighbour's difference from the centre enters clamped to ±c · (the centre's brightest
  # channel + a floor), so a light cannot bleed into the recorded pixels beside it; 0 = no
  # clamp (how v6 / v7 2exp and v6 3exp were trained). No parameters.
  recon_kernel_range: float = 0.0
  # Bound of the reconstruction's per-pixel log-gain (`recon.Reconstruction`): exp(2) ≈ 7.4×
  # the blend at most (models up to v7 2exp / v6 3exp); larger lets the model raise
  # highlights clipped in every exposure towards their radiance. No parameters.
  max_log_gain: float = 2.0
  response: str = "gamma2.2"
  dtype: str = "float32"

  @classmethod
  def from_config(cls, model_config) -> "DeAltHDR":
    """Builds the model from a config's `model` section (a ConfigDict or mapping)."""
    cfg = dict(model_config)
    known = {f for f in cls.__dataclass_fields__ if f not in ("parent", "name")}
    unknown = sorted(set(cfg) - known)
    if unknown:
      raise ValueError(f"unknown model config keys {unknown}; known: {sorted(known)}")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    model = cls(**cfg)
    if model.fgma_flow_correction and model.correction_level not in model.fgma_levels:
      raise ValueError(
          f"model.fgma_flow_correction needs FGMA at the flow's resolution, feature level "
          f"{model.correction_level} (1/{2 ** model.flow_finest_log2}), in model.fgma_levels "
          f"{tuple(model.fgma_levels)}")
    if model.fgma_correction_init not in fgma_lib.CORRECTION_INITS:
      raise ValueError(f"model.fgma_correction_init must be one of "
                       f"{fgma_lib.CORRECTION_INITS}, got {model.fgma_correction_init!r}")
    if not model.recon_kernel_range >= 0:
      raise ValueError(f"model.recon_kernel_range must be >= 0 (0 = no clamp), got "
                       f"{model.recon_kernel_range}")
    if not model.flow_fill_consistency >= 0:
      raise ValueError(f"model.flow_fill_consistency must be >= 0 (0 = off), got "
                       f"{model.flow_fill_consistency}")
    if model.flow_fill_consistency and not model.flow_fill:
      raise ValueError("model.flow_fill_consistency acts on the fill: it needs "
                       "model.flow_fill=True")
    if model.flow_pair not in FLOW_PAIR_MODES:
      raise ValueError(f"model.flow_pair must be one of {FLOW_PAIR_MODES}, got "
                       f"{model.flow_pair!r}")
    scale = model.flow_pair_scale
    if not (isinstance(scale, int) and scale >= 1 and scale & (scale - 1) == 0):
      raise ValueError(f"model.flow_pair_scale must be a power of two >= 1, got {scale!r}")
    if not (isinstance(model.flow_pair_smooth, int) and model.flow_pair_smooth >= 0):
      raise ValueError(f"model.flow_pair_smooth must be an integer >= 0, got "
                       f"{model.flow_pair_smooth!r}")
    if not model.flow_pair_margin > 0:
      raise ValueError(f"model.flow_pair_margin must be > 0, got {model.flow_pair_margin}")
    if not model.max_log_gain > 0:
      raise ValueError(f"model.max_log_gain must be > 0, got {model.max_log_gain}")
    if model.recon_kernel and (model.recon_kernel < 3 or model.recon_kernel % 2 == 0):
      raise ValueError(f"model.recon_kernel must be 0 (off) or an odd size >= 3, got "
                       f"{model.recon_kernel}")
    return model

  @property
  def correction_level(self) -> int:
    """The feature level at the finest flow's resolution (features start at 1/2)."""
    return self.flow_finest_log2 - 1

  @property
  def window(self) -> int:
    return 2 * self.radius + 1

  @property
  def pad_multiple(self) -> int:
    """H and W are padded internally to a multiple of this."""
    return max(2 ** (self.flow_finest_log2 + self.flow_levels - 1), 2 ** len(self.features))

  @property
  def min_size(self) -> int:
    """Smallest frame side: the coarsest flow level must hold at least one pixel."""
    return 2 ** (self.flow_finest_log2 + self.flow_levels - 1)

  def check_inputs(self, frames, stops) -> None:
    """Raises ValueError naming the argument and the expected shape or range.

    Shape checks always run; value checks (NaN/Inf, range) run on concrete arrays, i.e.
    outside `jit` — `dealthdr_jax` entry points call this before compiling.
    """
    shape = tuple(np.shape(frames))
    if len(shape) != 5 or shape[-1] != 3:
      raise ValueError(f"frames must be [batch, time, height, width, 3], got shape {shape}")
    b, t, h, w, _ = shape
    if t != self.window:
      raise ValueError(f"frames has {t} frames per window, but this model (radius "
                       f"{self.radius}) needs time = 2*radius+1 = {self.window}")
    if tuple(np.shape(stops)) != (b, t):
      raise ValueError(f"stops must be [batch, time] = [{b}, {t}] to match frames, got "
                       f"shape {tuple(np.shape(stops))}")
    if min(h, w) < self.min_size:
      raise ValueError(
          f"frames are {h}x{w} (height x width), but this model needs at least "
          f"{self.min_size}x{self.min_size}: its flow pyramid has {self.flow_levels} levels "
          f"from 1/{2 ** self.flow_finest_log2} resolution down")
    if isinstance(frames, jax.core.Tracer) or isinstance(stops, jax.core.Tracer):
      return
    frames = np.asarray(frames)
    stops = np.asarray(stops)
    for name, arr in (("frames", frames), ("stops", stops)):
      bad = ~np.isfinite(arr)
      if bad.any():
        bi, ti = np.argwhere(bad)[0][:2]
        raise ValueError(f"{name} contains NaN or Inf (first at batch {bi}, frame {ti})")
    if frames.size and (frames.min() < 0 or frames.max() > 1):
      raise ValueError(f"frames must be LDR values in [0, 1], got range [{frames.min()}, "
                       f"{frames.max()}] (8-bit images must be divided by 255, 16-bit by 65535)")

  @nn.compact
  def __call__(self, frames: jnp.ndarray, stops: jnp.ndarray, ratio: float = 0.25,
               dense_attention: bool = False, attention_tokens: bool = False,
               offsets: tuple[int, ...] | None = None) -> tuple[jnp.ndarray, dict]:
    """Reconstructs the HDR frame at the window's centre.

    Args:
      frames: [B, T, H, W, 3] float in [0, 1], camera-response-encoded LDR, T = 2r+1,
        the reference at index r. Any H, W ≥ `min_size` (padded internally).
      stops: [B, T] exposure of each frame in stops (DESIGN.md §3; any offset).
      ratio: static share of tokens that get attention in FGMA (0 = pure flow).
      dense_attention: use FGMA's dense reference path (tests).
      attention_tokens: also return where FGMA's attention looked (static; training).
      offsets: static, how many frames from the reference each slot's frame really is
        (T ints, 0 at the reference), or None for the slots' own positions -r..r. A window
        filled in at a clip edge (`clips.window_offsets`) holds frames further away than
        their slots: such a slot's flow is chained through the slot holding the frame one
        step nearer on its side where that matches better (`_chained_flow`); other slots
        are unchanged.
    Returns:
      hdr: [B, H, W, 3] float32 ≥ 0, linear radiance in §3 units.
      aux: dict with
        "flow": [B, M, H, W, 2] reference → neighbour flow at full resolution (M = T-1),
          the one that warps the candidates (filled and corrected when switched on),
        "flow_aligned": [B, M, h, w, 2] the same at the flow network's finest resolution,
        "flow_pyramid", "flow_bwd_pyramid": lists (coarse → fine) of [B, M, h, w, 2] at the
          padded size (crops that are multiples of `pad_multiple` are never padded),
        "masks": {level: [B, M, h, w]} FGMA selections,
        "blend_weights": [B, H, W, T], "pad": (pad_h, pad_w),
        "flow_chained": (only with `offsets` that chain a slot) [B, K] bool, which of
          `chain_plan`'s slots took the chained flow,
        "response_curve": [K+1] the calibration curve's knots (only with
          `response_calibration` > 0),
        "attention": (only with `attention_tokens`) {level: FGMA's tokens at that level,
          `fgma.FGMA` with_tokens, batch and neighbours flattened to B·M; absent at
          ratio 0}; level l's features are 1/2**(l+1) of the padded input, the size of
          its "masks" entry.
    """
    self.check_inputs(frames, stops)
    chains = chain_plan(offsets, self.radius)
    dtype = _dtype(self.dtype)
    frames = frames.astype(jnp.float32)
    stops = stops.astype(jnp.float32)
    b, t, h0, w0, _ = frames.shape
    m = t - 1
    r = self.radius
    pad_h = -h0 % self.pad_multiple
    pad_w = -w0 % self.pad_multiple
    frames = jnp.pad(frames, ((0, 0), (0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    h, w = h0 + pad_h, w0 + pad_w
    curve = None
    if self.response_calibration > 0:
      curve = resp.curve_knots(self.param("response_calibration", nn.initializers.zeros,
                                          (self.response_calibration,), jnp.float32),
                               self.response_min_slope)
      frames = resp.apply_curve(frames, curve)

    # Exposure normalisation relative to the window's shortest frame.
    min_stops = jnp.min(stops, axis=1)                                       # [B]
    rel = stops - min_stops[:, None]                                         # [B, T]
    expo = 2.0 ** rel
    lin = resp.linearise(frames, self.response)
    radiance = lin / expo[:, :, None, None, None]                            # [B, T, H, W, 3]
    is_long = rel > 0.5 * jnp.max(rel, axis=1, keepdims=True) + 1e-3

    # Features of every frame.
    enc_in = jnp.concatenate([frames, radiance], axis=-1).reshape(b * t, h, w, 6)
    if not self.dual_encoder:
      is_long = jnp.zeros_like(is_long)
    feats = recon.DualEncoder(self.features, dtype, dual=self.dual_encoder, name="encoder")(
        enc_in.astype(dtype), is_long.reshape(b * t))
    feats = [f.reshape((b, t) + f.shape[1:]) for f in feats]
    nbr_ids = [i for i in range(t) if i != r]
    ref_feats = [f[:, r] for f in feats]
    nbr_feats = [f[:, nbr_ids] for f in feats]                               # [B, M, h, w, C]

    # Flow on exposure-matched images: the reference re-exposed to each neighbour.
    ref_matched, nbr_matched = exposure_matched(lin, expo, r)                # [B·M, H, W, 3]
    flow_net = flow_network(self, name="flow")
    flows = flow_net(
        jnp.concatenate([ref_matched, nbr_matched]),
        jnp.concatenate([nbr_matched, ref_matched]))
    flows_fwd = [f[:b * m] for f in flows]
    flows_bwd = [f[b * m:] for f in flows]
    flow_fine = flows_fwd[-1]                                                # [B·M, h/4, w/4, 2]

    score = None
    round_trip = None                       # Forward-backward miss, pixels of the flow grid.
    if ratio > 0 or (self.flow_fill and self.flow_fill_consistency):
      round_trip = warp_lib.forward_backward_error(flow_fine, flows_bwd[-1])  # [B·M, h, w]
    if ratio > 0:
      score = self._unreliability(ref_matched, nbr_matched, flow_fine, round_trip,
                                  frames[:, r], m)
    if self.flow_fill:
      gain = expo[:, nbr_ids] / expo[:, r:r + 1]                             # [B, M]
      reliability = flow_reliability(frames[:, r], lin[:, r], gain, self.response)
      reliability = block_mean(reliability[..., None], 2 ** self.flow_finest_log2)[..., 0]
      if self.flow_fill_consistency:
        reliability = reliability * warp_lib.round_trip_weight(
            round_trip * 2 ** self.flow_finest_log2, self.flow_fill_consistency)
      flow_fine = warp_lib.fill_flow(flow_fine, reliability)
    pair_share = None
    if self.flow_pair != "off":
      flow_fine, pair_share = self._pair_flow(flow_net, flow_fine, frames, nbr_matched, expo,
                                              (h0, w0))
    chained = None
    if chains:
      flow_fine, chained = self._chained_flow(flow_net, flow_fine, frames, lin, expo, chains,
                                              ref_matched, nbr_matched)

    aligned, masks, attention = [], {}, {}
    for level, (rf, nf) in enumerate(zip(ref_feats, nbr_feats)):
      _, _, fh, fw, c = nf.shape
      level_flow = warp_lib.resize_flow(flow_fine, fh, fw)
      nf = nf.reshape(b * m, fh, fw, c)
      if level in self.fgma_levels and ratio > 0:
        level_score = jax.image.resize(score, (b * m, fh, fw), method="linear")
        rf_rep = jnp.repeat(rf[:, None], m, axis=1).reshape(b * m, fh, fw, c)
        window_flow = level_flow if self.fgma_flow_guided else jnp.zeros_like(level_flow)
        correct = self.fgma_flow_correction and level == self.correction_level
        al, mask, *tokens = fgma_lib.FGMA(
            self.fgma_heads, self.fgma_window, dense=dense_attention, dtype=dtype,
            name=f"fgma{level}")(rf_rep, nf, level_flow, level_score, ratio,
                                 window_flow=window_flow,
                                 with_tokens=correct or attention_tokens)
        if attention_tokens:
          attention[level] = tokens[0]
        if correct:
          flow_fine = self._corrected_flow(flow_fine, tokens[0])
      else:
        al = warp_lib.warp(nf, level_flow, border="edge")
        mask = jnp.zeros((b * m, fh, fw, 1), jnp.float32)
      aligned.append(al.reshape(b, m, fh, fw, c))
      masks[level] = mask.reshape(b, m, fh, fw, 1)

    # Candidate radiances at full resolution: the reference and each warped neighbour.
    flow_full = warp_lib.resize_flow(flow_fine, h, w)                        # [B·M, H, W, 2]
    warped_nbr = warp_lib.warp(radiance[:, nbr_ids].reshape(b * m, h, w, 3), flow_full,
                               border="edge").reshape(b, m, h, w, 3)
    candidates = jnp.concatenate([radiance[:, r:r + 1], warped_nbr], axis=1)  # [B, T, H, W, 3]
    full_res = jnp.concatenate(
        [frames[:, r], radiance[:, r], jnp.moveaxis(warped_nbr, 1, 3).reshape(b, h, w, 3 * m)],
        axis=-1)
    prior = None
    if self.exposure_prior:
      cand_expo = jnp.concatenate([expo[:, r:r + 1], expo[:, nbr_ids]], axis=1)  # [B, T]
      cand_ldr = resp.apply_response(
          jnp.clip(candidates * cand_expo[:, :, None, None, None], 0.0, 1.0), self.response)
      prior = jnp.moveaxis(jnp.log(resp.well_exposedness(cand_ldr.max(-1)) + 0.01), 1, -1)
    hdr_rel, weights = recon.Reconstruction(self.features, self.head_features, dtype,
                                            kernel=self.recon_kernel,
                                            max_log_gain=self.max_log_gain,
                                            kernel_range=self.recon_kernel_range, name="recon")(
        ref_feats, aligned, list(masks.values()), full_res, candidates, prior)
    hdr = hdr_rel * (2.0 ** -min_stops)[:, None, None, None]

    unpad = lambda x: x[:, :h0, :w0] if x.ndim == 4 else x[:, :, :h0, :w0]
    aux = {
        "flow": unpad(flow_full.reshape(b, m, h, w, 2)),
        "flow_aligned": flow_fine.reshape((b, m) + flow_fine.shape[1:]),
        "flow_pyramid": [f.reshape((b, m) + f.shape[1:]) for f in flows_fwd],
        "flow_bwd_pyramid": [f.reshape((b, m) + f.shape[1:]) for f in flows_bwd],
        "masks": {lvl: mk[..., 0] for lvl, mk in masks.items()},
        "blend_weights": unpad(weights),
        "pad": (pad_h, pad_w),
    }
    if pair_share is not None:
      aux["flow_pair_share"] = pair_share                                    # [B]
    if chained is not None:
      aux["flow_chained"] = chained                                          # [B, K]
    if curve is not None:
      aux["response_curve"] = curve                                          # [K+1]
    if attention_tokens:
      aux["attention"] = attention
    return unpad(hdr), aux

  def _pair_flow(self, flow_net: nn.Module, flow: jnp.ndarray, frames: jnp.ndarray,
                 nbr_matched: jnp.ndarray, expo: jnp.ndarray, size: tuple[int, int]
                 ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`flow` with the flow to pairs of neighbours taken from the flow between them where
    `flow_pair` says so (see the attribute).

    Each frame i before the reference is paired with the frame j after it that has its
    exposure, the one nearest to i's mirror image (2r - i): in a two-exposure window t-1
    with t+1; in a three-exposure window of radius 2, t-2 with t+1 and t-1 with t+2. The
    pair applies when both are shorter than the reference and the reference has the
    window's longest exposure (with three exposures, a middle reference lost 0.3 dB on the
    validation sets). The reference lies a fraction (r - i) / (j - i) of the way from i to
    j (`warp.straddle_flow`).

    Args:
      flow_net: the model's flow network; flow: [B·M, h, w, 2] reference → each neighbour
      on the flow grid (h = H / 2**flow_finest_log2); frames: [B, T, H, W, 3] the (padded)
      LDR window as read; nbr_matched: [B·M, H, W, 3] the neighbours as the flow network
      sees them (`exposure_matched`); expo: [B, T] relative exposures; size: (H, W) before
      padding.
    Returns:
      (flow [B·M, h, w, 2], share [B]: the fraction of the reference's flow grid that took
      a pair's flow, over the pairs, 0 in windows where none applies).
    """
    b, t, big_h, big_w, _ = frames.shape
    m, r = t - 1, self.radius
    fh, fw = flow.shape[1:3]
    grid = 2 ** self.flow_finest_log2
    flow = flow.reshape(b, m, fh, fw, 2)
    neighbours = nbr_matched.reshape(b, m, big_h, big_w, 3)
    # Partners: frame i (< r) with the after-frame j of its exposure nearest to 2r - i.
    before, after = jnp.arange(r), jnp.arange(r + 1, t)
    same = (jnp.abs(expo[:, :r, None] - expo[:, None, r + 1:])
            <= 1e-3 * expo[:, None, r + 1:])                                 # [B, r, r]
    distance = jnp.abs(after[None, :] - (2 * r - before[:, None]))          # [r, r]
    pick = jnp.argmin(jnp.where(same, distance[None], 4 * t), axis=2)        # [B, r]
    partner = r + 1 + pick                                                   # frame j [B, r]
    longest = expo[:, r] >= 0.999 * jnp.max(expo, axis=1)                    # [B]
    applies = (jnp.any(same, axis=2) & (expo[:, r:r + 1] > 1.001 * expo[:, :r])
               & longest[:, None])                                           # [B, r]
    fraction = (r - before[None, :]) / (partner - before[None, :])           # [B, r]
    take_after = lambda x: jnp.take_along_axis(            # x[:, j - 1] for each partner j
        x, (partner - 1).reshape((b, r) + (1,) * (x.ndim - 2)), axis=1)
    a = neighbours[:, :r]                                                    # [B, r, H, W, 3]
    c = take_after(neighbours)
    # Downsampled, then padded so the flow network's coarsest level is whole.
    scale = self.flow_pair_scale
    multiple = scale * self.min_size
    pads = ((0, 0), (0, -big_h % multiple), (0, -big_w % multiple), (0, 0))
    small = lambda x: block_mean(jnp.pad(x.reshape((b * r,) + x.shape[2:]), pads,
                                         mode="edge"), scale)
    small_a, small_c = small(a), small(c)
    mutual = flow_net(jnp.concatenate([small_a, small_c]),
                      jnp.concatenate([small_c, small_a]))[-1]
    mutual = warp_lib.resize_flow(mutual, mutual.shape[1] * scale,
                                  mutual.shape[2] * scale)[:, :fh, :fw]      # [2·B·r, h, w, 2]
    across = warp_lib.straddle_flow(mutual[:b * r], mutual[b * r:], fraction.reshape(-1))
    across = across.reshape(b, r, fh, fw, 2)
    frac = fraction[:, :, None, None, None]
    pair = (-frac * across, (1.0 - frac) * across)       # Reference → i and → j.
    own = (flow[:, :r], take_after(flow))
    if self.flow_pair == "select":
      def disagreement(to_a, to_c):                # [B, r, h, w, 2] each → [B, r, h, w]
        up = lambda f: warp_lib.resize_flow(f.reshape(b * r, fh, fw, 2), big_h, big_w)
        warped = warp_lib.warp(jnp.concatenate([a, c]).reshape(2 * b * r, big_h, big_w, 3),
                               jnp.concatenate([up(to_a), up(to_c)]), border="edge")
        diff = jnp.mean(jnp.abs(warped[:b * r] - warped[b * r:]), axis=-1, keepdims=True)
        pooled = block_mean(diff, 2 * grid)
        return jax.image.resize(pooled, (b * r, fh, fw, 1),
                                method="linear")[..., 0].reshape(b, r, fh, fw)
      take = disagreement(*pair) < self.flow_pair_margin * disagreement(*own)  # [B, r, h, w]
    else:
      take = jnp.ones((b, r, fh, fw), bool)
    # Only where both neighbours' samples lie in the frame: beyond it both repeat its edge
    # (or its padding), agree whatever the flow, and the test above cannot tell.
    centre_y, centre_x = jnp.meshgrid((jnp.arange(fh) + 0.5) * grid - 0.5,
                                      (jnp.arange(fw) + 0.5) * grid - 0.5, indexing="ij")
    inside = jnp.ones((b, r, fh, fw), bool)
    for f in pair:
      reach_x, reach_y = jnp.abs(f[..., 0]) * grid, jnp.abs(f[..., 1]) * grid
      inside &= ((centre_x - reach_x >= 0) & (centre_x + reach_x <= size[1] - 1)
                 & (centre_y - reach_y >= 0) & (centre_y + reach_y <= size[0] - 1))
    # And only where both neighbours recorded the scene (`response.well_exposedness` of
    # each ≥ 0.5 over the flow cell): clipped or black, they match under any flow too.
    exposed = resp.well_exposedness(jnp.max(frames, axis=-1))               # [B, T, H, W]
    recorded = jnp.minimum(exposed[:, :r], jnp.take_along_axis(
        exposed, partner[:, :, None, None], axis=1))                         # [B, r, H, W]
    recorded = block_mean(recorded.reshape(b * r, big_h, big_w, 1), grid)
    recorded = recorded.reshape(b, r, fh, fw) >= 0.5
    allowed = inside & recorded & applies[:, :, None, None]                  # [B, r, h, w]
    take = (take & allowed).astype(jnp.float32)
    k = self.flow_pair_smooth
    if self.flow_pair == "select" and k:
      # The share of the pair's flow: the choice averaged over (2k+1)² cells, where allowed.
      box = jnp.pad(take.reshape(b * r, fh, fw, 1), ((0, 0), (k, k), (k, k), (0, 0)),
                    mode="edge")
      box = jax.lax.reduce_window(box, 0.0, jax.lax.add, (1, 2 * k + 1, 2 * k + 1, 1),
                                  (1, 1, 1, 1), "VALID") / (2 * k + 1) ** 2
      take = box.reshape(b, r, fh, fw) * allowed
    chosen_a = own[0] + take[..., None] * (pair[0] - own[0])                 # [B, r, h, w, 2]
    chosen_c = own[1] + take[..., None] * (pair[1] - own[1])
    # Frame j is neighbour j - 1: scatter each pair's second flow to its partner's slot.
    onehot = (partner[:, :, None] - 1 == jnp.arange(r, m)[None, None, :])    # [B, r, r]
    onehot &= jnp.cumsum(onehot, axis=1) == 1      # Two frames with one partner: the first.
    is_partner = jnp.any(onehot, axis=1)                                     # [B, r]
    after_flow = jnp.einsum("bpk,bphwc->bkhwc", onehot.astype(jnp.float32), chosen_c)
    after_flow = jnp.where(is_partner[:, :, None, None, None], after_flow, flow[:, r:])
    flow = jnp.concatenate([chosen_a, after_flow], axis=1).reshape(b * m, fh, fw, 2)
    return flow, jnp.mean(take, axis=(1, 2, 3))

  def _chained_flow(self, flow_net: nn.Module, flow: jnp.ndarray, frames: jnp.ndarray,
                    lin: jnp.ndarray, expo: jnp.ndarray, chains: tuple[tuple[int, int], ...],
                    ref_matched: jnp.ndarray, nbr_matched: jnp.ndarray
                    ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`flow` with each chained slot's flow replaced by reference → via → slot, in the
    windows where that flow matches the slot's frame to the reference better.

    The flow from the reference to frame `via` (its own, filled) is followed by the flow
    from `via` to the slot's frame, computed by the flow network on the two exposure-matched
    (`via` re-exposed to the slot's exposure) and filled where `via` is saturated or black:
    f(p) = f_via(p) + f_via→slot(p + f_via(p)): two steps of motion each within the flow
    network's reach, where under large motion one step of twice the motion is not. Under
    gentle motion the direct flow is the better one (one estimate, not two composed), so
    each window takes the chained flow only where its warped neighbour differs from the
    reference re-exposed to it by less than `CHAIN_MARGIN` times the direct flow's, over
    the pixels the reference recorded (`flow_reliability`).

    Args:
      flow_net: the model's flow network; flow: [B·M, h, w, 2] reference → each neighbour
      on the flow grid; frames, lin: [B, T, H, W, 3] the (padded) window as read and
      linearised; expo: [B, T] relative exposures; chains: (slot, via) frame indices
      (`chain_plan`); ref_matched, nbr_matched: [B·M, H, W, 3] `exposure_matched`.
    Returns:
      (flow [B·M, h, w, 2], chained [B, K] bool: which of `chains` took the chained flow).
    """
    b, t = frames.shape[:2]
    m, r = t - 1, self.radius
    fh, fw = flow.shape[1:3]
    flow = flow.reshape(b, m, fh, fw, 2)
    slot_of = lambda i: i if i < r else i - 1       # Frame index → neighbour index.
    slots = [i for i, _ in chains]
    vias = [v for _, v in chains]
    gain = expo[:, slots] / expo[:, vias]                                    # [B, K]
    k = len(chains)
    via_matched = resp.apply_response(
        jnp.clip(lin[:, vias] * gain[:, :, None, None, None], 0.0, 1.0), "gamma2.2")
    slot_matched = resp.apply_response(jnp.clip(lin[:, slots], 0.0, 1.0), "gamma2.2")
    shape = (b * k,) + frames.shape[2:]
    step = flow_net(via_matched.reshape(shape), slot_matched.reshape(shape))[-1]
    if self.flow_fill:
      reliability = jnp.stack([
          flow_reliability(frames[:, v], lin[:, v], gain[:, j:j + 1], self.response)
          for j, v in enumerate(vias)], axis=1).reshape(shape[:-1])          # [B·K, H, W]
      reliability = block_mean(reliability[..., None], 2 ** self.flow_finest_log2)[..., 0]
      step = warp_lib.fill_flow(step, reliability)
    first = flow[:, [slot_of(v) for v in vias]].reshape(b * k, fh, fw, 2)
    chained = first + warp_lib.warp(step, first, border="edge")              # [B·K, h, w, 2]
    chained = chained.reshape(b, k, fh, fw, 2)
    # Which matches better, on the flow grid: the reference re-exposed to the slot's frame
    # against that frame warped by each flow, weighted by where the reference recorded.
    grid = 2 ** self.flow_finest_log2
    pick = lambda x: x.reshape((b, m) + x.shape[1:])[:, [slot_of(i) for i in slots]]
    ref_small = block_mean(pick(ref_matched).reshape((b * k,) + frames.shape[2:]), grid)
    nbr_small = block_mean(pick(nbr_matched).reshape((b * k,) + frames.shape[2:]), grid)
    recorded = flow_reliability(frames[:, r], lin[:, r], expo[:, slots] / expo[:, r:r + 1],
                                self.response)                               # [B·K, H, W]
    recorded = block_mean(recorded[..., None], grid)[..., 0]
    def mismatch(f):                                              # [B, K, h, w, 2] → [B, K]
      diff = jnp.mean(jnp.abs(ref_small - warp_lib.warp(
          nbr_small, f.reshape(b * k, fh, fw, 2), border="edge")), axis=-1)
      return (jnp.sum(recorded * diff, axis=(1, 2))
              / (jnp.sum(recorded, axis=(1, 2)) + 1e-6)).reshape(b, k)
    direct = flow[:, [slot_of(i) for i in slots]]                           # [B, K, h, w, 2]
    better = mismatch(chained) < CHAIN_MARGIN * mismatch(direct)             # [B, K]
    chosen = jnp.where(better[:, :, None, None, None], chained, direct)
    for j, i in enumerate(slots):
      flow = flow.at[:, slot_of(i)].set(chosen[:, j])
    return flow.reshape(b * m, fh, fw, 2), better

  def _corrected_flow(self, flow: jnp.ndarray, tokens: dict) -> jnp.ndarray:
    """`flow` [B·M, h, w, 2] plus FlowCorrection's output at FGMA's selected tokens."""
    n, fh, fw, _ = flow.shape
    correction = fgma_lib.FlowCorrection(self.fgma_window // 2 + 1.0, self.fgma_heads,
                                         self.fgma_correction_init,
                                         name="fgma_flow_correction")(tokens["descriptor"])
    field = jnp.zeros((n, fh * fw, 2), jnp.float32).at[
        jnp.arange(n)[:, None], tokens["selected"]].set(correction)
    return flow + field.reshape(n, fh, fw, 2)

  def _unreliability(self, ref_matched, nbr_matched, flow_fwd, fb, ref_ldr, m):
    """Flow unreliability at the finest flow resolution → [B·M, h, w] float32.

    Forward-backward inconsistency `fb` [B·M, h, w] (pixels of the flow grid) +
    photometric error after exposure matching + the share of saturated or under-exposed
    reference pixels (where the neighbour, and so the alignment, matters most).
    """
    bm, fh, fw, _ = flow_fwd.shape
    factor = 2 ** self.flow_finest_log2
    pool = lambda x: block_mean(x, factor)
    ref_small, nbr_small = pool(ref_matched), pool(nbr_matched)
    photo = jnp.mean(jnp.abs(ref_small - warp_lib.warp(nbr_small, flow_fwd)), axis=-1)
    peak = jnp.max(ref_ldr, axis=-1, keepdims=True)
    badly_exposed = ((peak > SATURATED) | (peak < UNDEREXPOSED)).astype(jnp.float32)
    sat = jnp.repeat(pool(badly_exposed)[:, None], m, axis=1).reshape(bm, fh, fw)
    return jax.lax.stop_gradient(fb + PHOTO_WEIGHT * photo + SAT_WEIGHT * sat)
