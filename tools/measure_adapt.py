"""What `dealthdr adapt` gains on a camera it has never seen: on the adapted clip, and on the
same camera's other clips.

  python tools/measure_adapt.py --sources ../shared/hdr_sources --out out/adapt

Renders `--clips` clips (`--frames` frames at `--size`, 2 exposures, held-out images only)
through ONE camera drawn from the held-out pipeline ranges (`camera_pipeline.HELD_OUT_RANGES`,
`--camera-seed`), adapts the shipped model on the first clip without its GT (`dealthdr adapt`
with `--steps`), then scores the shipped and the adapted model on every clip against GT
(PSNR-T, PSNR-L, SSIM-T, dark-region chroma error). Writes `<model folder>.json` and `.md` under
`--out` and prints the table. Rerunning reuses the rendered clips and the adapt run (resumed
if it was interrupted). `--criterion` adds, per clip and model, stage 2's no-reference
held-out criterion (`train.criterion_step` with the adapt run's loss weights, every interior
window, whole frames; on clip 0 that includes the part adapt trained on): whether the
criterion's change follows the GT's is what makes it a safe export rule.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import time

import jax
import numpy as np

from data_pipeline import clips as clips_lib
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import scoring
from dealthdr_jax.evaluation import testsets
from dealthdr_jax.training import adapt
from dealthdr_jax.training import train

COLUMNS = [("clip", "clip", "s"), ("adapted on", "role", "s"), ("model", "model", "s"),
           ("PSNR-T", "psnr_t", ".2f"), ("PSNR-L", "psnr_l", ".2f"), ("SSIM-T", "ssim_t", ".4f"),
           ("dark chroma", "dark_chroma", ".4f")]
METRICS = ("psnr_t", "psnr_l", "ssim_t", "dark_chroma")


def criterion_per_clip(checkpoint: str, clips: list[pathlib.Path], config,
                       response: str | None = None) -> list[float]:
  """Stage 2's held-out criterion of a model on each clip: `train.criterion_step` with
  `config`'s loss weights and pattern, at the model's own ratio, averaged over every window
  whose frames are all the clip's own (t = 1 … N−2 for radius 1), whole frames."""
  loaded = model_files.load_model(checkpoint)
  step = jax.jit(lambda p, frames, stops: train.criterion_step(
      p, {"frames": frames, "stops": stops}, model=loaded.model, config=config,
      ratio=float(loaded.config.attn_ratio)))
  values, r = [], loaded.model.radius
  for folder in clips:
    clip = clips_lib.open_clip(folder, response=response)
    per_window = [float(step(loaded.params, frames[None], stops[None])[0])
                  for _, frames, stops in clips_lib.iter_windows(clip, r, r, len(clip) - r)]
    values.append(float(np.mean(per_window)))
  return values


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--sources", required=True, help="HDR image folder (held-out split used)")
  parser.add_argument("--out", required=True)
  parser.add_argument("--clips", type=int, default=8,
                      help="clips of the camera (clip 0 adapted on); clip i is the same for any "
                           "count. Four were too few to tell a gain on the others from luck")
  parser.add_argument("--frames", type=int, default=9)
  parser.add_argument("--size", default="256x384")
  parser.add_argument("--camera-seed", type=int, default=11)
  parser.add_argument("--other-camera", metavar="RESPONSE",
                      help="instead, clips of stage 2's simulated other camera with this response "
                           "(e.g. sigmoid:0.6,0.5), which nobody declares: adapt and every "
                           "model read them as gamma 2.2, as results_table does")
  parser.add_argument("--seed", type=int, default=23, help="clip rendering seed")
  parser.add_argument("--steps", type=int, default=adapt.DEFAULT_STEPS)
  parser.add_argument("--override", action="append", default=[],
                      help="a stage-2 config override for adapt, e.g. optim.calibration_lr=1e-2 "
                           "(repeatable; the model folder's name records them)")
  parser.add_argument("--curve", action="store_true",
                      help="adapt with a learned response curve (`dealthdr adapt --curve`)")
  parser.add_argument("--criterion", action="store_true",
                      help="also score stage 2's held-out criterion per clip and model")
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  size = tuple(int(v) for v in args.size.split("x"))
  if args.other_camera:
    config = testsets.testset_config("2exp", size, args.sources, args.other_camera)
    camera_name = "other_" + re.sub(r"[^\w.-]+", "_", args.other_camera)
  else:
    config = testsets.held_out_camera_config("2exp", size, args.sources).replace(
        pipeline_camera_seed=args.camera_seed)
    camera_name = f"camera{args.camera_seed}"
  response = testsets.OTHER_CAMERA_READ_AS if args.other_camera else None
  clips = testsets.render(out, f"{camera_name}_{args.size}", config,
                          num_clips=args.clips, frames=args.frames, seed=args.seed)
  camera = json.loads((clips[0] / "meta.json").read_text()).get("camera_pipeline")
  shipped = model_files.shipped_checkpoint("dealthdr_2exp")
  tag = "".join(f"_{o.replace('=', '')}" for o in args.override)
  # The curve recipe is in the name: runs of earlier recipes are not reused.
  tag += (f"_curve_lr{adapt.CURVE_CALIBRATION_LR:g}_gain{adapt.CURVE_MIN_GAIN:g}"
          f"_from{adapt.CURVE_FROM}" if args.curve else "")
  model_dir = out / f"adapted_{camera_name}_{args.steps}{tag}"
  if (model_dir / model_files.CARD_FILE).exists():
    card = json.loads((model_dir / model_files.CARD_FILE).read_text())
  else:
    start = time.time()
    card = adapt.adapt([str(clips[0])], str(model_dir), steps=args.steps, response=response,
                       curve=args.curve, overrides=[f"--config.{o}" for o in args.override],
                       command=" ".join(["python"] + sys.argv))
    print(f"adapt took {time.time() - start:.0f} s", file=sys.stderr)
  rows = []
  for name, checkpoint in (("shipped", shipped), ("adapted", str(model_dir))):
    # One prediction folder per test set and model (cameras share clip names).
    pred = (out / "pred" / f"{camera_name}_{args.size}"
            / (name if name == "shipped" else model_dir.name))
    per_clip = scoring.score(pred, clips, perceptual=False, per_clip=True,
                             checkpoint=checkpoint,
                             **({"response": response} if response else {}))["per_clip"]
    rows += [{"clip": clip.name, "role": "yes" if i == 0 else "no", "model": name,
              **{k: per_clip[clip.name][k] for k in METRICS}} for i, clip in enumerate(clips)]
  metrics, columns = METRICS, COLUMNS
  if args.criterion:
    config = model_files.load_params(model_dir)[1]
    for k, (name, checkpoint) in enumerate((("shipped", shipped), ("adapted", str(model_dir)))):
      for i, value in enumerate(criterion_per_clip(checkpoint, clips, config, response)):
        rows[k * len(clips) + i]["criterion"] = value
    metrics, columns = METRICS + ("criterion",), COLUMNS + [("criterion", "criterion", ".6f")]
  summary = {}
  for role, idx in (("adapted clip", [0]), ("other clips", list(range(1, len(clips))))):
    if not idx:
      continue
    gain = {k: float(np.mean([rows[len(clips) + i][k] - rows[i][k] for i in idx]))
            for k in metrics}
    summary[role] = gain
  agree = None  # Per clip: did the criterion and PSNR-T move the same way?
  if args.criterion:
    agree = [bool((rows[len(clips) + i]["criterion"] < rows[i]["criterion"])
                  == (rows[len(clips) + i]["psnr_t"] > rows[i]["psnr_t"]))
             for i in range(len(clips))]
  table = scoring.markdown(rows, columns)
  text = (table + "\n" + "\n".join(
      f"gain on the {role}: " + ", ".join(f"{k} {v:+.3g}" if k == "criterion" else
                                         f"{k} {v:+.3f}" for k, v in g.items())
      for role, g in summary.items())
      + (f"\nthe criterion fell where PSNR-T rose, or rose where it fell, on {sum(agree)} "
         f"of {len(clips)} clips" if agree is not None else "")
      + f"\nadapt: {card['steps']} steps, {card['wall_seconds']:.0f} s, exported "
        f"{card['exported']}; held-out criterion {card['heldout_criterion']}; "
        f"curve {card['response_curve']}\n")
  out.mkdir(parents=True, exist_ok=True)
  (out / f"{model_dir.name}.json").write_text(json.dumps(
      {"rows": rows, "gains": summary, "criterion_agrees_with_psnr_t": agree,
       "card": card, "camera": camera,
       "args": vars(args)}, indent=1))
  (out / f"{model_dir.name}.md").write_text(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
