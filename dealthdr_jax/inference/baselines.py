"""Two non-learned HDR video baselines, with the model's frame-window interface.

Each takes a window of LDR frames around the output instant and returns the centre frame's
HDR in the radiance units of DESIGN.md §3 (`H = linearise(LDR_i) / e_i`):

    fn(frames [T, H, W, 3] float32 in [0, 1], stops [T] float32, response="gamma2.2")
      -> [H, W, 3] float32 ≥ 0            (T odd; the reference is frame T // 2)

* `reference_only`: the reference's own radiance estimate wherever it is well exposed; where
  it is saturated or very dark, the gap is filled from the neighbours' radiance estimates at
  the same pixel, without any alignment (moving content ghosts there).
* `dis_flow_merge`: a classical aligner-merger. For each neighbour, OpenCV's DIS optical
  flow (preset MEDIUM; on the 96×128 test scene its EPE is 0.09 px vs 0.41 for FAST, at
  ~55 vs ~11 ms per 720p flow on 2 CPU cores) runs between the reference re-exposed to
  the neighbour's exposure (clipped, re-encoded) and the neighbour, both turned into 8-bit
  grey by one shared histogram equalisation (a monotone map to 0..255). Flow where
  the reference or its re-exposed version is saturated or black (no texture to match) is
  replaced by a normalised-convolution interpolation of the reliable flow around it. The
  neighbour's radiance is warped onto the reference with `cv2.remap` (bilinear, sampled at
  p + flow(p) as DESIGN.md §3 defines flow; samples outside the frame get weight 0), then
  merged as below with a per-pixel consistency weight that rejects warped pixels which,
  re-exposed to the reference, disagree with what the reference shows.

Merging, shared by both: with `v` the largest channel of a pixel's LDR value,
  saturation weight  s(v) = 1 - smoothstep(0.80, 0.97, v)
  darkness weight    d(v) = smoothstep(0.02, 0.20, v)
the reference keeps weight `w_ref = s(v_ref) d(v_ref)`; the rest, `1 - w_ref`, goes to a
Debevec-style fill: neighbours' radiances averaged with weights `s d · e_n / e_max` (longer
exposures are less noisy) `· 2^-(|dt|-1)` (nearer frames first) `· consistency` (dis_flow
only). Where no neighbour carries weight either, the fill falls back to the reference, or,
where the reference is saturated, to the largest radiance any frame shows there (all are
lower bounds when everything is clipped).
`BASELINES` maps the names `infer --method` accepts to the functions.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from data_pipeline import response as resp

SATURATION_RAMP = (0.80, 0.97)
DARKNESS_RAMP = (0.02, 0.20)
# Reference values in this ramp count as clipped (their radiance is only a lower bound).
CLIPPED_RAMP = (0.95, 0.995)
# Fallback weight: where the neighbours' total weight is far below this, use the reference.
FILL_EPS = 1e-3
# dis_flow: a warped neighbour, re-exposed to the reference and encoded, is trusted with
# weight exp(-0.5 (diff / CONSISTENCY_SIGMA)^2), diff = largest channel difference to the
# reference's LDR value.
CONSISTENCY_SIGMA = 0.08
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
  t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)


def exposure_weight(ldr: np.ndarray) -> np.ndarray:
  """Smooth well-exposedness of LDR pixels (1 mid-range, 0 when saturated or black).

  Args:
    ldr: [..., H, W, 3] float in [0, 1], response-encoded.
  Returns:
    [..., H, W] float32 in [0, 1].
  """
  v = np.max(ldr, axis=-1)
  return (1.0 - _smoothstep(*SATURATION_RAMP, v)) * _smoothstep(*DARKNESS_RAMP, v)


def _check(frames: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  frames = np.asarray(frames, np.float32)
  stops = np.asarray(stops, np.float32)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"frames must be [T, H, W, 3], got shape {frames.shape}")
  if frames.shape[0] % 2 != 1:
    raise ValueError(f"need an odd number of frames (the centre is the reference), got "
                     f"{frames.shape[0]}")
  if stops.shape != (frames.shape[0],):
    raise ValueError(f"stops must be [{frames.shape[0]}], got shape {stops.shape}")
  if not np.isfinite(frames).all() or frames.min() < 0 or frames.max() > 1:
    raise ValueError("frames must be finite LDR values in [0, 1]")
  return frames, stops


def _merge(ref_ldr: np.ndarray, ref_rad: np.ndarray, nb_rad: list[np.ndarray],
           nb_weight: list[np.ndarray]) -> np.ndarray:
  """Reference where well exposed, weighted neighbour fill elsewhere (see module doc).

  Args:
    ref_ldr, ref_rad: [H, W, 3] reference LDR and radiance.
    nb_rad: per neighbour, [H, W, 3] radiance (aligned or not).
    nb_weight: per neighbour, [H, W] merge weight ≥ 0.
  """
  w_ref = exposure_weight(ref_ldr)[..., None]
  # Fallback where no neighbour is well exposed either: the reference, except where it is
  # saturated: there every frame's radiance is a lower bound, and the largest is the best.
  saturated = _smoothstep(*CLIPPED_RAMP, np.max(ref_ldr, axis=-1))[..., None]
  bound = np.max(np.stack([ref_rad] + list(nb_rad)), axis=0)
  fallback = saturated * bound + (1.0 - saturated) * ref_rad
  num = FILL_EPS * fallback
  den = np.full(w_ref.shape, FILL_EPS, np.float32)
  for rad, w in zip(nb_rad, nb_weight):
    num = num + w[..., None] * rad
    den = den + w[..., None]
  out = w_ref * ref_rad + (1.0 - w_ref) * (num / den)
  return np.maximum(out, 0.0).astype(np.float32)


def _neighbour_weight(ldr: np.ndarray, e: float, e_max: float, dt: int) -> np.ndarray:
  return exposure_weight(ldr) * np.float32(e / e_max) * np.float32(2.0 ** (1 - abs(dt)))


def reference_only(frames: np.ndarray, stops: np.ndarray,
                   response: str = "gamma2.2") -> np.ndarray:
  """Reference radiance, its badly exposed pixels filled from unaligned neighbours.

  Args:
    frames: [T, H, W, 3] float32 in [0, 1], LDR window (T odd, reference at T // 2).
    stops: [T] float32 exposure of each frame in stops (§3).
    response: camera response of the frames.
  Returns:
    [H, W, 3] float32 ≥ 0, HDR of the reference instant in §3 units.
  """
  frames, stops = _check(frames, stops)
  c = frames.shape[0] // 2
  e = resp.exposure(stops)
  rad = resp.ldr_to_radiance(frames, stops, response)
  others = [i for i in range(frames.shape[0]) if i != c]
  weights = [_neighbour_weight(frames[i], e[i], e.max(), i - c) for i in others]
  return _merge(frames[c], rad[c], [rad[i] for i in others], weights)


def _grey8_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Two [H, W, 3] LDR images → 8-bit grey through one shared histogram equalisation.

  The map is monotone and the same for both images (so matching brightness stays matched)
  and spreads their joint histogram over 0..255, so that dark exposure-matched pairs (a
  long reference re-exposed down) and scenes dominated by a few bright regions keep
  enough contrast for the flow.
  """
  bins = 4096
  ia, ib = (np.round(np.clip(x.mean(axis=-1), 0.0, 1.0) * (bins - 1)).astype(np.int32)
            for x in (a, b))
  counts = np.bincount(ia.ravel(), minlength=bins) + np.bincount(ib.ravel(), minlength=bins)
  lut = np.round(np.cumsum(counts) * (255.0 / (ia.size + ib.size))).astype(np.uint8)
  return lut[ia], lut[ib]


def dis_flow(ref_ldr: np.ndarray, ref_stops: float, nb_ldr: np.ndarray, nb_stops: float,
             response: str = "gamma2.2") -> np.ndarray:
  """DIS optical flow from the reference to a neighbour, on exposure-matched images.

  Args:
    ref_ldr: [H, W, 3] float in [0, 1], the reference frame.
    ref_stops: its exposure in stops.
    nb_ldr: [H, W, 3] float in [0, 1], the neighbour frame.
    nb_stops: its exposure in stops.
    response: camera response of both.
  Returns:
    [H, W, 2] float32 (dx, dy): reference pixel p corresponds to p + flow in the
    neighbour (DESIGN.md §3).
  """
  matched = resp.radiance_to_ldr(resp.ldr_to_radiance(ref_ldr, ref_stops, response),
                                 nb_stops, response)
  dis = cv2.DISOpticalFlow_create(DIS_PRESET)
  a, b = _grey8_pair(matched, nb_ldr)
  flow = dis.calc(a, b, None).astype(np.float32)
  # Where the reference (or its re-exposed version) is saturated or black it shows no
  # texture to match, and DIS only guesses; fill those pixels from the reliable flow around.
  reliable = (exposure_weight(ref_ldr) > 0.5) & (exposure_weight(matched) > 0.5)
  return fill_flow(flow, reliable)


def fill_flow(flow: np.ndarray, reliable: np.ndarray) -> np.ndarray:
  """Replaces unreliable flow by a normalised-convolution interpolation of reliable flow.

  Each unreliable pixel takes the Gaussian-weighted mean of reliable flow at the smallest
  scale (σ = 2, 4, 8, … pixels) whose window holds enough reliable pixels.

  Args:
    flow: [H, W, 2] float32.
    reliable: [H, W] bool.
  Returns:
    [H, W, 2] float32; equal to `flow` where `reliable`. If nothing is reliable, `flow`.
  """
  if reliable.all() or not reliable.any():
    return flow
  m = reliable.astype(np.float32)
  weighted = np.concatenate([flow * m[..., None], m[..., None]], axis=-1)
  out = flow.copy()
  todo = ~reliable
  sigma = 2.0
  while todo.any() and sigma < max(flow.shape[:2]):
    blurred = _gaussian_blur(weighted, sigma)
    ready = todo & (blurred[..., 2] > 0.05)
    out[ready] = blurred[ready][:, :2] / blurred[ready][:, 2:]
    todo &= ~ready
    sigma *= 2.0
  if todo.any():  # Huge holes: the mean reliable flow.
    out[todo] = flow[reliable].mean(axis=0)
  return out


def _gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian blur of [H, W, C] `x`; wide blurs run on a downsampled copy (cheap, smooth)."""
  if sigma <= 8.0:
    return cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
  h, w = x.shape[:2]
  factor = sigma / 4.0
  small = cv2.resize(x, (max(1, round(w / factor)), max(1, round(h / factor))),
                     interpolation=cv2.INTER_AREA)
  small = cv2.GaussianBlur(small, (0, 0), 4.0, borderType=cv2.BORDER_REFLECT)
  return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(x.shape)


def warp_to_reference(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Samples `image` at p + flow(p) (bilinear, border replicated).

  Args:
    image: [H, W, C] float32, a neighbour frame (any quantity).
    flow: [H, W, 2] float32 (dx, dy), reference → neighbour.
  Returns:
    warped: [H, W, C] float32, the neighbour aligned to the reference.
    inside: [H, W] bool, whether p + flow(p) lies inside the neighbour frame.
  """
  h, w = flow.shape[:2]
  ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
  map_x = xs + flow[..., 0]
  map_y = ys + flow[..., 1]
  warped = cv2.remap(np.ascontiguousarray(image, np.float32), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
  if warped.ndim == 2:
    warped = warped[..., None]
  inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
  return warped, inside


def dis_flow_merge(frames: np.ndarray, stops: np.ndarray,
                   response: str = "gamma2.2") -> np.ndarray:
  """DIS flow alignment of every neighbour, then consistency-checked weighted merge.

  Args:
    frames: [T, H, W, 3] float32 in [0, 1], LDR window (T odd, reference at T // 2).
    stops: [T] float32 exposure of each frame in stops (§3).
    response: camera response of the frames.
  Returns:
    [H, W, 3] float32 ≥ 0, HDR of the reference instant in §3 units.
  """
  frames, stops = _check(frames, stops)
  c = frames.shape[0] // 2
  e = resp.exposure(stops)
  rad = resp.ldr_to_radiance(frames, stops, response)
  ref_ldr = frames[c]
  nb_rad, weights = [], []
  for i in range(frames.shape[0]):
    if i == c:
      continue
    flow = dis_flow(ref_ldr, stops[c], frames[i], stops[i], response)
    warped, inside = warp_to_reference(np.concatenate([rad[i], frames[i]], axis=-1), flow)
    w_rad, w_ldr = warped[..., :3], warped[..., 3:]
    # Consistency: the aligned neighbour, seen at the reference's exposure, should look
    # like the reference (saturated where it is saturated).
    seen = resp.radiance_to_ldr(w_rad, stops[c], response)
    diff = np.max(np.abs(seen - ref_ldr), axis=-1)
    consistency = np.exp(-0.5 * (diff / CONSISTENCY_SIGMA) ** 2)
    nb_rad.append(w_rad)
    weights.append(_neighbour_weight(w_ldr, e[i], e.max(), i - c) * consistency * inside)
  return _merge(ref_ldr, rad[c], nb_rad, weights)


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "reference_only": reference_only,
    "dis_flow": dis_flow_merge,
}
