"""DeAltHDR for two alternating exposures (short, long, short, …), window t±radius.

Presets via the argument: `size` (tiny | small | base), `radius` (1 | 2), `ratio` (FGMA
attention ratio at inference).

  dealthdr bench --config configs/dealthdr_2exp.py:size=small --size 512x512
  python tools/param_count.py configs/dealthdr_2exp.py:size=base

Training sections are added by the training code (issue: training at scale).
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, size="small", radius=1, ratio=0.25)
  config = common.base_config("2exp", arg.size, arg.radius, arg.ratio)
  config.lock()
  return config
