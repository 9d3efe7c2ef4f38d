"""Scene motion: a moving camera over a background plus moving foreground layers.

Coordinates are pixels with pixel centres at integer positions (x right, y down), and
all transforms are 3x3 affine matrices acting on `[x, y, 1]`:
  - `C(t)` (camera): output pixel → background ("world") pixel. `C(t) = base @ cam(t)`,
    `cam(t)` a smooth similarity motion (translation, rotation, zoom) in output pixels.
  - `L_k(t)` (layer k): layer pixel → world pixel. `L_k(t) = C(anchor) @ placement_k @
    move_k(t)`, i.e. each layer moves by its own similarity in screen units.
  - background surface: `L_0 = identity` (it is the world).

Rendering at time t warps the background by `C(t)` and each layer by `L_k(t)^-1 C(t)`, then
composites the layers back to front with their alpha. A pixel belongs to the top-most layer
whose alpha there exceeds 0.5 (`surface_ids`), else to the background (id 0).

Ground-truth flow from time t_ref to time t follows each surface point: a reference pixel
p on surface s lands at `p' = C(t)^-1 L_s(t) L_s(t_ref)^-1 C(t_ref) p`, flow = p' - p
(DESIGN.md §3 convention: reference pixel p maps to p + flow in the neighbour). It is
occluded in the neighbour when p' lies outside the frame or a different surface is on top
at p' (nearest pixel) at time t.

Trajectories (`Trajectory`) are smooth in time: drift + constant acceleration + a sinusoidal
shake for translation, constant rates for rotation and log-zoom, all zero at t = anchor.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol

import cv2
import numpy as np


def translate(tx: float, ty: float) -> np.ndarray:
  return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float64)


def rotate_scale(theta: float, scale: float) -> np.ndarray:
  c, s = np.cos(theta) * scale, np.sin(theta) * scale
  return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)


def similarity_about(centre: tuple[float, float], *, tx: float = 0.0, ty: float = 0.0,
                     theta: float = 0.0, scale: float = 1.0) -> np.ndarray:
  """Rotation+zoom about `centre` (x, y), then a translation by (tx, ty)."""
  cx, cy = centre
  return translate(cx + tx, cy + ty) @ rotate_scale(theta, scale) @ translate(-cx, -cy)


def apply(m: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Applies the 3x3 affine `m` to coordinate arrays."""
  return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


@dataclasses.dataclass(frozen=True)
class Trajectory:
  """Smooth similarity motion, zero at `anchor`; times in frame periods, lengths in pixels.

  translation(t) = v τ + a τ²/2 + A (sin(2π f τ + φ) - sin φ), τ = t - anchor (per axis);
  rotation(t) = ω τ (radians); zoom(t) = exp(ζ τ).
  """
  velocity: tuple[float, float] = (0.0, 0.0)
  accel: tuple[float, float] = (0.0, 0.0)
  shake_amp: tuple[float, float] = (0.0, 0.0)
  shake_freq: float = 0.0
  shake_phase: tuple[float, float] = (0.0, 0.0)
  rot_rate: float = 0.0
  zoom_rate: float = 0.0
  anchor: float = 0.0

  def params(self, t: float) -> tuple[float, float, float, float]:
    """(tx, ty, theta, scale) at time t."""
    tau = t - self.anchor
    out = []
    for i in range(2):
      shake = self.shake_amp[i] * (np.sin(2 * np.pi * self.shake_freq * tau + self.shake_phase[i])
                                   - np.sin(self.shake_phase[i]))
      out.append(self.velocity[i] * tau + 0.5 * self.accel[i] * tau**2 + shake)
    return out[0], out[1], self.rot_rate * tau, float(np.exp(self.zoom_rate * tau))

  def matrix(self, t: float, centre: tuple[float, float]) -> np.ndarray:
    tx, ty, theta, scale = self.params(t)
    return similarity_about(centre, tx=tx, ty=ty, theta=theta, scale=scale)

  @property
  def is_static(self) -> bool:
    return not any([*self.velocity, *self.accel, *self.shake_amp, self.rot_rate, self.zoom_rate])


class TimeVaryingImage(Protocol):
  def at(self, t: float) -> np.ndarray:
    """[H, W, 3] float32 radiance at time t."""


@dataclasses.dataclass
class Layer:
  """A foreground object: `rgba` [h, w, 4] float32 (RGB radiance, alpha in [0, 1]);
  `placement` (3x3) maps layer pixels to output pixels at the scene's anchor time."""
  rgba: np.ndarray
  placement: np.ndarray
  motion: Trajectory

  @property
  def centre(self) -> tuple[float, float]:
    h, w, _ = self.rgba.shape
    return ((w - 1) / 2, (h - 1) / 2)


