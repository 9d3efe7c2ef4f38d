"""Ablation: Window t±2 (five frames) instead of t±1 for two exposures.

  dealthdr train --config configs/ablations/radius2.py:size=small --workdir W
  python tools/run_ablations.py   # trains and evaluates every ablation
"""
from configs import dealthdr_2exp


def get_config(arg=None):
  config = dealthdr_2exp.get_config(arg)
  config.model.radius = 2
  return config
