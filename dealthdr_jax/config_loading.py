"""Loading experiment configs: `path/to/config.py[:arg]` or a name in `configs/`.

Configs are locked ConfigDicts; overrides `a.b=value` must name existing keys, so a typo
fails loudly instead of being ignored.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import pathlib

import ml_collections

CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"


def resolve_config_path(name: str) -> pathlib.Path:
  """A config file path, or a name like `dealthdr_2exp` looked up in `configs/`."""
  path = pathlib.Path(name)
  if path.suffix != ".py":
    path = CONFIGS_DIR / f"{name}.py"
  if not path.is_file():
    available = sorted(p.stem for p in CONFIGS_DIR.glob("*.py")
                       if "def get_config" in p.read_text())
    raise FileNotFoundError(f"config file {name!r} not found (as a path or in {CONFIGS_DIR}); "
                            f"available: {available}")
  return path


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `file.py[:arg]` by calling its `get_config(arg)`."""
  name, _, arg = spec.partition(":")
  path = resolve_config_path(name)
  module_spec = importlib.util.spec_from_file_location(f"_dealthdr_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise AttributeError(f"config file {path} defines no get_config(arg=None)")
  return module.get_config(arg or None)


def apply_overrides(config: ml_collections.ConfigDict, overrides: list[str]) -> None:
  """Applies `a.b=value` overrides in place; unknown keys raise a KeyError naming them."""
  for item in overrides:
    if "=" not in item:
      raise ValueError(f"config override {item!r} is not of the form key=value")
    key, value = item.split("=", 1)
    key = key.removeprefix("--config.").removeprefix("config.")
    node = config
    parts = key.split(".")
    for p in parts[:-1]:
      if p not in node:
        raise KeyError(f"unknown config key {key!r}: no {p!r} in {sorted(node.keys())}")
      node = node[p]
    if parts[-1] not in node:
      raise KeyError(f"unknown config key {key!r}; known here: {sorted(node.keys())}")
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      parsed = value
    node[parts[-1]] = parsed


def config_from_json(text: str) -> ml_collections.ConfigDict:
  """Inverse of `ConfigDict.to_json()` (tuples come back as tuples), locked."""
  def tuples(x):
    if isinstance(x, list):
      return tuple(tuples(v) for v in x)
    if isinstance(x, dict):
      return {k: tuples(v) for k, v in x.items()}
    return x
  config = ml_collections.ConfigDict(tuples(json.loads(text)))
  config.lock()
  return config
