"""Ablation: One shared encoder stem for short and long exposures instead of the dual stems.

  dealthdr train --config configs/ablations/single_encoder.py:size=small --workdir W
  python tools/run_ablations.py   # trains and evaluates every ablation
"""
from configs import dealthdr_2exp


def get_config(arg=None):
  config = dealthdr_2exp.get_config(arg)
  config.model.dual_encoder = False
  return config
