"""The `dealthdr` console script: parses the subcommand and hands over to its module.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`main(args) -> int`; only the chosen one is imported. Arguments `--config.a.b=value`
become `args.config_overrides` for commands that take `--config`.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

COMMANDS = {
    "demo": ("dealthdr_jax.demo", "render a clip, run the shipped model, write results"),
    "synth": ("data_pipeline.synth", "write synthetic clip folders with ground truth"),
    "train": ("dealthdr_jax.training.train",
              "train (stage 1 or 2, by config); resumes from the workdir"),
    "adapt": ("dealthdr_jax.training.adapt",
              "stage 2 in one command: adapt a model to your camera's unlabeled clips"),
    "infer": ("dealthdr_jax.inference.infer", "HDR for every frame of a clip folder or video"),
    "eval": ("dealthdr_jax.evaluation.evaluate",
             "PSNR-T, PSNR-L, SSIM-T of predictions vs ground truth"),
    "bench": ("dealthdr_jax.inference.bench", "latency, FLOPs and memory per attention ratio"),
    "benchmark": ("dealthdr_jax.evaluation.standard_benchmarks",
                  "score on DeepHDRVideo / Real-HDRV in their own layouts, as papers do"),
    "export": ("dealthdr_jax.inference.export",
               "params-only checkpoint + serialized StableHLO program"),
}


def _available() -> dict[str, str]:
  return {name: help_ for name, (module, help_) in COMMANDS.items()
          if importlib.util.find_spec(module) is not None}


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  available = _available()
  usage = "dealthdr COMMAND [options]\n\ncommands:\n" + "\n".join(
      f"  {name:8s} {help_}" for name, help_ in available.items())
  if not argv or argv[0] in ("-h", "--help"):
    print(usage)
    return 0 if argv else 2
  command = argv[0]
  if command not in COMMANDS:
    print(f"dealthdr: unknown command {command!r}\n\n{usage}", file=sys.stderr)
    return 2
  if command not in available:
    print(f"dealthdr: command {command!r} is not available in this version", file=sys.stderr)
    return 2
  module = importlib.import_module(COMMANDS[command][0])
  parser = argparse.ArgumentParser(prog=f"dealthdr {command}", description=COMMANDS[command][1])
  module.add_arguments(parser)
  # `--config.a.b=value` overrides of a locked config, for commands that take --config.
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  args = parser.parse_args([a for a in argv[1:] if not a.startswith("--config.")])
  if overrides:
    if not hasattr(args, "config"):
      parser.error(f"{command} takes no config overrides: {overrides}")
    args.config_overrides = overrides
  try:
    return int(module.main(args) or 0)
  except (ValueError, KeyError, FileNotFoundError, FileExistsError, AttributeError) as e:
    # Bad input: one clear line, no traceback (DEALTHDR_DEBUG=1 shows it).
    if os.environ.get("DEALTHDR_DEBUG"):
      raise
    message = e.args[0] if isinstance(e, KeyError) and e.args else e
    print(f"dealthdr {command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
