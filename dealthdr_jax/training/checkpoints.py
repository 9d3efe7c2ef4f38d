"""Checkpoints of a training run in its workdir: orbax `CheckpointManager`, resume, export.

A workdir looks like
  <workdir>/checkpoints/<step>/{state, data, config}   orbax Composite: the TrainState,
                                                       the grain iterator state (one file
                                                       per process) and the config (JSON)
  <workdir>/export/        params-only checkpoint (`model_files.save_params`) of the
                           final parameters (EMA if enabled), readable by infer/export
  <workdir>/export_best/   the same for the best validation PSNR-T, when there is one
                           (stage 1 only: stage 2's validation is on the stage-1
                           camera, so its best would be the least adapted step)
  <workdir>/config.json, metrics.jsonl, tensorboard/

Saves are asynchronous; the latest `keep_checkpoints` are kept, plus the best one by
validation PSNR-T. A checkpoint whose model config differs from the run's is refused
before anything is written.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocp_managers

from dealthdr_jax import model_files

CHECKPOINT_DIR = "checkpoints"
BEST_METRIC = "psnr_t"


class IncompatibleCheckpointError(ValueError):
  """The workdir or init checkpoint was made with a different model config."""


def config_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as JSON-compatible data (tuples become lists)."""
  return json.loads(config.to_json())


def make_manager(workdir: pathlib.Path, keep: int, read_only: bool = False
                 ) -> ocp.CheckpointManager:
  preservation = ocp_managers.AnyPreservationPolicy([
      ocp_managers.LatestN(n=max(1, keep)),
      ocp_managers.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1,
                         keep_checkpoints_without_metrics=False),
  ])
  options = ocp.CheckpointManagerOptions(
      preservation_policy=preservation, enable_async_checkpointing=True,
      cleanup_tmp_directories=not read_only, read_only=read_only, create=not read_only)
  manager = ocp.CheckpointManager(pathlib.Path(workdir).absolute() / CHECKPOINT_DIR,
                                  options=options, item_names=("state", "data", "config"))
  _remember_metrics(manager, workdir)
  return manager


def logged_metrics(workdir: pathlib.Path) -> dict[int, dict[str, float]]:
  """{step: {"train/…" | "val/…": value}}: every row of the workdir's metrics.jsonl merged
  by step (a line cut short by a kill is skipped; a resumed run's rows overwrite)."""
  merged = {}
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if path.is_file():
    for line in path.read_text(encoding="utf-8").splitlines():
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      if "step" in row:
        merged.setdefault(int(row["step"]), {}).update(
            {k: v for k, v in row.items() if k != "step"})
  return merged


def validated_scores(workdir: pathlib.Path) -> dict[int, float]:
  """{step: validation PSNR-T} of every validated step in the workdir's metrics.jsonl."""
  return {step: float(row["val/" + BEST_METRIC])
          for step, row in logged_metrics(workdir).items() if "val/" + BEST_METRIC in row}


def best_step(manager: ocp.CheckpointManager, workdir: pathlib.Path) -> int | None:
  """The kept checkpoint step with the highest validation PSNR-T in the workdir's
  metrics.jsonl (the later one on ties), or None when no kept step was validated.

  Read from metrics.jsonl because orbax keeps the metrics given to `save` only in memory
  when a preservation policy (not `best_fn`) is set: `CheckpointManager.best_step` would
  return the latest step.
  """
  kept = set(manager.all_steps())
  scores = {k: v for k, v in validated_scores(workdir).items() if k in kept}
  return max(scores, key=lambda k: (scores[k], k)) if scores else None


def _remember_metrics(manager: ocp.CheckpointManager, workdir: pathlib.Path) -> None:
  """Gives the checkpoints already on disk their validation metrics from metrics.jsonl.

  orbax (0.12) keeps the metrics passed to `save` only in memory, so a resumed run's
  manager knows none of the earlier steps' and its keep-best policy would delete the best
  pre-resume checkpoint at the next save. The manager's checkpoint infos are the list
  its preservation policy reads; this runs before any save, with nothing in flight.
  """
  scores = validated_scores(workdir)
  for info in manager._checkpoints:  # pylint: disable=protected-access
    if info.metrics is None and info.step in scores:
      info.metrics = {BEST_METRIC: scores[info.step]}


