"""Validation PSNR-T of a trained model at several reconstruction gain bounds.

  python tools/gain_bound_sweep.py --sources ../shared/hdr_sources --bounds 2,3,4,5,6

`model.max_log_gain` bounds the per-pixel log-gain of the reconstruction (`m · tanh(x / m)`
of the head's output x; 2 in the models up to v7 2exp / v6 3exp). It has no parameters,
so the same weights can be run with another bound: where the head asks for more than
e^2 ≈ 7.4× the blend (highlights clipped in every exposure), a larger bound gives it.
This scores the model on the two validation sets the training runs use, with GT, never a
test set: the alignment preset's (`configs/dealthdr_align.py`: held-out sources, large
motion, half the windows through a camera pipeline) and the stage-1 config's of the
pattern (gentle motion), `--windows` windows of `--crop`² each, at `--ratio` (default: the
model's); `--sets large,gentle,cameras` adds the large-motion windows with every one
written by a training camera pipeline (`VALIDATION_SPECS`). Prints one row per bound and,
with `--json F`, writes them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top

from dealthdr_jax import config_loading  # pylint: disable=g-import-not-at-top
from dealthdr_jax import model_files  # pylint: disable=g-import-not-at-top
from dealthdr_jax.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
from dealthdr_jax.models.dealthdr import DeAltHDR  # pylint: disable=g-import-not-at-top
from dealthdr_jax.training import input_pipeline  # pylint: disable=g-import-not-at-top


# The validation sets (with GT, never a test set), by name → config spec. "cameras" is the
# large-motion set with every window written by a training camera pipeline (Bayer noise,
# colour matrix, tone curve, JPEG; `data.camera_pipeline_fraction` 1): the set to judge a
# change that may cost on real cameras before the held-out camera test set sees it.
VALIDATION_SPECS = {"large motion": "dealthdr_align:pattern={pattern},flow=,camera=0.5,tone=exact",
                    "gentle motion": "dealthdr_{pattern}:size=small",
                    "cameras": "dealthdr_align:pattern={pattern},flow=,camera=1.0,tone=exact"}
DEFAULT_SETS = ("large motion", "gentle motion")
SET_KEYS = {"large": "large motion", "gentle": "gentle motion", "cameras": "cameras"}


def validation_configs(pattern: str, sources: str, windows: int, crop: int,
                       names=DEFAULT_SETS) -> dict:
  """{name: config} of the named validation sets, `windows` windows of `crop`² each."""
  unknown = [n for n in names if n not in VALIDATION_SPECS]
  if unknown:
    raise ValueError(f"unknown validation set(s) {unknown}; known: {sorted(VALIDATION_SPECS)}")
  configs = {}
  for name in names:
    config = config_loading.load_config(VALIDATION_SPECS[name].format(pattern=pattern))
    config_loading.apply_overrides(config, [f"data.crop={crop}", f"data.val_size={windows}",
                                            f"data.source_dir={sources}"])
    configs[name] = config
  return configs


def validation_sets(pattern: str, sources: str, windows: int, crop: int,
                    names=DEFAULT_SETS) -> dict[str, list]:
  """{name: batches} of the named validation sets (default: large and gentle motion)."""
  return {name: input_pipeline.make_val_batches(config, batch_size=4)
          for name, config in validation_configs(pattern, sources, windows, crop,
                                                 names).items()}


def add_set_argument(parser: argparse.ArgumentParser) -> None:
  """--sets: comma-separated keys of `SET_KEYS`, read by `parse_sets`."""
  parser.add_argument("--sets", default="large,gentle",
                      help=f"validation sets, comma-separated, of {sorted(SET_KEYS)} "
                           "(cameras: every window through a training camera pipeline)")


def parse_sets(parser: argparse.ArgumentParser, text: str) -> tuple[str, ...]:
  """`--sets` → set names; an unknown or empty one stops the parser, named."""
  keys = [k.strip() for k in text.split(",") if k.strip()]
  unknown = [k for k in keys if k not in SET_KEYS]
  if not keys or unknown:
    parser.error(f"--sets: {text!r} names no set or unknown ones {unknown}; "
                 f"choose from {sorted(SET_KEYS)}")
  return tuple(dict.fromkeys(SET_KEYS[k] for k in keys))


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
  """--checkpoint, --pattern and --sources, as `load_model` reads them."""
  parser.add_argument("--checkpoint", default=None,
                      help="model folder or workdir (default: the shipped model of --pattern)")
  parser.add_argument("--pattern", choices=("2exp", "3exp"), default="2exp")
  parser.add_argument("--sources", required=True, help="HDR source folder (../shared/hdr_sources)")


def load_model(parser: argparse.ArgumentParser, args):
  """(checkpoint, params, model, ratio) of `--checkpoint` (default: the shipped model of
  `--pattern`) at `--ratio` (default: the model's); a missing `--sources` folder or a model
  of the other pattern stop the parser with the argument named."""
  if not os.path.isdir(args.sources):
    parser.error(f"--sources {args.sources!r} is not a folder")
  flags.FLAGS.mark_as_parsed()  # grain outside absl.app.run
  checkpoint = args.checkpoint or model_files.shipped_checkpoint(f"dealthdr_{args.pattern}")
  params, saved = model_files.load_params(model_files.resolve_checkpoint(checkpoint))
  if saved.pattern != args.pattern:
    parser.error(f"{checkpoint} is a {saved.pattern} model; pass --pattern {saved.pattern}")
  ratio = float(saved.attn_ratio) if args.ratio is None else args.ratio
  return checkpoint, params, DeAltHDR.from_config(saved.model), ratio


def scorer(model: DeAltHDR, params, ratio: float):
  """batches → PSNR-T per window [N] (the training validation's metric); compiled once per
  model, reused for every set (their batches have one shape)."""
  @jax.jit
  def psnr(p, batch):
    hdr, _ = model.apply({"params": p}, batch["frames"], batch["stops"], ratio=ratio)
    return metrics_lib.psnr_t_jnp(hdr, batch["hdr"])
  return lambda batches: np.concatenate([np.asarray(psnr(params, b)) for b in batches])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  add_model_arguments(parser)
  parser.add_argument("--bounds", default="2,3,4,5,6",
                      help="comma-separated max_log_gain values (> 0)")
  parser.add_argument("--ratio", type=float, default=None)
  add_set_argument(parser)
  parser.add_argument("--windows", type=int, default=32)
  parser.add_argument("--crop", type=int, default=256)
  parser.add_argument("--json", help="write the rows here")
  args = parser.parse_args(argv)
  try:
    bounds = [float(b) for b in args.bounds.split(",") if b]
  except ValueError:
    parser.error(f"--bounds: {args.bounds!r} is not a comma-separated list of numbers")
  if not bounds or min(bounds) <= 0:
    parser.error(f"--bounds must be numbers > 0, got {args.bounds!r}")
  names = parse_sets(parser, args.sets)
  checkpoint, params, base, ratio = load_model(parser, args)
  sets = validation_sets(args.pattern, args.sources, args.windows, args.crop, names)
  print(f"{checkpoint}: trained with max_log_gain {base.max_log_gain:g}; ratio {ratio:g}; "
        f"{args.windows} validation windows of {args.crop}² per set", flush=True)
  rows = []
  for bound in bounds:
    score = scorer(base.clone(max_log_gain=bound), params, ratio)
    row = {"max_log_gain": bound}
    for name, batches in sets.items():
      values = score(batches)
      row[name] = float(values.mean())
      row[f"{name} per window"] = [round(float(v), 2) for v in values]
    rows.append(row)
    print(f"max_log_gain {bound:4g}: " + "  ".join(f"{n} {row[n]:.2f} dB" for n in sets),
          flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"checkpoint": str(checkpoint), "ratio": ratio, "windows": args.windows,
                 "crop": args.crop, "rows": rows}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
