"""Stage 0: pre-trains the flow network alone, for large motion, before stage 1.

The flow network of a DeAltHDR model (`models.dealthdr.flow_network`) is trained on the
model's own exposure-matched pairs (reference re-exposed to each neighbour) from simulator
windows with noise, motion blur and clipping, supervised by the simulator's flow (EPE per
pyramid level over visible pixels). Motion follows a curriculum, `data.curriculum`
((step, scale), ...): camera and layer speeds, rotation and zoom start at a quarter of the
ranges below and reach them at 60 % of the run. The ranges cover the results table's
hard-motion set (camera 8–24 px/frame, layers 12–32 px/frame), on 128² crops. Only
`params["flow"]` change; the export is a full model folder whose other parameters are
freshly initialised, for stage 1 to start from:

  dealthdr train --config configs/flow_pretrain.py:size=small --workdir runs/flow_small \\
      --config.data.source_dir=../shared/hdr_sources --config.data.worker_count=1
  dealthdr train --config configs/dealthdr_2exp.py:size=small --workdir runs/2exp_small \\
      --config.init_from=runs/flow_small "--config.init_parts=('flow',)" ...
  (3-exposure: the same flow workdir; `init_parts` takes only the flow network, so the
  radius may differ.)

Presets via the argument: `size` (tiny | small | base, the model the flow serves),
`radius`, `pattern` (2exp | 3exp: the exposure gaps of the pairs). `size=tiny` is the test
preset (toy data, no curriculum).
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, size="small", radius=1, pattern="2exp", ratio=0.25)
  config = common.base_config(arg.pattern, arg.size, arg.radius, arg.ratio)
  common.train_config(config, stage=1)
  config.stage = 0
  config.train_ratios = (0.0,)  # No attention runs; one compiled step.
  config.loss.flow_weight = 1.0
  config.optim.weight_decay = 0.0
  config.data.responses = ("gamma2.2", "srgb", "sigmoid")
  config.data.simulator = {"motion": dict(common.LARGE_MOTION), "max_subframes": 48}
  if arg.size == "tiny":
    config.data.curriculum = ()
  else:
    config.total_steps = 6_000 if arg.size == "small" else 100_000
    config.data.crop = 128 if arg.size == "small" else 192
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 200
    config.eval_every = config.checkpoint_every = 1000
    steps = config.total_steps
    config.data.curriculum = ((0, 0.25), (int(0.2 * steps), 0.5), (int(0.4 * steps), 0.75),
                              (int(0.6 * steps), 1.0))
  config.lock()
  return config
