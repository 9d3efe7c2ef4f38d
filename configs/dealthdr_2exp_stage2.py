"""Stage 2: self-supervised fine-tuning of a stage-1 DeAltHDR (2 exposures) on clips without GT.

Losses (DESIGN.md §5): full window → random sub-window consistency, EMA-teacher
consistency (decay 0.999), re-exposure consistency with the well-exposed LDR. Starts from
`init_from` (a stage-1 workdir or params-only checkpoint) with lr 1e-5 (REFERENCES.md:
the DeAltHDR fork fine-tunes real video at 1e-5 for 50k iterations).

The model gets a learned response calibration (`model.response_calibration`: a monotone
32-segment curve applied to the LDR before the assumed gamma 2.2, identity at start,
trained at `optim.calibration_lr` 3e-3 through the re-exposure loss, kept smooth by
`loss.curve_smoothness`). A real camera's curve is rarely the assumed one, and the three
losses alone cannot fix that: re-exposing through the wrong curve is self-consistent with
reading through it. With known exposure ratios the re-exposure loss does pin the curve
(tests/test_train_losses.py checks this on a sigmoid camera).

Data: real clip folders / videos (`data.source=clips`, `data.clips=DIR`, videos also
need `data.exposures='0,3'`), or unpaired synthetic clips from a different simulated
camera (`data.source=synthetic`, the default here). Validation stays on the fixed
synthetic set with GT, so PSNR-T tracks whether fine-tuning hurts the supervised task.

  dealthdr train --config configs/dealthdr_2exp_stage2.py:size=small --workdir runs/s2 \\
      --config.init_from=runs/s1 --config.data.source=clips --config.data.clips=/data/clips

Measured on a 2-core CPU: `small` runs ~6.7 steps/s (27 samples/s) at batch 4, 64×64
crops (three forward passes per step: student full + sub-window, EMA teacher), so the
2000-step preset takes ~5 min of steps (~8 min wall with validation and start-up). The
README's before/after-stage-2 rows come from

  dealthdr train --config configs/dealthdr_2exp_stage2.py:size=small \
      --workdir runs/2exp_stage2_calib --config.init_from=dealthdr_jax/assets/models/dealthdr_2exp \
      --config.data.source_dir=../shared/hdr_sources --config.data.worker_count=1

  (from the shipped 2-exposure model; unpaired clips of `simulator.stage2_camera`:
  randomised sigmoid responses, a noisier sensor). 2000 steps, 8 min wall on the 2-core
  CPU: re-exposure loss 0.045 → 0.039; the learned curve at LDR 0.1/0.3/0.5/0.7/0.9 is
  0.092/0.240/0.391/0.577/0.854 where the mean sigmoid camera needs 0.105/0.251/0.403/
  0.587/0.834; held-out other-camera PSNR-T 28.73 → 31.65 dB. Validation on the stage-1
  camera (gamma/sRGB/sigmoid mix) drops 31.30 → 28.65 dB: the model is now this camera's.
  The same preset without the curve (`--config.model.response_calibration=0`) changed
  nothing measurable (28.73 → 28.72 dB). Real clips are not measured yet.

`size=tiny` is the test preset (12 steps, 32×32 toy crops, ~30 s on 2 cores, mostly compilation).
"""
from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, size="small", radius=1, ratio=0.25)
  config = common.base_config("2exp", arg.size, arg.radius, arg.ratio)
  common.train_config(config, stage=2)
  if arg.size != "tiny":
    config.total_steps = 50_000 if arg.size == "base" else 2_000
    config.optim.lr = 1e-5
    config.optim.warmup_steps = 100
  config.loss.flow_weight = 0.0
  # Learn the camera's response (a 32-segment monotone curve on top of `model.response`).
  config.model.response_calibration = 8 if arg.size == "tiny" else 32
  config.lock()
  return config
