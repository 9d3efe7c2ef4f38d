"""Stage 0: pre-trains the flow network alone, for large motion, before stage 1.

The flow network of a DeAltHDR model (`models.dealthdr.flow_network`; the presets' is the
cost-volume network of `models/flow.py`) is trained on the model's own exposure-matched
pairs (reference re-exposed to each neighbour) from simulator windows with noise, motion
blur and clipping, supervised by the simulator's flow (EPE per pyramid level over visible
pixels). Motion follows a curriculum, `data.curriculum` ((step, scale), ...): camera and
layer speeds, rotation and zoom start at a quarter of `common.LARGE_MOTION`'s ranges and
reach them at 45 % of the run. The ranges cover the results table's hard-motion set
(camera 8–24 px/frame, layers 12–32 px/frame); crops are 192² (`small`) so that the motion
stays in the crop and the coarsest level still has 6×6 cells. Only `params["flow"]`
change; the export is a full model folder whose other parameters are freshly initialised:

  dealthdr train --config configs/flow_pretrain.py:size=small --workdir runs/flow_pwc \
      --config.data.source_dir=../shared/hdr_sources --config.data.worker_count=2
      (2,000 steps, ~28 min on the 2-core CPU dev machine, data-bound: the simulator
      renders 48 sub-frames per frame)

Then either stage 1 from scratch with this flow (`--config.init_from=runs/flow_pwc
"--config.init_parts=('flow',)"`; the radius may differ), or, as the shipped models do, a
trained model takes it with `configs/dealthdr_align.py` (`flow_init_from`).

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
    config.total_steps = 2_000 if arg.size == "small" else 100_000
    config.data.crop = 192 if arg.size == "small" else 256
    config.optim.lr = 1e-3
    config.optim.warmup_steps = 200
    config.eval_every = 500
    config.checkpoint_every = 250
    steps = config.total_steps
    config.data.curriculum = ((0, 0.25), (int(0.15 * steps), 0.5), (int(0.3 * steps), 0.75),
                              (int(0.45 * steps), 1.0))
  config.lock()
  return config
