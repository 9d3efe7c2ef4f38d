"""Stage 2: self-supervised fine-tuning of a stage-1 DeAltHDR (3 exposures) on clips without GT.

The same recipe as configs/dealthdr_2exp_stage2.py (losses, response calibration, held-out
criterion, export rule), on five-frame windows (radius 2, every exposure level in the
window). `dealthdr adapt` builds on it for 3-exposure models.

  dealthdr train --config configs/dealthdr_3exp_stage2.py:size=small --workdir runs/s2_3exp \\
      --config.init_from=dealthdr_jax/assets/models/dealthdr_3exp \\
      --config.data.source=clips --config.data.clips=/data/clips
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, size="small", radius=2, ratio=0.25)
  config = common.base_config("3exp", arg.size, arg.radius, arg.ratio)
  common.stage2_config(config)
  config.lock()
  return config
