"""Params-only checkpoints: the portable format that is exported and shipped.

A params-only checkpoint is a folder with
  config.json     the experiment config (`ConfigDict.to_json()`), `model` section included
  params.msgpack  flax-serialised parameters
  card.json       optional: how the weights were made, metrics (free-form)
Training workdirs (orbax) are read by the training code; this module is the small, stable
format that inference, bench and export accept.
"""
from __future__ import annotations

import json
import pathlib

import flax.serialization
import jax
import ml_collections
import numpy as np

from data_pipeline import hdr_io
from dealthdr_jax import config_utils

CONFIG_FILE = "config.json"
PARAMS_FILE = "params.msgpack"
CARD_FILE = "card.json"


def write_bytes_atomic(path: pathlib.Path, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it into place."""
  with hdr_io.atomic_path(path) as tmp:
    tmp.write_bytes(data)


def save_params(directory, params, config: ml_collections.ConfigDict,
                card: dict | None = None) -> pathlib.Path:
  """Writes a params-only checkpoint (each file atomically)."""
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
  """Reads a params-only checkpoint → (params pytree of numpy arrays, locked config)."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise FileNotFoundError(f"checkpoint {directory} does not exist")
  if not is_params_checkpoint(directory):
    raise FileNotFoundError(f"{directory} is not a params-only checkpoint: expected "
                            f"{PARAMS_FILE} and {CONFIG_FILE} in it")
  config = config_utils.config_from_json((directory / CONFIG_FILE).read_text())
  try:
    params = flax.serialization.msgpack_restore((directory / PARAMS_FILE).read_bytes())
  except Exception as e:  # msgpack raises several unrelated types on corrupt input.
    raise ValueError(f"{directory / PARAMS_FILE} is not a readable parameter file: {e}") from e
  return params, config
