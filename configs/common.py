"""Shared pieces of the experiment configs: argument parsing and model size presets.

`arg` strings are comma-separated `key=value` pairs, e.g. `size=small,radius=2,ratio=0.5`;
values are parsed as Python literals where possible. A bare word is taken as the size.
"""
from __future__ import annotations

import ast

import ml_collections

SIZES = ("tiny", "small", "base")

# Model presets. Feature levels are at 1/2, 1/4, 1/8 of the input resolution; flow runs
# from 1/2**flow_finest_log2 down `flow_levels` levels (the "pwc" cost-volume network of
# `models/flow.py`, with a feature pyramid of `flow_features` channels per octave from 1/2;
# models up to v1 used "spynet"); FGMA runs at `fgma_levels`.
MODEL_PRESETS = {
    # Tests and smoke runs: a few thousand parameters, compiles fast.
    "tiny": dict(features=(8, 8, 8), flow_levels=3, flow_finest_log2=2, flow_channels=(8,),
                 flow_kernel=3, flow_arch="pwc", flow_features=(8, 8, 8, 8), flow_corr_radius=2,
                 fgma_levels=(1, 2), fgma_window=3, fgma_heads=2, head_features=8),
    # CPU-trainable and the shipped default.
    "small": dict(features=(16, 24, 32), flow_levels=4, flow_finest_log2=2,
                  flow_channels=(48, 32, 16), flow_kernel=3, flow_arch="pwc",
                  flow_features=(12, 16, 32, 48, 64), flow_corr_radius=3, fgma_levels=(1, 2),
                  fgma_window=3, fgma_heads=2, head_features=16),
    # Accelerator scale, comparable to the paper's model.
    # Sized to ~190 GFLOPs per 720p frame at ratio 0.25 (XLA cost analysis).
    "base": dict(features=(24, 48, 96), flow_levels=4, flow_finest_log2=2,
                 flow_channels=(96, 64, 48, 32), flow_kernel=3, flow_arch="pwc",
                 flow_features=(16, 32, 48, 64, 96), flow_corr_radius=4, fgma_levels=(0, 1, 2),
                 fgma_window=3, fgma_heads=4, head_features=16),
}