def latest_step(workdir: pathlib.Path) -> int | None:
  """The newest complete checkpoint step in the workdir, without creating anything."""
  directory = pathlib.Path(workdir) / CHECKPOINT_DIR
  if not directory.is_dir():
    return None
  steps = [int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()]
  return max(steps) if steps else None


def saved_config(workdir: pathlib.Path, step: int) -> dict:
  """The config stored in checkpoint `step` (JSON data)."""
  path = pathlib.Path(workdir) / CHECKPOINT_DIR / str(step) / "config"
  files = sorted(path.glob("*")) if path.is_dir() else []
  for f in files:
    if f.is_file():
      try:
        return json.loads(f.read_text())
      except (ValueError, UnicodeDecodeError):
        continue
  raise IncompatibleCheckpointError(f"checkpoint {path.parent} holds no readable config")


def _normalise(x):
  if isinstance(x, (list, tuple)):
    return [_normalise(v) for v in x]
  if isinstance(x, dict):
    return {k: _normalise(v) for k, v in x.items()}
  return x


# Model switches without parameters: a run may start (`init_from`) from weights trained
# with another setting of these.
PARAMETER_FREE = ("dtype", "exposure_prior", "flow_fill", "flow_fill_consistency",
                  "flow_pair", "flow_pair_margin", "flow_pair_scale", "flow_pair_smooth",
                  "max_log_gain", "recon_kernel_range", "response")
# Model switches that add parameters of their own (params[<switch name>]), initialised so
# that the model starts where it was (for the calibration curve, zero logits: the identity;
# for FGMA's flow correction, no correction, or the attention's soft argmax): a run may
# start from weights trained without them, the added parameters then start at their
# initialiser's values (`train._load_init_params`).
# Each with its settings (free to differ from a model that lacks the switch).
_SETTINGS_OF_ADDED = {"response_calibration": ("response_min_slope",),
                      "fgma_flow_correction": ("fgma_correction_init",)}
ADDED_PARAMETERS = tuple(_SETTINGS_OF_ADDED)
ADDED_SETTINGS = tuple(s for settings in _SETTINGS_OF_ADDED.values() for s in settings)
# A run that continues a whole model (`init_from` without `init_parts`) keeps that model's
# switches which its config leaves off, with their settings (`adopt_switches`): the
# added parameters are in the weights it starts from, and the fill is part of the model.
ADOPTED_SWITCHES = {**_SETTINGS_OF_ADDED, "flow_fill": (), "flow_refine": (),
                    "recon_kernel": ()}
# Settings without parameters that change what the weights compute: kept from
# `init_from` in the same way where the config leaves them at the model's default.
ADOPTED_SETTINGS = ("flow_fill_consistency", "flow_pair", "flow_pair_margin",
                    "flow_pair_scale", "flow_pair_smooth", "max_log_gain",
                    "recon_kernel_range")


def _init_model_section(path: str) -> dict | None:
  """The `model` section saved with `init_from` (None where there is none to read)."""
  directory = pathlib.Path(path)
  if model_files.is_params_checkpoint(directory):
    return _model_section(json.loads((directory / model_files.CONFIG_FILE).read_text()))
  export = directory / model_files.EXPORT_DIR
  if model_files.is_params_checkpoint(export):
    return _model_section(json.loads((export / model_files.CONFIG_FILE).read_text()))
  step = latest_step(directory) if directory.is_dir() else None
  return None if step is None else _model_section(saved_config(directory, step))


