"""Weight average of two params-only models of the same architecture (a two-model "soup").

  python tools/average_models.py --a runs/2exp_camera --b runs/2exp_align \\
      --weight 0.5 --out runs/2exp_soup

Writes `weight · A + (1 − weight) · B`, leaf by leaf, with A's config and a card naming
both parents. Useful when B was fine-tuned into A on other data and each is better on its
own test set: both share B's basin, so their average is a working model between the two
(measured in docs/results_history.md, "v3 2exp": about half of each gain and loss). Refuses models whose `model` sections or parameter trees differ,
and a non-empty `--out`.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import jax
import numpy as np

from dealthdr_jax import model_files
from dealthdr_jax.training import checkpoints


class AverageError(ValueError):
  """The two models cannot be averaged."""


def average(a: str, b: str, weight: float, out: str) -> pathlib.Path:
  """Writes the average of the params-only models (or training workdirs) `a` and `b`."""
  if not 0.0 <= weight <= 1.0:
    raise AverageError(f"--weight must be in [0, 1], got {weight}")
  target = pathlib.Path(out)
  if target.exists() and any(target.iterdir()):
    raise AverageError(f"{target} exists and is not empty")
  sources = [model_files.resolve_checkpoint(p) for p in (a, b)]
  (pa, ca), (pb, cb) = (model_files.load_params(s) for s in sources)
  diffs = checkpoints.model_differences(checkpoints.config_dict(cb), checkpoints.config_dict(ca))
  if diffs:
    raise AverageError(f"{a} and {b} are different models: " + "; ".join(diffs))
  if jax.tree.structure(pa) != jax.tree.structure(pb) or any(
      np.shape(x) != np.shape(y) for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb))):
    raise AverageError(f"{a} and {b} hold different parameter trees")
  mixed = jax.tree.map(lambda x, y: (weight * np.asarray(x, np.float64)
                                     + (1.0 - weight) * np.asarray(y, np.float64)
                                     ).astype(np.asarray(x).dtype), pa, pb)
  card = {"name": f"average of {a} and {b}", "weight": weight,
          "parents": [str(s) for s in sources]}
  return model_files.save_params(target, mixed, ca, card)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--a", required=True, help="params-only model or training workdir")
  parser.add_argument("--b", required=True, help="params-only model or training workdir")
  parser.add_argument("--weight", type=float, default=0.5, help="weight of --a")
  parser.add_argument("--out", required=True)
  args = parser.parse_args(argv)
  try:
    target = average(args.a, args.b, args.weight, args.out)
  except (AverageError, FileNotFoundError) as e:
    print(f"average_models: {e}", file=sys.stderr)
    return 2
  print(f"wrote {target} ({args.weight} · {args.a} + {1 - args.weight} · {args.b})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
