"""Ablation: FGMA windows centred at the query's own position (zero displacement), not the
flow-displaced one: tests what the flow guidance adds to the attention.

  dealthdr train --config configs/ablations/no_flow_guidance.py:size=small --workdir W
  python tools/run_ablations.py   # trains and evaluates every ablation
"""
from configs import dealthdr_2exp


def get_config(arg=None):
  config = dealthdr_2exp.get_config(arg)
  config.model.fgma_flow_guided = False
  return config
