"""Copies a trained model into the package as a shipped default, with its JSON card.

  python tools/ship_model.py --workdir runs/2exp_small --name dealthdr_2exp \\
      --command "dealthdr train --config configs/dealthdr_2exp.py:size=small ..." \\
      --machine "2-core CPU (no accelerator)" --wall-minutes 62

The params-only export of the run (its best-by-validation export when there is one) is
written to `dealthdr_jax/assets/models/<name>/` (params.msgpack, config.json, card.json).
The card holds the training card the run wrote (steps, validation and last training
metrics), the command, machine and wall time given here, the data (procedural scenes and
the named HDR images, with the validation images held out), and the parameter count.
`--results results.json` (tools/results_table.py; repeatable) adds the rows of this model's
pattern, and when a model is already shipped under `--name` they are first set against its
card's rows of the same set, ratio and self-ensemble size by the ship rule
(`dealthdr_jax.evaluation.comparison`; `tools/compare_results.py` runs it alone). A
candidate that fails it is refused and nothing is written, unless `--accept-failing
"why"` is given; the verdict, the failing counts and that reason go into the card
("ship_decision").
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from data_pipeline import sources
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import comparison


def build_card(params, config, run_card: dict, args) -> dict:
  card = {
      "name": args.name,
      "pattern": config.pattern,
      "size": config.size,
      "parameters": model_files.count_params(params),
      "default_attn_ratio": float(config.attn_ratio),
      "default_attn_ratio_note": args.ratio_note,
      "train_ratios": list(config.train_ratios),
      "training": {
          "command": args.command,
          "machine": args.machine,
          "wall_minutes": args.wall_minutes,
          "stage": config.stage,
          "steps": run_card.get("step"),
          "batch_size": config.batch_size,
          "crop": config.data.crop,
          "exported_params": run_card.get("params"),
          "final_train_metrics": run_card.get("train"),
          "validation_metrics": run_card.get("val"),
      },
  }
  data = {"source": config.data.source,
          "procedural": "data_pipeline.sources.procedural_scene (half of the scenes)"}
  if config.data.source_dir:
    folder = pathlib.Path(config.data.source_dir)
    names = [p.name for p in sorted(folder.iterdir())
             if p.suffix.lower() in (".exr", ".hdr")]
    train, val = sources.split_names(names, num_val=int(config.data.num_val_sources))
    data.update({"hdr_images_train": train, "hdr_images_held_out": val,
                 "hdr_images_origin": "../shared/hdr_sources (licences there)"})
  card["training"]["data"] = data
  if args.results:
    rows = [r for path in args.results for r in json.loads(pathlib.Path(path).read_text())]
    # Set names carry the pattern: "2exp", "held-out camera (2exp)", "hard motion (3exp)".
    card["results"] = [r for r in rows if config.pattern in r["set"]]
  return card


def ship_decision(card: dict, target: pathlib.Path, accept_failing: str | None
                  ) -> dict | None:
  """The ship rule's verdict on `card`'s results against the model shipped at `target`
  (None when there is nothing to compare: no results, or no shipped card with results).
  Raises comparison.ComparisonError when the candidate fails and `accept_failing` is empty.
  """
  previous = target / model_files.CARD_FILE
  if not card.get("results") or not previous.is_file():
    return None
  shipped = json.loads(previous.read_text())
  comparisons = comparison.compare(card["results"], shipped.get("results") or [],
                                   skip_unmatched=True)
  if not comparisons:
    return None
  print(comparison.markdown(comparisons))
  passes, reasons = comparison.verdict(comparisons)
  if not passes and not accept_failing:
    raise comparison.ComparisonError(
        f"the candidate fails the ship rule against {target}:\n  - " + "\n  - ".join(reasons)
        + "\nnothing written; pass --accept-failing \"why\" to ship it anyway")
  decision = {"baseline": f"{target.name}, step "
                          f"{shipped.get('training', {}).get('steps')}",
              "compared": [c.key for c in comparisons],
              "verdict": "passes" if passes else "fails", "failing": reasons}
  if not passes:
    decision["shipped_anyway_because"] = accept_failing
  return decision


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="training workdir or params-only export")
  parser.add_argument("--name", required=True, choices=("dealthdr_2exp", "dealthdr_3exp"))
  parser.add_argument("--command", required=True, help="the training command(s) that made it")
  parser.add_argument("--machine", required=True)
  parser.add_argument("--wall-minutes", type=float, required=True)
  parser.add_argument("--results", action="append", default=[],
                      help="results.json of tools/results_table.py (repeatable)")
  parser.add_argument("--out", default=str(model_files.SHIPPED_DIR))
  parser.add_argument("--ratio", type=float,
                      help="the model's default attention ratio (infer, demo, API) if not "
                           "the run's attn_ratio; say why with --ratio-note")
  parser.add_argument("--ratio-note", default="", help="how the default ratio was chosen")
  parser.add_argument("--accept-failing", metavar="WHY",
                      help="ship even if --results fail the ship rule against the model "
                           "shipped under --name (the reason goes into the card)")
  args = parser.parse_args(argv)
  source = model_files.resolve_checkpoint(args.workdir)
  params, config = model_files.load_params(source)
  if args.ratio is not None:
    if not 0.0 <= args.ratio <= 1.0:
      parser.error(f"--ratio must be in [0, 1], got {args.ratio}")
    config.attn_ratio = args.ratio
  run_card = {}
  if (source / model_files.CARD_FILE).is_file():
    run_card = json.loads((source / model_files.CARD_FILE).read_text())
  card = build_card(params, config, run_card, args)
  target = pathlib.Path(args.out) / args.name
  try:
    decision = ship_decision(card, target, args.accept_failing)
  except comparison.ComparisonError as err:
    print(f"error: {err}", file=sys.stderr)
    return 1
  if decision:
    card["ship_decision"] = decision
    print(f"ship rule: {decision['verdict']}")
  model_files.save_params(target, params, config, card)
  print(f"shipped {source} → {target} ({card['parameters']} parameters, "
        f"step {card['training']['steps']})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