def adopt_switches(config: ml_collections.ConfigDict) -> list[str]:
  """Switches `ADOPTED_SWITCHES` that `config.init_from` has on and `config` leaves off, and
  settings `ADOPTED_SETTINGS` that it has changed and `config` leaves at the default, are
  set in `config.model` (in place); returns them as "model.key=value" for the log."""
  if not config.get("init_from") or tuple(config.get("init_parts", ())):
    return []
  saved = _init_model_section(config.init_from)
  if saved is None:
    return []
  adopted = []
  for switch, settings in ADOPTED_SWITCHES.items():
    if saved.get(switch) and not config.model.get(switch):
      for key in (switch,) + settings:
        if key in saved and key in config.model:
          config.model[key] = saved[key]
          adopted.append(f"model.{key}={saved[key]!r}")
  from dealthdr_jax.models.dealthdr import DeAltHDR  # pylint: disable=g-import-not-at-top
  for key in ADOPTED_SETTINGS:
    default = DeAltHDR.__dataclass_fields__[key].default
    if (key in saved and key in config.model and saved[key] != default
        and config.model[key] == default):
      config.model[key] = saved[key]
      adopted.append(f"model.{key}={saved[key]!r}")
  return adopted


# Sub-parts that a model trained without them starts at their initialiser's values (zero
# output: the model is unchanged): params["flow"]["refine"] (`model.flow_refine`) and
# params["recon"]["head_kernel"] (`model.recon_kernel`), by the switch that adds them.
ADDED_SUBPARTS = {"flow": ("refine",), "recon": ("head_kernel",)}
ADDED_SUBPART_SWITCHES = ("flow_refine", "recon_kernel")
# The model keys that shape only params["flow"] (free to differ with `flow_init_from`).
FLOW_KEYS = ("flow_arch", "flow_channels", "flow_corr_radius", "flow_features", "flow_kernel",
             "flow_levels", "flow_finest_log2", "flow_refine")


def _model_section(config: dict) -> dict:
  """The `model` section with the model's defaults filled in for keys an older config
  lacks (so a checkpoint from before a switch existed still matches)."""
  from dealthdr_jax.models.dealthdr import DeAltHDR  # pylint: disable=g-import-not-at-top
  fields = DeAltHDR.__dataclass_fields__
  section = dict(_normalise(config.get("model", {})))
  for key, field in fields.items():
    if key not in ("parent", "name") and key not in section and not callable(field.default):
      section[key] = _normalise(field.default)
  return section


def model_differences(saved: dict, current: dict, ignore=("dtype",)) -> list[str]:
  """Keys of the `model` sections that differ (compute dtype may change)."""
  a, b = _model_section(saved), _model_section(current)
  keys = sorted((set(a) | set(b)) - set(ignore))
  return [f"model.{k}: checkpoint {a.get(k)!r} vs config {b.get(k)!r}"
          for k in keys if a.get(k) != b.get(k)]


def check_workdir(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> int | None:
  """Raises IncompatibleCheckpointError if the workdir's latest checkpoint has another
  model; returns that step (None for a fresh workdir). Reads only; writes nothing."""
  step = latest_step(workdir)
  if step is None:
    return None
  diffs = model_differences(saved_config(workdir, step), config_dict(config))
  if diffs:
    raise IncompatibleCheckpointError(
        f"{workdir} holds a checkpoint (step {step}) of a different model; use another "
        f"--workdir or the same model config. Differences: " + "; ".join(diffs))
  return step


def save(manager: ocp.CheckpointManager, step: int, state, data_iterator,
         config: ml_collections.ConfigDict, metrics: dict | None = None,
         force: bool = False) -> bool:
  """Starts an async save of (state, data position, config) at `step`."""
  args = ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      data=grain.checkpoint.CheckpointSave(data_iterator),
      config=ocp.args.JsonSave(config_dict(config)))
  return manager.save(step, args=args, metrics=metrics, force=force)


def restore(manager: ocp.CheckpointManager, step: int, abstract_state, data_iterator):
  """Restores (state, data iterator) of `step` into the given shardings/iterator."""
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      data=grain.checkpoint.CheckpointRestore(data_iterator)))
  return restored["state"], restored["data"]


def restore_state(manager: ocp.CheckpointManager, step: int, abstract_state):
  """Only the train state of `step` (e.g. the best one, for export)."""
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state)))
  return restored["state"]


