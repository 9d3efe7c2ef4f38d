"""What `dealthdr adapt` gains on a camera it has never seen: on the adapted clip, and on the
same camera's other clips.

  python tools/measure_adapt.py --sources ../shared/hdr_sources --out out/adapt

Renders `--clips` clips (`--frames` frames at `--size`, 2 exposures, held-out images only)
through ONE camera drawn from the held-out pipeline ranges (`camera_pipeline.HELD_OUT_RANGES`,
`--camera-seed`), adapts the shipped model on the first clip without its GT (`dealthdr adapt`
with `--steps`), then scores the shipped and the adapted model on every clip against GT
(PSNR-T, PSNR-L, SSIM-T, dark-region chroma error). Writes `<model folder>.json` and `.md` under
`--out` and prints the table. Rerunning reuses the rendered clips and the adapt run (resumed
if it was interrupted).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

from dealthdr_jax import model_files
from dealthdr_jax.evaluation import scoring
from dealthdr_jax.evaluation import testsets
from dealthdr_jax.training import adapt

COLUMNS = [("clip", "clip", "s"), ("adapted on", "role", "s"), ("model", "model", "s"),
           ("PSNR-T", "psnr_t", ".2f"), ("PSNR-L", "psnr_l", ".2f"), ("SSIM-T", "ssim_t", ".4f"),
           ("dark chroma", "dark_chroma", ".4f")]
METRICS = ("psnr_t", "psnr_l", "ssim_t", "dark_chroma")


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
  parser.add_argument("--seed", type=int, default=23, help="clip rendering seed")
  parser.add_argument("--steps", type=int, default=adapt.DEFAULT_STEPS)
  parser.add_argument("--override", action="append", default=[],
                      help="a stage-2 config override for adapt, e.g. optim.calibration_lr=1e-2 "
                           "(repeatable; the model folder's name records them)")
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  size = tuple(int(v) for v in args.size.split("x"))
  config = testsets.held_out_camera_config("2exp", size, args.sources).replace(
      pipeline_camera_seed=args.camera_seed)
  clips = testsets.render(out, f"camera{args.camera_seed}_{args.size}", config,
                          num_clips=args.clips, frames=args.frames, seed=args.seed)
  camera = json.loads((clips[0] / "meta.json").read_text()).get("camera_pipeline")
  shipped = model_files.shipped_checkpoint("dealthdr_2exp")
  tag = "".join(f"_{o.replace('=', '')}" for o in args.override)
  model_dir = out / f"adapted_camera{args.camera_seed}_{args.steps}{tag}"
  if (model_dir / model_files.CARD_FILE).exists():
    card = json.loads((model_dir / model_files.CARD_FILE).read_text())
  else:
    start = time.time()
    card = adapt.adapt([str(clips[0])], str(model_dir), steps=args.steps,
                       overrides=[f"--config.{o}" for o in args.override],
                       command=" ".join(["python"] + sys.argv))
    print(f"adapt took {time.time() - start:.0f} s", file=sys.stderr)
  rows = []
  for name, checkpoint in (("shipped", shipped), ("adapted", str(model_dir))):
    for i, clip in enumerate(clips):
      pred = out / "pred" / (name if name == "shipped" else model_dir.name)
      s = scoring.score(pred, [clip], perceptual=False, checkpoint=checkpoint)
      rows.append({"clip": clip.name, "role": "yes" if i == 0 else "no", "model": name,
                   **{k: s[k] for k in METRICS}})
  summary = {}
  for role, idx in (("adapted clip", [0]), ("other clips", list(range(1, len(clips))))):
    if not idx:
      continue
    gain = {k: float(np.mean([rows[len(clips) + i][k] - rows[i][k] for i in idx]))
            for k in METRICS}
    summary[role] = gain
  table = scoring.markdown(rows, COLUMNS)
  text = (table + "\n" + "\n".join(
      f"gain on the {role}: " + ", ".join(f"{k} {v:+.3f}" for k, v in g.items())
      for role, g in summary.items())
      + f"\nadapt: {card['steps']} steps, {card['wall_seconds']:.0f} s, exported "
        f"{card['exported']}; held-out criterion {card['heldout_criterion']}; "
        f"curve {card['response_curve']}\n")
  out.mkdir(parents=True, exist_ok=True)
  (out / f"{model_dir.name}.json").write_text(json.dumps(
      {"rows": rows, "gains": summary, "card": card, "camera": camera,
       "args": vars(args)}, indent=1))
  (out / f"{model_dir.name}.md").write_text(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