@dataclasses.dataclass
class Scene:
  """A renderable moving scene; see the module docstring for the transforms.

  background: [Hb, Wb, 3] float32 radiance, or an object with `.at(t)` returning one
    (HDR video). Sampled with mirrored borders outside its extent.
  size: (height, width) of the rendered frames.
  """
  background: np.ndarray | TimeVaryingImage
  base: np.ndarray
  camera: Trajectory
  layers: list[Layer]
  size: tuple[int, int]
  anchor: float = 0.0

  @property
  def centre(self) -> tuple[float, float]:
    h, w = self.size
    return ((w - 1) / 2, (h - 1) / 2)

  @property
  def is_static(self) -> bool:
    return self.camera.is_static and all(l.motion.is_static for l in self.layers) and (
        isinstance(self.background, np.ndarray))

  def camera_matrix(self, t: float) -> np.ndarray:
    """C(t): output pixel → world pixel."""
    return self.base @ self.camera.matrix(t, self.centre)

  def surface_matrix(self, s: int, t: float) -> np.ndarray:
    """L_s(t): surface pixel → world pixel (s = 0 background, s = k + 1 layer k)."""
    if s == 0:
      return np.eye(3)
    layer = self.layers[s - 1]
    return self.camera_matrix(self.anchor) @ layer.placement @ layer.motion.matrix(
        t, layer.centre)

  def point_map(self, s: int, t_from: float, t_to: float) -> np.ndarray:
    """Where a point of surface s seen at output pixel p at `t_from` is at `t_to`."""
    return (np.linalg.inv(self.camera_matrix(t_to)) @ self.surface_matrix(s, t_to)
            @ np.linalg.inv(self.surface_matrix(s, t_from)) @ self.camera_matrix(t_from))

  def _warp(self, image: np.ndarray, m: np.ndarray, border: int) -> np.ndarray:
    h, w = self.size
    out = cv2.warpAffine(image, m[:2].astype(np.float64), (w, h),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border,
                         borderValue=0)
    return out[..., None] if out.ndim == 2 else out

  def _layer_alpha_rgba(self, k: int, t: float, alpha_only: bool) -> np.ndarray:
    layer = self.layers[k]
    m = np.linalg.inv(self.surface_matrix(k + 1, t)) @ self.camera_matrix(t)
    src = np.ascontiguousarray(layer.rgba[..., 3]) if alpha_only else layer.rgba
    return self._warp(src, m, cv2.BORDER_CONSTANT)

  def render(self, t: float) -> np.ndarray:
    """[H, W, 3] float32 sharp radiance at instant t."""
    bg = self.background if isinstance(self.background, np.ndarray) else self.background.at(t)
    out = self._warp(bg, self.camera_matrix(t), cv2.BORDER_REFLECT_101)
    for k in range(len(self.layers)):
      rgba = self._layer_alpha_rgba(k, t, alpha_only=False)
      a = np.clip(rgba[..., 3:], 0.0, 1.0)
      out = out * (1.0 - a) + rgba[..., :3] * a
    return out.astype(np.float32)

  def surface_ids(self, t: float) -> np.ndarray:
    """[H, W] uint8: the visible surface at each pixel at time t (0 = background)."""
    ids = np.zeros(self.size, np.uint8)
    for k in range(len(self.layers)):
      ids[self._layer_alpha_rgba(k, t, alpha_only=True)[..., 0] > 0.5] = k + 1
    return ids

  def flow(self, t_ref: float, t: float, ids_ref: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth flow and occlusion from instant `t_ref` to instant `t`.

    Returns:
      flow: [H, W, 2] float32 (dx, dy): reference pixel p is at p + flow at time t.
      occluded: [H, W] bool, p is not visible at time t (covered, or outside the frame).
    """
    h, w = self.size
    if t == t_ref:
      return np.zeros((h, w, 2), np.float32), np.zeros((h, w), bool)
    ids_ref = self.surface_ids(t_ref) if ids_ref is None else ids_ref
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    flow = np.zeros((h, w, 2), np.float32)
    for s in np.unique(ids_ref):
      sel = ids_ref == s
      x2, y2 = apply(self.point_map(int(s), t_ref, t), xx[sel], yy[sel])
      flow[sel, 0] = x2 - xx[sel]
      flow[sel, 1] = y2 - yy[sel]
    flow[np.abs(flow) < 1e-6] = 0.0  # Matrix-inverse round-off of a still surface.
    ids_t = self.surface_ids(t)
    xn = np.round(xx + flow[..., 0]).astype(np.int64)
    yn = np.round(yy + flow[..., 1]).astype(np.int64)
    inside = (xn >= 0) & (xn < w) & (yn >= 0) & (yn < h)
    same = np.zeros((h, w), bool)
    same[inside] = ids_t[yn[inside], xn[inside]] == ids_ref[inside]
    return flow, ~same

  def max_displacement(self, t0: float, t1: float, steps: int = 8) -> float:
    """Upper estimate of how far any visible point moves in [t0, t1] (path length, px)."""
    if t1 <= t0 or (self.camera.is_static and all(l.motion.is_static for l in self.layers)):
      return 0.0
    h, w = self.size
    cx = np.array([0, w - 1, 0, w - 1], np.float64)
    cy = np.array([0, 0, h - 1, h - 1], np.float64)
    ts = np.linspace(t0, t1, steps + 1)
    worst = 0.0
    for s in range(len(self.layers) + 1):
      length = 0.0
      for a, b in zip(ts[:-1], ts[1:]):
        x2, y2 = apply(self.point_map(s, a, b), cx, cy)
        length += float(np.max(np.hypot(x2 - cx, y2 - cy)))
      worst = max(worst, length)
    return worst


@dataclasses.dataclass(frozen=True)
class MotionConfig:
  """Ranges of the random motion (pixels and degrees per frame period)."""
  camera_speed: tuple[float, float] = (0.0, 4.0)
  camera_accel: float = 0.3  # std, px / frame².
  camera_shake: tuple[float, float] = (0.0, 1.0)  # amplitude, px.
  shake_freq: tuple[float, float] = (0.05, 0.4)  # cycles / frame.
  camera_rotation: float = 0.5  # max |deg / frame|.
  camera_zoom: float = 0.01  # max |log-scale / frame|.
  num_layers: tuple[int, int] = (1, 3)  # inclusive.
  layer_speed: tuple[float, float] = (0.0, 8.0)
  layer_accel: float = 0.5
  layer_rotation: float = 3.0
  layer_zoom: float = 0.02
  layer_size: tuple[float, float] = (0.2, 0.55)  # fraction of min(H, W).

  @classmethod
  def static(cls, num_layers: tuple[int, int] = (1, 3)) -> "MotionConfig":
    """No motion at all (layers, if any, stand still)."""
    return cls(camera_speed=(0.0, 0.0), camera_accel=0.0, camera_shake=(0.0, 0.0),
               camera_rotation=0.0, camera_zoom=0.0, num_layers=num_layers,
               layer_speed=(0.0, 0.0), layer_accel=0.0, layer_rotation=0.0, layer_zoom=0.0)


def scale_motion(config: MotionConfig, factor: float) -> MotionConfig:
  """The same kinds of motion, every speed, acceleration, shake, rotation and zoom range
  multiplied by `factor` (a curriculum from small to large motion)."""
  f = float(factor)
  if f < 0:
    raise ValueError(f"motion scale must be ≥ 0, got {factor}")
  pair = lambda r: (r[0] * f, r[1] * f)
  return dataclasses.replace(
      config, camera_speed=pair(config.camera_speed), camera_accel=config.camera_accel * f,
      camera_shake=pair(config.camera_shake), camera_rotation=config.camera_rotation * f,
      camera_zoom=config.camera_zoom * f, layer_speed=pair(config.layer_speed),
      layer_accel=config.layer_accel * f, layer_rotation=config.layer_rotation * f,
      layer_zoom=config.layer_zoom * f)


def sample_trajectory(rng: np.random.Generator, speed: tuple[float, float], accel: float,
                      rotation_deg: float, zoom: float, shake: tuple[float, float] = (0.0, 0.0),
                      shake_freq: tuple[float, float] = (0.05, 0.4), anchor: float = 0.0
                      ) -> Trajectory:
  direction = rng.uniform(0, 2 * np.pi)
  v = rng.uniform(*speed)
  acc = rng.normal(0.0, accel, 2) if accel > 0 else np.zeros(2)
  amp = rng.uniform(*shake, size=2)
  return Trajectory(
      velocity=(float(v * np.cos(direction)), float(v * np.sin(direction))),
      accel=(float(acc[0]), float(acc[1])),
      shake_amp=(float(amp[0]), float(amp[1])),
      shake_freq=float(rng.uniform(*shake_freq)),
      shake_phase=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 2)),
      rot_rate=float(np.deg2rad(rng.uniform(-rotation_deg, rotation_deg))),
      zoom_rate=float(rng.uniform(-zoom, zoom)),
      anchor=anchor)


def sample_camera(rng: np.random.Generator, config: MotionConfig, anchor: float = 0.0
                  ) -> Trajectory:
  return sample_trajectory(rng, config.camera_speed, config.camera_accel,
                           config.camera_rotation, config.camera_zoom, config.camera_shake,
                           config.shake_freq, anchor)


def sample_layer(rng: np.random.Generator, rgba: np.ndarray, size: tuple[int, int],
                 config: MotionConfig, anchor: float = 0.0) -> Layer:
  """Places `rgba` ([h, w, 4]) at a random spot of the frame with a random motion."""
  h, w = size
  lh, lw, _ = rgba.shape
  pos = (rng.uniform(0.15, 0.85) * (w - 1), rng.uniform(0.15, 0.85) * (h - 1))
  placement = (translate(*pos) @ rotate_scale(rng.uniform(0, 2 * np.pi), 1.0)
               @ translate(-(lw - 1) / 2, -(lh - 1) / 2))
  motion = sample_trajectory(rng, config.layer_speed, config.layer_accel,
                             config.layer_rotation, config.layer_zoom, anchor=anchor)
  return Layer(rgba=rgba, placement=placement, motion=motion)
