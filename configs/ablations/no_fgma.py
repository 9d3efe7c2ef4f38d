"""Ablation: Flow only: no FGMA at any scale, trained at ratio 0.

  dealthdr train --config configs/ablations/no_fgma.py:size=small --workdir W
  python tools/run_ablations.py   # trains and evaluates every ablation
"""
from configs import dealthdr_2exp


def get_config(arg=None):
  config = dealthdr_2exp.get_config(arg)
  config.model.fgma_levels = ()
  config.train_ratios = (0.0,)
  config.attn_ratio = 0.0
  return config
