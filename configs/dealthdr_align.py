"""Alignment fine-tune: a trained DeAltHDR takes a pre-trained flow network and learns to
use it, and FGMA, under large motion (issue 11's recipe, stage 1 continued).

The model starts from `init` (by default the shipped model of the pattern) with its flow
network replaced by the one of `flow` (a `configs/flow_pretrain.py` run; the flow
architecture may differ, `flow_init_from`). Training data is the simulator with motion
from still to beyond the hard-motion test set (`common.LARGE_MOTION`), on 128² crops so
that 24–32 px/frame motion stays in the crop, where flow failures (occlusions, blur,
clipping over moving content) are frequent enough for FGMA to learn from. Attention
ratios are drawn per step from a grid over [0, 1]. The flow network is frozen
(`frozen=('flow',)`): what pre-training taught it stays, and a step costs ~40 % less
(no backward pass through it); `--config.frozen=()` trains it too, with a small EPE term.

  dealthdr train --config configs/dealthdr_align.py:pattern=2exp,flow=runs/flow_pwc \\
      --workdir runs/2exp_align --config.data.source_dir=../shared/hdr_sources \\
      --config.data.worker_count=1

Presets via the argument: `pattern` (2exp | 3exp), `size`, `ratio`, `flow` (flow run;
"" keeps the flow of `init`), `init` ("" = the shipped model of the pattern), `camera`
(share of clips written by a sampled real-camera pipeline, `data.camera_pipeline_fraction`;
the shipped 2exp model's v3 steps: `pattern=2exp,flow=,camera=0.5`), `tone` (the
simulator's `tone_calibration`: "off", or "exact" = train on frames with the camera's
S-curve undone, as the clip readers hand them to the model at inference; v4:
`pattern=2exp,flow=,camera=0.5,tone=exact`), `refs` (how often each exposure level is the
window's reference, shortest first, e.g. `refs=1:1:2` for long references half the time,
`patterns.PatternConfig.reference_weights`; "" = uniform; validation stays uniform),
`correct` (1 = FGMA also corrects the flow that warps the candidates,
`model.fgma_flow_correction`, taught by the aligned flow's EPE, `loss.aligned_flow_weight`
0.01; a model without it starts with no correction), `correct_init` (how that correction
starts, `model.fgma_correction_init`: "zero", or "mean_offset" = the attention's soft
argmax, so the flow's error teaches the attention where the match is), `match` (weight of
the loss that teaches FGMA's attention to look at the simulator's match where it is inside
its window, `loss.attention_match_weight`; 0 = off).
"""
from configs import common

SHIPPED = {"2exp": "dealthdr_jax/assets/models/dealthdr_2exp",
           "3exp": "dealthdr_jax/assets/models/dealthdr_3exp"}


def get_config(arg=None):
  arg = common.parse_arg(arg, size="small", pattern="2exp", ratio=0.25,
                         flow="runs/flow_pwc", init="", camera=0.0,
                         tone="off", refs="", correct=0, correct_init="zero",
                         match=0.0)
  if arg.pattern not in SHIPPED:
    raise ValueError(f"pattern must be one of {sorted(SHIPPED)}, got {arg.pattern!r}")
  radius = 1 if arg.pattern == "2exp" else 2
  config = common.base_config(arg.pattern, arg.size, radius, arg.ratio)
  common.train_config(config, stage=1)
  config.init_from = arg.init or SHIPPED[arg.pattern]
  config.flow_init_from = arg.flow
  config.data.simulator = {"motion": dict(common.LARGE_MOTION), "max_subframes": 48,
                           "tone_calibration": str(arg.tone)}
  if arg.refs:
    weights = tuple(float(x) for x in str(arg.refs).split(":"))
    if len(weights) != (2 if arg.pattern == "2exp" else 3):
      raise ValueError(f"refs needs one weight per exposure level of {arg.pattern}, "
                       f"shortest first (e.g. 1:1:2), got {arg.refs!r}")
    config.data.simulator["patterns"] = {"reference_weights": weights}
  config.data.camera_pipeline_fraction = float(arg.camera)
  config.train_ratios = (0.0, 0.125, 0.25, 0.5, 1.0)
  config.frozen = ("flow",)
  config.loss.flow_weight = 0.05
  config.loss.flow_weight_end = 0.01
  config.loss.flow_decay_frac = 1.0
  if str(arg.correct_init) != "zero" and not arg.correct:
    raise ValueError(f"correct_init={arg.correct_init!r} needs correct=1")
  if arg.correct:
    config.model.fgma_flow_correction = True
    config.model.fgma_correction_init = str(arg.correct_init)
    config.loss.aligned_flow_weight = 0.01
  config.loss.attention_match_weight = float(arg.match)
  if arg.size != "tiny":
    config.data.crop = 128
    config.data.responses = ("gamma2.2",)
    config.data.response_weights = ()
    config.total_steps = 3000
    config.optim.lr = 1e-4
    config.optim.warmup_steps = 100
    config.eval_every = config.checkpoint_every = config.image_every = 500
  config.lock()
  return config
