"""DeAltHDR for three alternating exposures (e.g. 0/2/4 stops), window t±radius.

radius defaults to 2 so that every exposure level is in the window (DESIGN.md §3).
Presets via the argument: `size` (tiny | small | base), `radius` (1 | 2), `ratio`.

  dealthdr bench --config configs/dealthdr_3exp.py:size=small --size 512x512
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, size="small", radius=2, ratio=0.25)
  config = common.base_config("3exp", arg.size, arg.radius, arg.ratio)
  config.lock()
  return config
