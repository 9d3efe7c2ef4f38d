"""`dealthdr adapt`: stage 2 in one command, from a trained model to one for the user's camera.

  dealthdr adapt --input clips/take1 [--input take2.mp4 --exposures 0,3] --out models/mycam
  dealthdr infer --checkpoint models/mycam --input clips/take3 --out out/take3

Self-supervised fine-tuning (DESIGN.md §5, stage 2: sub-window and EMA-teacher consistency,
re-exposure consistency with the clips read through their declared response and measured
tone calibration) on unlabeled clip folders or videos, starting from the shipped model that
fits their exposure pattern (or `--from`). The right quarter of every clip is held out of
training; the self-supervised losses there are the no-reference criterion that picks the
exported step, and a run that never beats its starting model (by `data.heldout_min_gain`,
1 %) exports the starting model and says so.

`--curve` also learns a response calibration curve held near the declared response (the
stage-2 recipe's, at `CURVE_CALIBRATION_LR`), for a camera whose response is not the
declared one. Only the re-exposure terms train it (`CURVE_FROM`): the EMA teacher and the
sub-window terms hold the network, not the curve. A step is exported only if its criterion
is `CURVE_MIN_GAIN` (5 %) below the start's, and a run has at most `CURVE_MAX_STEPS` (500)
steps, the budget that gate was measured at. It is off by default: on cameras whose
response the tone calibration already reads right the curve still drifts darker, and the
criterion can fall by up to 2.9 % on the way in 500 steps, and past 5 % in 2000 (README,
"Adapting to your camera").

`--out` receives a params-only model (params, config, card.json: inputs, steps, held-out
criterion start → best, the learned curve at a few LDR values if any) that `infer --checkpoint`,
`eval` and `export` read. The training run itself (checkpoints, logs) lives in `--workdir`
(default: `<out>.run`); rerunning the same command resumes it.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import time

import ml_collections
import numpy as np

from data_pipeline import clips as clips_lib
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.training import input_pipeline
from dealthdr_jax.training import logs
from dealthdr_jax.training import train

# Default budget, chosen by measurement (README, "Adapting to a camera"): on the 2-core
# dev CPU one 256×384 clip adapts in under 10 minutes.
DEFAULT_STEPS = 500
# Held-out criterion measurements over a run (the export candidates).
CRITERION_POINTS = 8
# LDR values at which the card reports the learned response curve.
CURVE_POINTS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
# `--curve`'s recipe (README, "Adapting to a camera"): the curve's learning rate, 10× the
# stage-2 recipe's (in 500 steps a sigmoid camera's curve then moves 0.5 → 0.41 of the
# 0.350 it needs, not 0.477); the curve trained by the re-exposure terms alone
# (`loss.curve_from`: the teacher and sub-window terms hold the network, not the curve);
# and the held-out criterion's least relative gain for a step to be exported, 5 % instead
# of 1 %. On four cameras whose response is read right the criterion fell by at most 2.9 %
# and then rose 66–82 % on three of them as the curve drifted; on the sigmoid camera it fell
# 11.8 % and the camera's other clips gained 3.8 dB (2.6 with every term training the curve).
CURVE_CALIBRATION_LR = 3e-2
CURVE_FROM = "reexposure"
CURVE_MIN_GAIN = 0.05
# The most steps of a `--curve` run, the budget the gate was measured at. Over 2000 steps a
# camera read right passed it and lost 6.2 dB on its other clips, and so it did with the
# curve learning over the first 500 steps only and the network adapting on (README).
CURVE_MAX_STEPS = 500


class AdaptError(ValueError):
  """Bad inputs to `adapt` (a clip, the model, the output folder)."""


def inspect_inputs(inputs: list[str], exposures: str | None, response: str | None
                   ) -> tuple[list[pathlib.Path], str, list[float]]:
  """Opens every input (headers only) → (paths, camera response, stops of the first).

  Raises:
    AdaptError naming the input that is missing, unreadable, a video without
    `--exposures`, or whose response or exposure levels differ from the first input's.
  """
  if not inputs:
    raise AdaptError("give at least one --input (a clip folder or a video)")
  paths, responses, levels, first_stops = [], [], [], None
  for given in inputs:
    path = pathlib.Path(given)
    if not path.exists():
      raise AdaptError(f"--input {given}: no such clip folder or video")
    if path.is_file() and not exposures:
      raise AdaptError(f"--input {given} is a video: give --exposures, its exposure pattern "
                       "(e.g. 0,3) or a file with one number per frame")
    try:
      with clips_lib.open_clip(path, exposures if path.is_file() else None, response) as clip:
        responses.append(clip.response)
        stops = [float(s) for s in clip.stops]
    except (OSError, ValueError) as e:
      raise AdaptError(f"--input {given}: unreadable clip: {e}") from e
    if len(stops) < 3:
      raise AdaptError(f"--input {given}: {len(stops)} frame(s); adapting needs at least 3")
    levels.append(sorted(set(round(s, 2) for s in stops)))
    first_stops = first_stops or stops
    paths.append(path.absolute())
  for given, r, lv in zip(inputs, responses, levels):
    if r != responses[0]:
      raise AdaptError(f"--input {given} declares camera response {r!r}, --input "
                       f"{inputs[0]} {responses[0]!r}: adapt clips of one camera (or force "
                       "one with --response)")
    if len(lv) != len(levels[0]):
      raise AdaptError(f"--input {given} has {len(lv)} exposure levels {lv}, --input "
                       f"{inputs[0]} {len(levels[0])} {levels[0]}: one model adapts to one "
                       "exposure pattern")
  return paths, responses[0], first_stops


def build_config(start: ml_collections.ConfigDict, start_path: str, clips_folder: pathlib.Path,
                 *, steps: int, exposures: str | None, response: str, ratio: float | None,
                 seed: int, curve: bool = False) -> ml_collections.ConfigDict:
  """The stage-2 config of an adapt run: the starting model's architecture (its `model`
  section, plus the stage-2 recipe's response calibration if `curve`),
  `configs/dealthdr_{pattern}_stage2.py`'s recipe, the user's clips, `steps` steps, one
  attention ratio."""
  pattern = start.get("pattern", "2exp")
  size = start.get("size", "small")
  ratio = float(start.get("attn_ratio", 0.25) if ratio is None else ratio)
  config = config_loading.load_config(
      f"dealthdr_{pattern}_stage2:size={size},radius={int(start.model.radius)},ratio={ratio}")
  with config.unlocked():
    for key, value in start.model.items():
      if key not in ("response_calibration", "response_min_slope"):
        config.model[key] = value
    config.model.response = response
    if curve:
      config.optim.calibration_lr = CURVE_CALIBRATION_LR
      config.loss.curve_from = CURVE_FROM
      config.data.heldout_min_gain = max(float(config.data.heldout_min_gain), CURVE_MIN_GAIN)
    else:  # The declared response, read through the clips' tone calibration.
      config.model.response_calibration = 0
    config.init_from = start_path
    config.seed = seed
    config.total_steps = steps
    config.train_ratios = (ratio,)
    config.optim.warmup_steps = min(int(config.optim.warmup_steps), max(steps // 10, 1))
    config.data.source = "clips"
    config.data.clips = str(clips_folder)
    config.data.exposures = exposures or ""
    every = max(steps // CRITERION_POINTS, 1)
    config.eval_every = every
    config.checkpoint_every = every
    config.image_every = steps
    # Validation (the stage-1 camera's synthetic windows, with GT) says how far the model
    # has moved from where it started; one batch is enough for that.
    config.data.val_size = int(config.batch_size)
    config.log_every = max(min(int(config.log_every), every), 1)
  return config


def link_inputs(paths: list[pathlib.Path], folder: pathlib.Path) -> None:
  """`folder` := one symlink per input (`data.clips` reads a folder of clips)."""
  if folder.exists():
    shutil.rmtree(folder)
  folder.mkdir(parents=True)
  for i, path in enumerate(paths):
    (folder / f"{i:03d}_{path.name}").symlink_to(path, target_is_directory=path.is_dir())


def curve_values(params: dict, config: ml_collections.ConfigDict) -> dict[str, float] | None:
  """The learned response calibration at `CURVE_POINTS` (None without one)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from dealthdr_jax.models import response as resp  # pylint: disable=g-import-not-at-top
  logits = params.get("response_calibration")
  if logits is None:
    return None
  knots = resp.curve_knots(jnp.asarray(logits), float(config.model.get("response_min_slope",
                                                                        0.0)))
  values = resp.apply_curve(jnp.asarray(CURVE_POINTS, jnp.float32), knots)
  return {f"{x:g}": round(float(v), 4) for x, v in zip(CURVE_POINTS, np.asarray(values))}