def _params_from_workdir(workdir: pathlib.Path) -> tuple[Any, dict]:
  """Params of a workdir's export, else those its latest checkpoint would export."""
  export = workdir / model_files.EXPORT_DIR
  if model_files.is_params_checkpoint(export):
    params, config = model_files.load_params(export)
    return params, config_dict(config)
  if latest_step(workdir) is None:
    raise FileNotFoundError(f"{workdir} holds neither a params-only checkpoint nor "
                            f"training checkpoints ({CHECKPOINT_DIR}/<step>)")
  params, config, _ = exported_params_at(workdir)
  return params, config


def exports_ema(config: dict) -> bool:
  """Whether a run with this (JSON) config validates and exports its EMA rather than its
  raw parameters (`optim.ema_decay` > 0 and `export_params="ema"`, as `train.train`)."""
  return (config.get("optim", {}).get("ema_decay", 0) > 0
          and config.get("export_params", "ema") == "ema")


def exported_params_at(workdir: pathlib.Path, step: int | None = None
                       ) -> tuple[Any, dict, int]:
  """(params, JSON config, step): what the run would export at checkpoint `step` (default:
  the latest), the EMA or the raw parameters as its config says (`exports_ema`).

  Raises:
    FileNotFoundError: the workdir holds no checkpoint `step` (the message lists those
      it holds).
  """
  workdir = pathlib.Path(workdir)
  if not (workdir / CHECKPOINT_DIR).is_dir():
    raise FileNotFoundError(f"{workdir} holds no training checkpoints ({CHECKPOINT_DIR}/<step>)")
  with ocp.CheckpointManager(workdir.absolute() / CHECKPOINT_DIR,
                             options=ocp.CheckpointManagerOptions(read_only=True),
                             item_names=("state",),
                             item_handlers={"state": ocp.StandardCheckpointHandler()}
                             ) as manager:
    steps = sorted(manager.all_steps())
    step = steps[-1] if step is None and steps else step
    if step not in steps:
      raise FileNotFoundError(f"{workdir / CHECKPOINT_DIR} holds no checkpoint of step "
                              f"{step}; it holds steps {steps or 'none'}")
    # Onto one local device, whatever mesh saved it (an accelerator run read on a laptop).
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          manager.item_metadata(step)["state"])
    state = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))
  config = saved_config(workdir, step)
  return state["state"]["ema_params" if exports_ema(config) else "params"], config, step


def load_init_params(path: str, config: ml_collections.ConfigDict,
                     check_model: bool = True, ignore: tuple[str, ...] = ()) -> Any:
  """Parameters to start from (`config.init_from`): a params-only checkpoint or a workdir.

  `check_model=False` skips the comparison of model configs (when only some parameter
  groups are taken, their shapes are checked by the caller instead); `ignore` names
  further model keys that may differ (those of a part taken from elsewhere).

  Raises:
    FileNotFoundError: nothing usable at `path`.
    IncompatibleCheckpointError: it holds a different model.
  """
  directory = pathlib.Path(path)
  if not directory.is_dir():
    raise FileNotFoundError(f"init_from={path!r} is not a folder")
  if model_files.is_params_checkpoint(directory):
    params, saved = model_files.load_params(directory)
    saved = config_dict(saved)
  else:
    params, saved = _params_from_workdir(directory)
  diffs = model_differences(saved, config_dict(config),
                            ignore=(PARAMETER_FREE + ADDED_PARAMETERS + ADDED_SETTINGS
                                    + ADDED_SUBPART_SWITCHES + tuple(ignore))
                            ) if check_model else []
  if diffs:
    raise IncompatibleCheckpointError(
        f"init_from={path!r} holds a different model: " + "; ".join(diffs))
  return params


def export_params(directory: pathlib.Path, params, config: ml_collections.ConfigDict,
                  card: dict) -> None:
  """Params-only export (process 0 writes; arrays are gathered to the host first)."""
  params = jax.tree.map(lambda x: jax.device_get(x), params)
  if jax.process_index() == 0:
    model_files.save_params(directory, params, config, card)

