"""Building the model and its parameters from a config or a checkpoint (host side)."""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import ml_collections

from dealthdr_jax import checkpoints
from dealthdr_jax import config_utils
from dealthdr_jax.models.dealthdr import DeAltHDR


def init_params(model: DeAltHDR, seed: int = 0, height: int | None = None,
                width: int | None = None):
  """Freshly initialised parameters (shapes do not depend on the frame size)."""
  size = height or model.pad_multiple, width or model.pad_multiple
  frames = jnp.zeros((1, model.window) + size + (3,), jnp.float32)
  stops = jnp.zeros((1, model.window), jnp.float32)
  init = jax.jit(lambda f, s: model.init(jax.random.key(seed), f, s, ratio=1.0)["params"])
  return init(frames, stops)


def resolve_checkpoint(path) -> pathlib.Path:
  """A params-only checkpoint folder, or a training workdir → its params-only export (the
  best one if present)."""
  from dealthdr_jax import checkpointing  # Imports orbax only when a checkpoint is read.
  return checkpointing.resolve_params_dir(path)


def load_model(checkpoint: str | None = None, config: str | None = None, seed: int = 0,
               overrides: list[str] | None = None
               ) -> tuple[DeAltHDR, dict, ml_collections.ConfigDict, str]:
  """(model, params, config, description) from a checkpoint (params-only folder or training
  workdir) or a config spec (freshly initialised, with optional `a.b=value` overrides)."""
  if checkpoint:
    resolved = resolve_checkpoint(checkpoint)
    params, cfg = checkpoints.load_params(resolved)
    return DeAltHDR.from_config(cfg.model), params, cfg, f"checkpoint {resolved}"
  if not config:
    raise ValueError("give a checkpoint or a config")
  cfg = config_utils.load_config(config)
  config_utils.apply_overrides(cfg, overrides or [])
  model = DeAltHDR.from_config(cfg.model)
  return model, init_params(model, seed), cfg, f"config {config} (freshly initialised)"


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


SHIPPED_DIR = pathlib.Path(__file__).resolve().parent / "assets" / "models"


def default_checkpoint(stops) -> str:
  """The shipped model for a clip's stops: 3-exposure if they have three or more levels."""
  levels = len(set(round(float(s), 2) for s in stops))
  name = "dealthdr_3exp" if levels >= 3 else "dealthdr_2exp"
  path = SHIPPED_DIR / name
  if not checkpoints.is_params_checkpoint(path):
    raise FileNotFoundError(
        f"no shipped {name} model in this installation ({path}); pass --checkpoint DIR "
        "(a params-only checkpoint or a training workdir) or --config NAME for untrained weights")
  return str(path)
