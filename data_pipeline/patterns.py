"""Alternating-exposure patterns: per-frame stops for 2- and 3-exposure cameras.

A pattern is a cycle of exposure levels in stops, starting at 0 (the shortest):
  - "2exp": (0, g), g drawn from a continuous range (default 1–4 stops);
  - "3exp": (0, g1, g1 + g2), g1, g2 drawn independently (default 1–3 stops each; DESIGN.md §6's
    0/2/4 is the case g1 = g2 = 2).
Frame j of a clip gets `cycle[(j + phase) % len(cycle)]`, the phase drawn uniformly, so a
clip may start on any level. Stops are finally shifted so the clip's shortest frame is 0
(DESIGN.md §3); with at least `len(cycle)` frames every level appears.
"""
from __future__ import annotations

import dataclasses

import numpy as np

PATTERNS = ("2exp", "3exp")


@dataclasses.dataclass(frozen=True)
class PatternConfig:
  """Gap ranges (stops, uniform) between consecutive exposure levels of each pattern, and
  how often each level is a training window's reference.

  `reference_weights`: relative frequency of the reference frame's level, shortest first
  (one weight per level of the pattern's cycle; empty = uniform, i.e. the phase drawn
  uniformly). It applies where `sample_stops` is told the reference's index (training
  windows); whole clips keep a uniform phase.
  """
  gap_2exp: tuple[float, float] = (1.0, 4.0)
  gap_3exp: tuple[float, float] = (1.0, 3.0)
  reference_weights: tuple[float, ...] = ()

  def __post_init__(self):
    w = self.reference_weights
    if w and (min(w) < 0 or sum(w) <= 0):
      raise ValueError(f"reference_weights must be ≥ 0 with a positive sum, got {w}")


def default_radius(pattern: str) -> int:
  """Window radius of DESIGN.md §3: 1 for 2 exposures, 2 for 3 exposures."""
  _check(pattern)
  return 1 if pattern == "2exp" else 2


def period(pattern: str) -> int:
  """Frames per exposure cycle: 2 for "2exp", 3 for "3exp"."""
  _check(pattern)
  return 2 if pattern == "2exp" else 3


def _check(pattern: str) -> None:
  if pattern not in PATTERNS:
    raise ValueError(f"unknown exposure pattern {pattern!r}; expected one of {PATTERNS}")


def sample_cycle(rng: np.random.Generator, pattern: str,
                 config: PatternConfig = PatternConfig()) -> np.ndarray:
  """[P] float32 exposure levels (stops) of one cycle, starting at 0, increasing."""
  _check(pattern)
  if pattern == "2exp":
    return np.array([0.0, rng.uniform(*config.gap_2exp)], np.float32)
  g1, g2 = rng.uniform(*config.gap_3exp, size=2)
  return np.array([0.0, g1, g1 + g2], np.float32)


def stops_for_frames(cycle: np.ndarray, num_frames: int, phase: int) -> np.ndarray:
  """[num_frames] float32 stops: `cycle[(j + phase) % P]`, shifted so the minimum is 0."""
  if num_frames < 1:
    raise ValueError(f"num_frames must be ≥ 1, got {num_frames}")
  cycle = np.asarray(cycle, np.float32)
  stops = cycle[(np.arange(num_frames) + phase) % len(cycle)]
  return (stops - stops.min()).astype(np.float32)


def sample_stops(rng: np.random.Generator, pattern: str, num_frames: int,
                 config: PatternConfig = PatternConfig(),
                 reference: int | None = None) -> np.ndarray:
  """[num_frames] float32 stops of a clip with a random gap(s) and a random phase.

  With `reference` (the index of a window's reference frame) and
  `config.reference_weights`, the level of frame `reference` is drawn with those weights
  (shortest level first) and the phase follows from it; otherwise the phase is uniform.
  """
  cycle = sample_cycle(rng, pattern, config)
  weights = config.reference_weights
  if reference is None or not weights:
    phase = int(rng.integers(len(cycle)))
  else:
    if len(weights) != len(cycle):
      raise ValueError(f"reference_weights needs one weight per level of {pattern!r} "
                       f"({len(cycle)}), got {weights}")
    p = np.asarray(weights, np.float64)
    level = int(rng.choice(len(cycle), p=p / p.sum()))
    phase = (level - reference) % len(cycle)
  return stops_for_frames(cycle, num_frames, phase)
