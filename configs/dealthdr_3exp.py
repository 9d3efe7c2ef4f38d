"""DeAltHDR for three alternating exposures (e.g. 0/2/4 stops), window t±radius.

radius defaults to 2 so that every exposure level is in the window (DESIGN.md §3).
Presets via the argument: `size` (tiny | small | base), `radius` (1 | 2), `ratio`.

  dealthdr bench --config configs/dealthdr_3exp.py:size=small --size 512x512

Training (stage 1; the same presets as configs/dealthdr_2exp.py, five-frame windows, so
each step costs ~5/3 of the 2-exposure one):

  dealthdr train --config configs/dealthdr_3exp.py:size=tiny --workdir /tmp/tiny3
      runlocal/test preset: toy data, 12 steps, ~40 s on 2 CPU cores; an export only.
  dealthdr train --config configs/dealthdr_3exp.py:size=small --workdir runs/3exp_small

The shipped 3-exposure model (dealthdr_jax/assets/models/dealthdr_3exp) is, since v2, the
v1 model below given the pre-trained large-motion flow (configs/flow_pretrain.py) and
fine-tuned around it (configs/dealthdr_align.py:pattern=3exp). v1 was

  dealthdr train --config configs/dealthdr_3exp.py:size=small --workdir runs/3exp_small \\
      --config.total_steps=10000 --config.data.source_dir=../shared/hdr_sources \\
      --config.data.worker_count=1

  then the gamma-2.2 fine-tune of configs/dealthdr_2exp.py with --workdir runs/3exp_small_ft
  --config.init_from=runs/3exp_small --config.total_steps=3000, then 1500 steps on 96×96
  crops: --workdir runs/3exp_small_ft96 --config.init_from=runs/3exp_small_ft
  --config.data.crop=96 --config.optim.lr=5e-5 --config.optim.warmup_steps=100 (same
  gamma-only data options), then 6000 more steps the same way: --workdir runs/3exp_small_ft96b
  --config.init_from=runs/3exp_small_ft96/export --config.total_steps=6000
  --config.eval_every=1000 --config.checkpoint_every=1000.

  10k + 3k + 1.5k + 6k steps, 52 + 16 + 8 + 24 min wall on the 2-core CPU dev machine (the
  first two sharing it with the 2-exposure runs), same data and held-out images as the
  2-exposure model. Validation PSNR-T: 27.3 dB at step 1000, 29.0 at 5000, 29.6 at 10000
  (PSNR-L 30.3); fine-tune 30.9 (gamma-only set). The 96² run was kept on validation (32
  fixed windows: 31.75 vs 31.76 dB at 64², 32.04 vs 31.87 at 96²); its 6k continuation
  went 31.45 → 31.57 / 31.74 / 31.59 / 31.62 / 31.66 (every 1000 steps, gamma-only 96²
  set; the final params are shipped). README held-out PSNR-T 31.67 dB (ratio 0.25),
  DIS-flow baseline 31.33.
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, size="small", radius=2, ratio=0.25)
  config = common.base_config("3exp", arg.size, arg.radius, arg.ratio)
  common.train_config(config, stage=1)
  config.lock()
  return config