# Simulator motion for alignment training (flow pre-training, the alignment fine-tune):
# ranges from still to beyond the results table's hard-motion set (camera 8–24 px/frame,
# layers 12–32 px/frame), as `data.simulator` overrides (`data_pipeline.motion.MotionConfig`).
LARGE_MOTION = dict(
    camera_speed=(0.0, 24.0), camera_accel=1.0, camera_shake=(0.0, 2.0), camera_rotation=1.0,
    camera_zoom=0.02, num_layers=(1, 3), layer_speed=(0.0, 32.0), layer_accel=1.0,
    layer_rotation=3.0, layer_zoom=0.03, layer_size=(0.2, 0.45))


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `key=value,...` into a locked ConfigDict with the given defaults.

  Raises:
    ValueError: for keys that are not among the defaults.
  """
  result = ml_collections.ConfigDict(dict(defaults))
  if not arg:
    return result
  for item in arg.split(","):
    item = item.strip()
    if not item:
      continue
    if "=" not in item:
      key, value = "size", item
    else:
      key, value = (s.strip() for s in item.split("=", 1))
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r} in {arg!r}; known: {sorted(defaults)}")
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
    result[key] = type(defaults[key])(value) if defaults[key] is not None else value
  return result


def model_config(size: str, radius: int, response: str = "gamma2.2",
                 dtype: str = "float32") -> ml_collections.ConfigDict:
  """The `model` section: DeAltHDR module attributes."""
  if size not in MODEL_PRESETS:
    raise ValueError(f"unknown model size {size!r}; expected one of {SIZES}")
  if radius not in (1, 2):
    raise ValueError(f"radius must be 1 or 2, got {radius}")
  return ml_collections.ConfigDict(dict(MODEL_PRESETS[size], radius=radius,
                                        response=response, dtype=dtype,
                                        fgma_flow_guided=True, dual_encoder=True,
                                        flow_refine=(), flow_fill=False,
                                        flow_fill_consistency=0.0,
                                        flow_pair="off", flow_pair_scale=2,
                                        flow_pair_margin=0.8, flow_pair_smooth=5,
                                        fgma_flow_correction=False,
                                        fgma_correction_init="zero",
                                        exposure_prior=False, recon_kernel=0, max_log_gain=2.0,
                                        recon_kernel_range=0.0,
                                        response_calibration=0, response_min_slope=0.0))


def base_config(pattern: str, size: str, radius: int, ratio: float) -> ml_collections.ConfigDict:
  """Fields every experiment has: model, exposure pattern, inference attention ratio."""
  config = ml_collections.ConfigDict()
  config.size = size
  config.model = model_config(size, radius)
  config.pattern = pattern
  # Attention ratio used at inference and evaluation (a compile-time constant).
  config.attn_ratio = ratio
  # Ratios sampled per training step so that one model serves all of them.
  config.train_ratios = (0.0, 0.1, 0.25, 0.5, 1.0)
  config.seed = 0
  return config


# Training presets per model size (DESIGN.md §5). `tiny` is the runlocal preset of the
# tests: 32×32 crops, a handful of steps, every interval small so each code path runs.
TRAIN_PRESETS = {
    # Data "toy" (built-in sliding texture): the smoke preset needs no simulator.
    "tiny": dict(source="toy", total_steps=12, batch_size=4, crop=32, lr=1e-3,
                 warmup_steps=2, log_every=2, eval_every=6, checkpoint_every=6, image_every=6,
                 val_size=4, train_ratios=(0.0, 0.5)),
    "small": dict(source="synthetic", total_steps=20_000, batch_size=4, crop=64, lr=4e-4,
                  warmup_steps=500, log_every=50, eval_every=1000, checkpoint_every=1000, image_every=1000,
                  val_size=16, train_ratios=(0.0, 0.1, 0.25, 0.5, 1.0)),
    "base": dict(source="synthetic", total_steps=200_000, batch_size=8, crop=192, lr=4e-4,
                 warmup_steps=2000, log_every=100, eval_every=5000, checkpoint_every=5000, image_every=5000,
                 val_size=64, train_ratios=(0.0, 0.1, 0.25, 0.5, 1.0)),
}


def train_config(config: ml_collections.ConfigDict, stage: int = 1) -> None:
  """Adds the training sections to an (unlocked) experiment config, in place.

  Every config gets every key, for both stages, so command-line overrides are uniform;
  stage-2 configs change `stage`, `init_from`, the schedule and the data source.
  """
  if stage not in (1, 2):
    raise ValueError(f"stage must be 1 or 2, got {stage}")
  p = TRAIN_PRESETS[config.size]
  config.stage = stage
  # Stage 2: a stage-1 training workdir or a params-only checkpoint to start from.
  config.init_from = ""
  # Top-level parameter groups taken from `init_from` (e.g. ('flow',) after flow
  # pre-training, `configs/flow_pretrain.py`); the others start fresh. () = all of them.
  config.init_parts = ()
  # The flow network from another run (a flow pre-training workdir or model folder):
  # params["flow"] come from here, everything else from `init_from` (or fresh), so a
  # trained model can take a new flow network, even of another architecture.
  config.flow_init_from = ""
  # Top-level parameter groups that keep their values (e.g. ('flow',) to train the rest
  # around a pre-trained flow network).
  config.frozen = ()
  config.train_ratios = p["train_ratios"]
  config.total_steps = p["total_steps"]
  # Global batch (all processes together); must divide by the `data` mesh axis.
  config.batch_size = p["batch_size"]

  config.data = ml_collections.ConfigDict()
  # "synthetic": data_pipeline's simulator; "array_record": its windows pre-rendered;
  # "clips": folders/videos without GT (stage 2);
  # "toy": a built-in shifting-texture generator (tests, no data_pipeline needed).
  config.data.source = p["source"]
  config.data.crop = p["crop"]
  # "synthetic": a folder of .exr/.hdr images mixed with procedural scenes (half each);
  # `data.num_val_sources` of them (chosen by name hash) are held out for validation.
  # Empty = procedural scenes only.
  config.data.source_dir = ""
  config.data.num_val_sources = 2
  # "synthetic": camera responses the simulator draws from, with weights (() = uniform).
  # The model linearises with `model.response` whatever the sample's response was, so
  # other responses teach it to guess; a fine-tune on `("gamma2.2",)` alone removes the
  # bias that guessing leaves on clips whose response is known.
  config.data.responses = ("gamma2.2", "srgb", "sigmoid")
  config.data.response_weights = (0.5, 0.2, 0.3)
  # "synthetic": the share of clips written by a sampled real-camera pipeline (Bayer raw
  # noise, demosaicing, white balance, colour matrix, tone S-curve, JPEG;
  # `data_pipeline.camera_pipeline`, training ranges) instead of the RGB camera model.
  config.data.camera_pipeline_fraction = 0.0
  config.data.worker_count = 0
  # "array_record": a shard folder from `dealthdr synth --format array_record --config
  # <this config>` (pre-rendered windows, for hosts whose CPUs cannot render fast enough).
  config.data.records = ""
  # "clips": a folder of clip folders and/or videos (DESIGN.md §7); videos need `exposures`.
  config.data.clips = ""
  config.data.exposures = ""
  # "synthetic" in stage 2: simulate with a camera unlike stage 1's (unpaired clips).
  config.data.other_camera = stage == 2
  # Its response: one fixed curve ("sigmoid:N,SIGMA"), or "sigmoid" for a random one per clip.
  config.data.other_camera_response = "sigmoid:0.6,0.5"
  config.data.val_size = p["val_size"]
  config.data.val_seed = 1_000_003
  # Stage 2's no-reference held-out criterion (`train.criterion_step`): the self-supervised
  # losses on windows never trained on. "clips": the right `heldout_fraction` of every
  # frame is never cropped for training, and `heldout_windows` fixed crops come from it;
  # "synthetic" / "toy": windows of another seed. The export is the step with the best
  # criterion among those at least `heldout_min_gain` (relative) below the start; the
  # starting model if none is. 1 %: adapt runs that moved the criterion by 0.09-0.47 % gained
  # nothing or lost up to 0.30 dB PSNR-T on unseen clips of the camera, the other-camera
  # run that gained +3.86 dB moved it by 30 % (launch/README.md).
  config.data.heldout_fraction = 0.25
  config.data.heldout_windows = 8
  config.data.heldout_min_gain = 0.01

  config.optim = ml_collections.ConfigDict()
  config.optim.lr = p["lr"]
  config.optim.end_lr = 1e-7
  config.optim.warmup_steps = p["warmup_steps"]
  config.optim.weight_decay = 1e-4
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.grad_clip = 5.0
  # Learning rate of the response calibration curve (models with
  # `model.response_calibration` > 0, i.e. stage 2), on the same schedule shape.
  config.optim.calibration_lr = 3e-3
  # Learning rate of FGMA's flow correction (`model.fgma_flow_correction`; it starts at zero
  # or as the attention's soft argmax inside a trained model, and must move within a short
  # fine-tune).
  config.optim.correction_lr = 3e-3
  # Learning rate of FGMA's attention (the `fgma<level>` groups: query, key, value, output,
  # position bias) on its own Adam, for fine-tunes that teach a trained model's attention
  # to find matches (`loss.attention_match_weight`); 0 = trained with the network.
  config.optim.attention_lr = 0.0
  # EMA of the parameters (0 = off). Stage 2 needs it: the EMA is the teacher.
  config.optim.ema_decay = 0.999 if stage == 2 else 0.0

  config.loss = ml_collections.ConfigDict()
  config.loss.mu = 5000.0
  # Flow EPE weight, cosine-decayed from `flow_weight` to `flow_weight_end` over
  # `flow_decay_frac` of the run.
  config.loss.flow_weight = 0.1
  config.loss.flow_weight_end = 0.0
  config.loss.flow_decay_frac = 0.5
  # EPE of the flow that aligns (filled, corrected by FGMA: aux["flow_aligned"]) on
  # visible pixels, constant weight; what teaches `model.fgma_flow_correction` to move it.
  config.loss.aligned_flow_weight = 0.0
  # FGMA's attention looking at the ground-truth match where it is inside the window
  # (losses.attention_match_loss, every FGMA level, constant weight; 0 = off).
  config.loss.attention_match_weight = 0.0
  # Mirror consistency (0 = off): each step also runs the window mirrored (left-right,
  # upside down or both, in turn by step), mirrors the output back, supervises it by the
  # same ground truth (the HDR loss becomes the two copies' mean) and adds this weight
  # times the μ-law L1 between the two outputs (losses.prediction_difference). What
  # `infer --self-ensemble` averages at test time, taught into one pass; 2× a step's cost.
  config.loss.mirror_weight = 0.0
  # Where the consistency is measured: "all" pixels, or "unrecorded" ones only (every
  # shortest exposure clipped, losses.unrecorded_mask), where the output is a guess.
  config.loss.mirror_region = "all"
  # Distillation of a self-ensemble (0 = off): plus this weight times the μ-law L1 from
  # the mean of the teacher's (`state.ema_params`) outputs on `distill_copies` mirrored
  # copies of the window (train.teacher_ensemble). With `optim.ema_decay=1` the teacher
  # is the starting model, frozen (then `export_params="params"`).
  config.loss.distill_weight = 0.0
  config.loss.distill_copies = 4
  # The attention ratio the teacher runs at: < 0 = the step's own ratio; a ratio in
  # [0, 1] = that one at every step, so that the student at every ratio is taught the
  # teacher at its best ratio (attention that may not make the output worse).
  config.loss.distill_ratio = -1.0
  # Where the teacher is followed: "all" pixels, or "unrecorded" ones only (every shortest
  # exposure clipped, losses.unrecorded_mask: where the output is a guess, and the mean of
  # the mirrored copies' guesses beats any one of them); recorded pixels keep the HDR loss
  # alone.
  config.loss.distill_region = "all"
  # Stage 2 terms.
  config.loss.subset_weight = 1.0
  config.loss.teacher_weight = 1.0
  config.loss.reexpose_weight = 0.5
  # Re-exposure of the random sub-window's output to the frames it left out (0 = off):
  # a target whose noise the input does not hold (train.stage2_step (d)).
  config.loss.reexpose_left_out_weight = 0.0
  # The EMA teacher's hold on pixels no frame of the window records (losses.unrecorded_mask;
  # 0 = off): nothing there tells stage 2 what is true (train.stage2_step (e)).
  config.loss.teacher_unrecorded_weight = 0.0
  # Smoothness of the learned response calibration curve (`losses.curve_roughness`).
  config.loss.curve_smoothness = 5e-4
  # Pull of the learned curve towards the declared (or default) response, i.e. the
  # identity curve (`losses.curve_prior`, mean squared knot distance in LDR units).
  config.loss.curve_prior = 0.0
  # Which terms train the learned curve: "all" (every term, through the network's input
  # and through the re-exposure), or "reexposure" (only the re-exposure terms' rendering of
  # the output back to the frames; the network reads the curve without a gradient, so the
  # EMA teacher and the sub-window terms hold the network, never the curve).
  config.loss.curve_from = "all"

  # Device mesh: `shape` (-1 = all remaining devices) over `axes`; the batch is split
  # over `data`. `param_rules`: (regex over "a/b/kernel" names, axis names or None per
  # dimension) → how a parameter is split; unmatched parameters are replicated.
  config.mesh = ml_collections.ConfigDict()
  config.mesh.shape = (-1,)
  config.mesh.axes = ("data",)
  config.mesh.param_rules = ()

  # Keep-best tracks validation PSNR-T at checkpoints that coincide with a validation,
  # so keep checkpoint_every a multiple of eval_every.
  config.log_every = p["log_every"]
  config.eval_every = p["eval_every"]
  config.checkpoint_every = p["checkpoint_every"]
  config.image_every = p["image_every"]
  config.keep_checkpoints = 3
  # Which parameters the params-only export in `<workdir>/export/` holds: the EMA if
  # there is one, else the raw parameters ("ema" falls back to "params" without EMA).
  config.export_params = "ema"


def stage2_config(config: ml_collections.ConfigDict) -> None:
  """Adds the stage-2 (self-supervised fine-tuning) sections to an experiment config.

  lr 1e-5 (REFERENCES.md: the DeAltHDR fork fine-tunes real video at 1e-5), no flow
  supervision, and a learned response calibration: a monotone curve (32 segments, 8 for
  `tiny`) on top of `model.response`, with a least slope of 0.25 (it cannot flatten or
  invert any range of contrast) and a prior towards the declared response.
  """
  train_config(config, stage=2)
  if config.size != "tiny":
    config.total_steps = 50_000 if config.size == "base" else 2_000
    config.optim.lr = 1e-5
    config.optim.warmup_steps = 100
  config.loss.flow_weight = 0.0
  config.model.response_calibration = 8 if config.size == "tiny" else 32
  config.model.response_min_slope = 0.25
  config.loss.curve_prior = CURVE_PRIOR


# Stage 2's pull of the learned response curve towards the declared response
# (`loss.curve_prior`): measured in configs/dealthdr_2exp_stage2.py's docstring.
CURVE_PRIOR = 0.05
