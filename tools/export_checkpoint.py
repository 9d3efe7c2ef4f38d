"""Exports one checkpoint step of a training run as a params-only model folder.

  python tools/export_checkpoint.py --workdir runs/2exp_mono --step 750 \\
      --out runs/2exp_mono/export_750

A run exports its last step (`export/`) and its best step by its own validation
(`export_best/`). When a step is chosen otherwise, e.g. on the validation sets of
`tools/unrecorded_headroom.py`, this writes that step the way the run would have: the EMA
or the raw parameters as its config says (`checkpoints.exports_ema`), its config, and a card
with the step's logged training and validation metrics. `tools/ship_model.py --workdir OUT`
then ships it. Refuses a step the workdir does not hold (naming those it does) and a
non-empty `--out`.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.training import checkpoints


def export_step(workdir: str, step: int, out: str) -> pathlib.Path:
  """Writes checkpoint `step` of the run in `workdir` to the params-only folder `out`."""
  target = pathlib.Path(out)
  if target.exists() and any(target.iterdir()):
    raise FileExistsError(f"{target} exists and is not empty")
  params, config, step = checkpoints.exported_params_at(pathlib.Path(workdir), step)
  logged = checkpoints.logged_metrics(pathlib.Path(workdir)).get(step, {})

  def section(prefix):
    values = {k[len(prefix):]: v for k, v in logged.items() if k.startswith(prefix)}
    return values or None
  card = {"step": step, "stage": config.get("stage"), "val": section("val/"),
          "train": section("train/"),
          "params": "ema" if checkpoints.exports_ema(config) else "raw",
          "workdir": str(pathlib.Path(workdir).absolute()),
          "exported_by": f"tools/export_checkpoint.py --step {step}"}
  return model_files.save_params(target, params,
                                 config_loading.config_from_json(json.dumps(config)), card)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="training workdir (with checkpoints/)")
  parser.add_argument("--step", type=int, required=True, help="checkpoint step to export")
  parser.add_argument("--out", required=True, help="params-only model folder to write")
  args = parser.parse_args(argv)
  try:
    target = export_step(args.workdir, args.step, args.out)
  except (FileNotFoundError, FileExistsError) as e:
    print(f"export_checkpoint: {e}", file=sys.stderr)
    return 2
  print(f"wrote {target} (step {args.step} of {args.workdir})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