def adapt(inputs: list[str], out: str, *, exposures: str | None = None,
          response: str | None = None, steps: int = DEFAULT_STEPS,
          start_from: str | None = None, workdir: str | None = None,
          ratio: float | None = None, seed: int = 0, overwrite: bool = False,
          overrides: list[str] | None = None, command: str = "", curve: bool = False) -> dict:
  """Adapts a model to the camera of `inputs`; writes the params-only model `out`.

  `overrides` (`--config.a.b=value`) change the stage-2 config built for the run; `curve`
  also learns a response calibration curve (off by default: module docstring).

  Returns:
    the card written to `out/card.json`.
  Raises:
    AdaptError / FileNotFoundError / FileExistsError for bad inputs, before any compute.
  """
  began = time.time()
  if steps <= 0:
    raise AdaptError(f"--steps must be positive, got {steps}")
  if curve and steps > CURVE_MAX_STEPS:
    raise AdaptError(f"--curve runs at most {CURVE_MAX_STEPS} steps, got --steps {steps}: its "
                     "5 % gate was measured at that budget, and longer runs passed it on a "
                     "camera the curve made worse (README, 'Adapting to your camera'); "
                     "adapt longer without --curve")
  out_path = pathlib.Path(out)
  if out_path.exists() and any(out_path.iterdir()) and not overwrite:
    raise FileExistsError(f"--out {out} exists and is not empty; choose another folder or "
                          "pass --overwrite")
  paths, response, stops = inspect_inputs(inputs, exposures, response)
  start_path = str(model_files.resolve_checkpoint(start_from) if start_from
                   else model_files.default_checkpoint(stops))
  _, start = model_files.load_params(start_path)
  work = pathlib.Path(workdir) if workdir else out_path.with_name(out_path.name + ".run")
  config = build_config(start, start_path, work / "inputs", steps=steps,
                        exposures=exposures, response=response, ratio=ratio, seed=seed,
                        curve=curve)
  config_loading.apply_overrides(config, overrides or [])
  link_inputs(paths, work / "inputs")
  try:
    prepared = train.prepare(config, work)
  except input_pipeline.DataError as e:
    raise AdaptError(str(e).replace("data.clips=", "the inputs in ")) from e
  logs.log(f"adapting {start_path} to {len(paths)} clip(s) ({response}, "
           f"{config.pattern}), {steps} steps; run folder {work}")
  summary = train.train_and_evaluate(config, work, prepared)

  params, exported = model_files.load_params(pathlib.Path(summary["export"]))
  trained = json.loads((pathlib.Path(summary["export"]) / model_files.CARD_FILE).read_text())
  criterion = trained.get("heldout_criterion") or {}
  never = criterion.get("best_step") == 0
  card = {
      "name": out_path.name,
      "stage": 2,
      "adapted_from": start_path,
      "adapted_from_fingerprint": model_files.fingerprint(start_path),
      "pattern": config.pattern,
      "inputs": [str(p) for p in paths],
      "exposures": exposures,
      "response": response,
      "steps": summary["step"],
      "exported_step": trained.get("exported_step"),
      "exported": (f"the starting model: no step's held-out criterion was "
                   f"{100 * float(config.data.heldout_min_gain):g} % below its own" if never
                   else f"step {trained.get('exported_step')}, the best held-out criterion"),
      "heldout_criterion": criterion,
      "heldout_history": [tuple(h) for h in json.loads(
          (work / train.HeldOutCriterion.FILE).read_text()).get("history", [])],
      "response_curve": curve_values(params, exported),
      "default_attn_ratio": float(config.attn_ratio),
      "wall_seconds": round(time.time() - began, 1),
      "workdir": str(work.absolute()),
      "command": command,
  }
  if out_path.exists() and overwrite:
    shutil.rmtree(out_path)
  tmp = out_path.with_name(out_path.name + ".writing")
  if tmp.exists():
    shutil.rmtree(tmp)
  model_files.save_params(tmp, params, exported, card)
  tmp.rename(out_path)
  return card


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--input", action="append", required=True,
                      help="a clip folder or video of the camera (repeat for several)")
  parser.add_argument("--exposures",
                      help="videos: exposure pattern in stops, e.g. 0,3 (or a file with one "
                           "number per frame)")
  parser.add_argument("--response", choices=("gamma2.2", "srgb", "linear"),
                      help="the camera's declared response (default: the clips' meta.json, "
                           "else gamma2.2)")
  parser.add_argument("--out", required=True, help="folder for the adapted params-only model")
  parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                      help=f"training steps (default {DEFAULT_STEPS}: under 10 min for one "
                           "256x384 clip on 2 CPU cores)")
  parser.add_argument("--from", dest="start_from",
                      help="model to start from: params-only folder or training workdir "
                           "(default: the shipped model for the clips' exposure pattern)")
  parser.add_argument("--workdir", help="run folder (checkpoints, logs; default <out>.run); "
                                        "rerunning resumes it")
  parser.add_argument("--attn-ratio", type=float,
                      help="FGMA ratio to train and run at (default: the model's)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--curve", action="store_true",
                      help="also learn a response curve (trained by the re-exposure terms "
                           "only), for a camera whose response is not the declared one; kept "
                           f"only if the held-out criterion falls {100 * CURVE_MIN_GAIN:g} %%, "
                           f"at most {CURVE_MAX_STEPS} steps (off by default: on cameras read "
                           "right it drifts, README 'Adapting to your camera')")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a non-empty --out folder (only once the new model is ready)")
  # `--config.a.b=value` overrides of the stage-2 config arrive as `args.config_overrides`
  # (dealthdr_jax.cli accepts them from commands with a `config` attribute).
  parser.set_defaults(config=None)
  parser.epilog = ("Override any key of the stage-2 config it builds with --config.a.b=value "
                   "(e.g. --config.optim.lr=2e-5 --config.loss.curve_prior=0.2).")


def main(args: argparse.Namespace) -> int:
  try:
    card = adapt(args.input, args.out, exposures=args.exposures, response=args.response,
                 steps=args.steps, start_from=args.start_from, workdir=args.workdir,
                 ratio=args.attn_ratio, seed=args.seed, overwrite=args.overwrite,
                 overrides=getattr(args, "config_overrides", None),
                 command=" ".join(["dealthdr", "adapt"] + sys.argv[2:]), curve=args.curve)
  except train.TrainingDiverged as e:
    print(f"dealthdr adapt: training diverged: {e}", file=sys.stderr)
    return 3
  c = card["heldout_criterion"]
  print(f"adapted model in {args.out}: {card['exported']} (held-out criterion "
        f"{c.get('start', float('nan')):.5g} → {c.get('best', float('nan')):.5g}); "
        f"curve {card['response_curve'] or 'off (the declared response)'}; "
        f"{card['wall_seconds']:.0f} s")
  return 0

