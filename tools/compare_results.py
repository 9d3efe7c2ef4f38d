"""A candidate model's test-set results against the shipped model's, and whether it ships.

  python tools/results_table.py --out out/cand --sources ../shared/hdr_sources --clips 8 \\
      --skip-baselines --sets 3exp hard_3exp held_out_camera_3exp --ratios 0.125 \\
      --model-3exp runs/3exp_x/export_500
  python tools/compare_results.py --candidate out/cand/results.json

Pairs each of the candidate's rows with the baseline's row of the same set, ratio and
self-ensemble size (by default the shipped model's card of the candidate's pattern, its
current rows, method "dealthdr"), prints every metric as candidate / baseline (delta) with
the clips that gain and the clip that loses most JOD, and applies the ship rule
(`dealthdr_jax.evaluation.comparison`): no set may lose PSNR-T, PSNR-T rec., JOD or dark
colour beyond the tolerances, and PSNR-T must rise somewhere. Exit status 0 when the
candidate passes, 1 when it does not (the reasons are printed), 2 on bad input.

`--baseline` takes a card.json or another results.json; `--baseline-method` picks other
rows of it, e.g. "v8 (shipped until v9), dealthdr" to replay an earlier ship decision.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

from dealthdr_jax import model_files
from dealthdr_jax.evaluation import comparison

PATTERNS = ("2exp", "3exp")


def read_rows(path: str) -> list[dict]:
  """The result rows of a results.json (a list) or of a model card (its "results")."""
  file = pathlib.Path(path)
  if file.is_dir():
    file = file / model_files.CARD_FILE
  if not file.is_file():
    raise comparison.ComparisonError(f"{path}: no such file")
  try:
    data = json.loads(file.read_text())
  except json.JSONDecodeError as err:
    raise comparison.ComparisonError(f"{file}: not JSON ({err})") from err
  rows = data.get("results") if isinstance(data, dict) else data
  if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
    raise comparison.ComparisonError(
        f"{file}: expected a list of result rows (tools/results_table.py's results.json) or a "
        "model card with a 'results' list")
  return rows


def shipped_card_for(rows: list[dict], method: str) -> pathlib.Path:
  """The shipped model card of the one pattern named by the candidate rows' sets."""
  found = {p for r in rows if r.get("method") == method for p in PATTERNS
           if p in str(r.get("set"))}
  if len(found) != 1:
    raise comparison.ComparisonError(
        f"cannot tell the shipped model to compare with: the candidate's sets name "
        f"{sorted(found) or 'no'} pattern(s); pass --baseline")
  return pathlib.Path(model_files.SHIPPED_DIR) / f"dealthdr_{found.pop()}"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--candidate", action="append", required=True,
                      help="results.json of tools/results_table.py, or a card (repeatable)")
  parser.add_argument("--baseline",
                      help="card.json, model folder or results.json (default: the shipped "
                           "model of the candidate's pattern)")
  parser.add_argument("--candidate-method", default="dealthdr")
  parser.add_argument("--ratios", type=lambda v: tuple(float(x) for x in v.split(",")),
                      help="judge only the rows at these attention ratios, e.g. the "
                           "model's default 0.125 (default: every row of the candidate)")
  parser.add_argument("--baseline-method", default="dealthdr")
  defaults = comparison.Tolerances()
  parser.add_argument("--tol-psnr-t", type=float, default=defaults.psnr_t,
                      help="dB PSNR-T a set may lose (default %(default)s)")
  parser.add_argument("--tol-psnr-t-rec", type=float, default=defaults.psnr_t_rec,
                      help="dB PSNR-T rec. a set may lose (default %(default)s)")
  parser.add_argument("--tol-jod", type=float, default=defaults.jod,
                      help="JOD a set may lose (default %(default)s)")
  parser.add_argument("--tol-dark-chroma", type=float, default=defaults.dark_chroma,
                      help="relative rise of the dark chroma error a set may show "
                           "(default %(default)s)")
  args = parser.parse_args(argv)
  tolerances = comparison.Tolerances(args.tol_psnr_t, args.tol_psnr_t_rec, args.tol_jod,
                                     args.tol_dark_chroma)
  if min(dataclasses.astuple(tolerances)) < 0:
    parser.error("tolerances must be ≥ 0")
  try:
    candidate = [r for path in args.candidate for r in read_rows(path)]
    if args.ratios:
      candidate = [r for r in candidate if r.get("ratio") is not None
                   and any(abs(float(r["ratio"]) - x) < 1e-6 for x in args.ratios)]
      if not candidate:
        raise comparison.ComparisonError(f"the candidate has no rows at ratios {args.ratios}")
    baseline_path = args.baseline or shipped_card_for(candidate, args.candidate_method)
    comparisons = comparison.compare(candidate, read_rows(str(baseline_path)),
                                     args.candidate_method, args.baseline_method)
    ships, reasons = comparison.verdict(comparisons, tolerances)
  except comparison.ComparisonError as err:
    print(f"error: {err}", file=sys.stderr)
    return 2
  print(f"candidate: {', '.join(args.candidate)} ({args.candidate_method!r})")
  print(f"baseline: {baseline_path} ({args.baseline_method!r})\n")
  print(comparison.markdown(comparisons))
  print()
  if ships:
    print("ship rule: passes")
    return 0
  print("ship rule: fails")
  for reason in reasons:
    print(f"  - {reason}")
  return 1


if __name__ == "__main__":
  sys.exit(main())
