"""Model folders: the params-only format that training exports, `infer` reads and we ship.

A params-only model folder holds
  config.json     the experiment config (`ConfigDict.to_json()`), `model` section included
  params.msgpack  flax-serialised parameters
  card.json       optional: how the weights were made, metrics (free-form)
A training workdir (orbax checkpoints, `training/checkpoints.py`) holds such folders as
`export/` (final parameters) and `export_best/` (best validated step); wherever a model
folder is asked for, a workdir is accepted too. This module also builds a model from a
folder or a config, and finds the shipped models in `assets/models/`.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
from typing import NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from data_pipeline import hdr_io
from dealthdr_jax import config_loading
from dealthdr_jax.models.dealthdr import FLOW_PAIR_MODES, DeAltHDR

CONFIG_FILE = "config.json"
PARAMS_FILE = "params.msgpack"
CARD_FILE = "card.json"
# The params-only exports inside a training workdir.
EXPORT_DIR = "export"
EXPORT_BEST_DIR = "export_best"

SHIPPED_DIR = pathlib.Path(__file__).resolve().parent / "assets" / "models"
SHIPPED_MODELS = ("dealthdr_2exp", "dealthdr_3exp")


class LoadedModel(NamedTuple):
  """A model with its parameters, config and a one-line description of where they came from."""
  model: DeAltHDR
  params: dict
  config: ml_collections.ConfigDict
  description: str


# --------------------------------------------------------------------------- the files


def write_bytes_atomic(path: pathlib.Path, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it into place."""
  with hdr_io.atomic_path(path) as tmp:
    tmp.write_bytes(data)


def save_params(directory, params, config: ml_collections.ConfigDict,
                card: dict | None = None) -> pathlib.Path:
  """Writes a params-only model folder (each file atomically)."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  params = jax.tree.map(np.asarray, jax.device_get(params))
  write_bytes_atomic(directory / PARAMS_FILE, flax.serialization.msgpack_serialize(params))
  write_bytes_atomic(directory / CONFIG_FILE, config.to_json(indent=1).encode())
  if card is not None:
    write_bytes_atomic(directory / CARD_FILE, json.dumps(card, indent=1).encode())
  return directory


def is_params_checkpoint(directory) -> bool:
  directory = pathlib.Path(directory)
  return (directory / PARAMS_FILE).is_file() and (directory / CONFIG_FILE).is_file()


def load_params(directory) -> tuple[dict, ml_collections.ConfigDict]:
  """Reads a params-only model folder → (params pytree of numpy arrays, locked config)."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise FileNotFoundError(f"checkpoint {directory} does not exist")
  if not is_params_checkpoint(directory):
    raise FileNotFoundError(f"{directory} is not a params-only checkpoint: expected "
                            f"{PARAMS_FILE} and {CONFIG_FILE} in it")
  config = config_loading.config_from_json((directory / CONFIG_FILE).read_text())
  try:
    params = flax.serialization.msgpack_restore((directory / PARAMS_FILE).read_bytes())
  except Exception as e:  # msgpack raises several unrelated types on corrupt input.
    raise ValueError(f"{directory / PARAMS_FILE} is not a readable parameter file: {e}") from e
  return params, config


def resolve_checkpoint(path) -> pathlib.Path:
  """A params-only model folder, or a training workdir → its export (the best if present)."""
  path = pathlib.Path(path)
  if is_params_checkpoint(path):
    return path
  for name in (EXPORT_BEST_DIR, EXPORT_DIR):
    if is_params_checkpoint(path / name):
      return path / name
  raise FileNotFoundError(f"{path} is neither a params-only checkpoint nor a training "
                          f"workdir with {EXPORT_DIR}/")


def fingerprint(path) -> str:
  """A short hash of what a model folder computes (a workdir → its export): its parameters
  and the `model` section of its config. Equal fingerprints, same outputs at the same
  ratio; defaults such as `attn_ratio` do not enter."""
  directory = resolve_checkpoint(path)
  digest = hashlib.sha256((directory / PARAMS_FILE).read_bytes())
  _, config = load_params(directory)
  digest.update(json.dumps(config.model.to_dict(), sort_keys=True).encode())
  return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- models


def init_params(model: DeAltHDR, seed: int = 0, height: int | None = None,
                width: int | None = None):
  """Freshly initialised parameters (shapes do not depend on the frame size)."""
  size = height or model.pad_multiple, width or model.pad_multiple
  frames = jnp.zeros((1, model.window) + size + (3,), jnp.float32)
  stops = jnp.zeros((1, model.window), jnp.float32)
  init = jax.jit(lambda f, s: model.init(jax.random.key(seed), f, s, ratio=1.0)["params"])
  return init(frames, stops)


def load_model(checkpoint: str | None = None, config: str | None = None, seed: int = 0,
               overrides: list[str] | None = None) -> LoadedModel:
  """A model from a checkpoint (params-only folder or training workdir) or a config spec
  (freshly initialised, with optional `a.b=value` overrides)."""
  if checkpoint:
    resolved = resolve_checkpoint(checkpoint)
    params, cfg = load_params(resolved)
    return LoadedModel(DeAltHDR.from_config(cfg.model), params, cfg, f"checkpoint {resolved}")
  if not config:
    raise ValueError("give a checkpoint or a config")
  cfg = config_loading.load_config(config)
  config_loading.apply_overrides(cfg, overrides or [])
  model = DeAltHDR.from_config(cfg.model)
  return LoadedModel(model, init_params(model, seed), cfg,
                     f"config {config} (freshly initialised)")


def with_flow_pair(loaded: LoadedModel, flow_pair: str | None,
                   option: str = "flow_pair") -> LoadedModel:
  """`loaded` with its model's `flow_pair` switch set to `flow_pair` ("off", "select" or
  "all"; None keeps the model's), named in the description when it changes. The switch
  has no parameters, so the same weights run either way. `option` is how the caller's
  user spells the setting, for the error an unknown mode raises."""
  if flow_pair is None:
    return loaded
  if flow_pair not in FLOW_PAIR_MODES:
    raise ValueError(f"{option} must be one of {FLOW_PAIR_MODES}, got {flow_pair!r}")
  if flow_pair == loaded.model.flow_pair:
    return loaded
  return loaded._replace(model=loaded.model.clone(flow_pair=flow_pair),
                         description=f"{loaded.description}, flow_pair {flow_pair}")


def count_params(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


def shipped_checkpoint(name: str) -> str:
  """The folder of a shipped model (`dealthdr_2exp` or `dealthdr_3exp`)."""
  path = SHIPPED_DIR / name
  if not is_params_checkpoint(path):
    raise FileNotFoundError(
        f"no shipped {name} model in this installation ({path}); pass --checkpoint DIR "
        "(a params-only checkpoint or a training workdir) or --config NAME for untrained weights")
  return str(path)


def default_checkpoint(stops) -> str:
  """The shipped model for a clip's stops: 3-exposure if they have three or more levels."""
  levels = len(set(round(float(s), 2) for s in stops))
  return shipped_checkpoint("dealthdr_3exp" if levels >= 3 else "dealthdr_2exp")
