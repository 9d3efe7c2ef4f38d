"""Shared pieces of the experiment configs: argument parsing and model size presets.

`arg` strings are comma-separated `key=value` pairs, e.g. `size=small,radius=2,ratio=0.5`;
values are parsed as Python literals where possible. A bare word is taken as the size.
"""
from __future__ import annotations

import ast

import ml_collections

SIZES = ("tiny", "small", "base")

# Model presets. Feature levels are at 1/2, 1/4, 1/8 of the input resolution; flow runs
# from 1/2**flow_finest_log2 down `flow_levels` levels; FGMA runs at `fgma_levels`.
MODEL_PRESETS = {
    # Tests and smoke runs: a few thousand parameters, compiles fast.
    "tiny": dict(features=(8, 8, 8), flow_levels=3, flow_finest_log2=2, flow_channels=(8,),
                 flow_kernel=3, fgma_levels=(1, 2), fgma_window=3, fgma_heads=2,
                 head_features=8),
    # CPU-trainable and the shipped default.
    "small": dict(features=(16, 24, 32), flow_levels=4, flow_finest_log2=2,
                  flow_channels=(16, 32, 16), flow_kernel=5, fgma_levels=(1, 2),
                  fgma_window=3, fgma_heads=2, head_features=16),
    # Accelerator scale, comparable to the paper's model.
    # Sized to ~190 GFLOPs per 720p frame at ratio 0.25 (XLA cost analysis).
    "base": dict(features=(24, 48, 96), flow_levels=4, flow_finest_log2=2,
                 flow_channels=(24, 32, 24), flow_kernel=5, fgma_levels=(0, 1, 2),
                 fgma_window=3, fgma_heads=4, head_features=16),
}


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `key=value,...` into a locked ConfigDict with the given defaults.

  Raises:
    ValueError: for keys that are not among the defaults.
  """
  result = ml_collections.ConfigDict(dict(defaults))
  if not arg:
    return result
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    if "=" not in item:
      key, value = "size", item
    else:
      key, value = (s.strip() for s in item.split("=", 1))
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r} in {arg!r}; known: {sorted(defaults)}")
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
    result[key] = type(defaults[key])(value) if defaults[key] is not None else value
  return result


def model_config(size: str, radius: int, response: str = "gamma2.2",
                 dtype: str = "float32") -> ml_collections.ConfigDict:
  """The `model` section: DeAltHDR module attributes."""
  if size not in MODEL_PRESETS:
    raise ValueError(f"unknown model size {size!r}; expected one of {SIZES}")
  if radius not in (1, 2):
    raise ValueError(f"radius must be 1 or 2, got {radius}")
  return ml_collections.ConfigDict(dict(MODEL_PRESETS[size], radius=radius,
                                        response=response, dtype=dtype,
                                        fgma_flow_guided=True, dual_encoder=True))


def base_config(pattern: str, size: str, radius: int, ratio: float) -> ml_collections.ConfigDict:
  """Fields every experiment has: model, exposure pattern, inference attention ratio."""
  config = ml_collections.ConfigDict()
  config.size = size
  config.model = model_config(size, radius)
  config.pattern = pattern
  # Attention ratio used at inference and evaluation (a compile-time constant).
  config.attn_ratio = ratio
  # Ratios sampled per training step so that one model serves all of them.
  config.train_ratios = (0.0, 0.1, 0.25, 0.5, 1.0)
  config.seed = 0
  return config
