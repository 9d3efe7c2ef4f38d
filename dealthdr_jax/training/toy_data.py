"""A tiny built-in training source: a blocky HDR texture sliding at constant speed.

Used by the training tests and `data.source="toy"` so that the training loop can be run
without the simulator. Each sample is a pure function of (seed, index). It keeps the
conventions of DESIGN.md §3 (radiance units, gamma 2.2 response, flow reference →
frame in pixels) but none of the simulator's realism (no blur, simple noise, global
translation only). Real training uses `data_pipeline`'s simulator.
"""
from __future__ import annotations

import numpy as np

from data_pipeline import response

MAX_SPEED = 2  # Pixels per frame, per axis.
BLOCK = 4  # Texture block size in pixels.


def exposure_pattern(pattern: str, frames: int, rng: np.random.Generator) -> np.ndarray:
  """[frames] stops of an alternating pattern with a random phase (shortest = 0)."""
  if pattern == "2exp":
    cycle = np.array([0.0, float(rng.choice([2.0, 3.0]))])
  elif pattern == "3exp":
    cycle = np.array([0.0, 2.0, 4.0])
  else:
    raise ValueError(f"unknown exposure pattern {pattern!r}; expected '2exp' or '3exp'")
  stops = np.roll(np.resize(cycle, frames + len(cycle)), -int(rng.integers(len(cycle))))
  stops = stops[:frames]
  return (stops - stops.min()).astype(np.float32)


def sample(seed: int, index: int, *, frames: int, crop: int, pattern: str = "2exp",
           noise: float = 0.01) -> dict[str, np.ndarray]:
  """One training window.

  Returns:
    frames: [T, crop, crop, 3] float32 LDR in [0, 1] (8-bit quantised);
    stops: [T] float32; hdr: [crop, crop, 3] float32 radiance of the centre frame;
    flow: [T, crop, crop, 2] float32, centre → frame t (zero for the centre).
  """
  rng = np.random.default_rng([seed, index])
  r = frames // 2
  margin = MAX_SPEED * r
  size = crop + 2 * margin
  cells = -(-size // BLOCK)
  coarse = rng.normal(size=(cells, cells, 1)) * 2.0
  colour = rng.uniform(0.5, 1.0, size=(cells, cells, 3))
  log2_radiance = np.kron(coarse, np.ones((BLOCK, BLOCK, 1)))[:size, :size]
  log2_radiance = log2_radiance + rng.normal(size=(size, size, 1)) * 0.3
  texture = (2.0 ** (log2_radiance - 3.0)) * np.kron(colour, np.ones((BLOCK, BLOCK, 1)))[
      :size, :size]
  velocity = rng.integers(-MAX_SPEED, MAX_SPEED + 1, size=2)  # (dx, dy) per frame.
  stops = exposure_pattern(pattern, frames, rng)
  ldr, flow = [], []
  for i in range(frames):
    dx, dy = margin + (i - r) * velocity
    hdr_i = texture[dy:dy + crop, dx:dx + crop]
    if i == r:
      hdr = hdr_i
    clean = response.radiance_to_ldr(hdr_i, stops[i])
    noisy = clean + rng.normal(size=clean.shape) * noise
    ldr.append(np.round(np.clip(noisy, 0.0, 1.0) * 255.0) / 255.0)
    flow.append(np.broadcast_to(-(i - r) * velocity.astype(np.float32), (crop, crop, 2)))
  return {"frames": np.stack(ldr).astype(np.float32), "stops": stops,
          "hdr": hdr.astype(np.float32), "flow": np.stack(flow).astype(np.float32)}
