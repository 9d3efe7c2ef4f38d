"""What stage 2's re-exposure comparison says about a model on a camera, level by level.

  python tools/reexposure_residuals.py --sources ../shared/hdr_sources --json out/train_cams.json
  python tools/reexposure_residuals.py CLIP_OR_FOLDER [...] --against out/train_cams.json

Stage 2 renders the model's output to every frame of its window and compares it with the
frames (`losses.reexposure_comparison`: reference and flow-warped neighbours, where the
observed LDR is well exposed); a learned response curve moves wherever the median of
rendered − observed is not 0 at its level. This tool reports that median per rendered LDR
level (`LEVELS`, bins of 0.05), and the share of pixels rendered above the frame minus the
share below (the sign balance, which is what an L1 gradient follows). No ground truth is
needed: any clip folders (read as `infer` reads them, tone calibration included).

Without clips it renders clips of the training sources (`source_split="train"`, never the
held-out images) through the stage-1 cameras (declared gamma 2.2 or sRGB; half of them
through a sampled training camera pipeline) into `--work`: the residual the model leaves on
cameras it reads right. On those the shipped 2exp model renders 1–4 ×10⁻³ darker than the
frames below LDR 0.85 and up to 4 ×10⁻³ brighter above (docs/stage2_history.md),
which is what a curve drifts to absorb on every camera. `--against TABLE` prints a clip
set's residual minus such a table: where a camera's response is not the one it declares,
that difference is large at the mid levels (a sigmoid camera read as gamma 2.2: −0.016 at
level 0.375; a held-out pipeline camera read right: within ±0.0025 up to 0.8).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from data_pipeline import clips as clips_lib  # pylint: disable=g-import-not-at-top
from data_pipeline import response as np_response  # pylint: disable=g-import-not-at-top
from dealthdr_jax import model_files  # pylint: disable=g-import-not-at-top
from dealthdr_jax.evaluation import testsets  # pylint: disable=g-import-not-at-top
from dealthdr_jax.training import losses  # pylint: disable=g-import-not-at-top

# Bin edges of the rendered LDR level over the well-exposed range (18 bins of 0.05).
EDGES = np.linspace(np_response.WELL_EXPOSED_LOW, np_response.WELL_EXPOSED_HIGH, 19)
LEVELS = tuple(float(x) for x in 0.5 * (EDGES[1:] + EDGES[:-1]))
# Compared channel values a level needs for its median.
MIN_VALUES = 2000
# Share of the training-camera clips written through a sampled training camera pipeline.
PIPELINE_FRACTION = 0.5


def per_level(predicted: np.ndarray, residual: np.ndarray) -> dict[str, list]:
  """Median residual, sign balance and count per rendered level.

  Args:
    predicted: [N] rendered LDR values (the compared pixels, per channel).
    residual: [N] rendered − observed at them.
  Returns:
    {"levels", "median", "sign_balance", "counts"}: one entry per `LEVELS` level; median
    and sign balance are None where fewer than MIN_VALUES values fall.
  """
  index = np.digitize(predicted, EDGES) - 1
  median, balance, counts = [], [], []
  for b in range(len(LEVELS)):
    values = residual[index == b]
    counts.append(int(values.size))
    enough = values.size >= MIN_VALUES
    median.append(round(float(np.median(values)), 6) if enough else None)
    balance.append(round(float(np.mean(np.sign(values))), 4) if enough else None)
  return {"levels": [round(x, 4) for x in LEVELS], "median": median,
          "sign_balance": balance, "counts": counts}


def measure(checkpoint: str, clips: list, ratio: float | None = None,
            tone_calibration: str = "auto", response: str | None = None) -> dict:
  """`per_level` of the model's re-exposure comparison over every window of `clips`
  (clip folders), each read through its declared response (or `response`) as `infer`
  does."""
  loaded = model_files.load_model(checkpoint)
  model, params = loaded.model, loaded.params
  ratio = float(loaded.config.attn_ratio if ratio is None else ratio)
  programs = {}

  def program(clip_response: str):
    """The comparison for clips read through `clip_response` (the model's learned
    response curve, if it has one, enters as in the loss)."""
    if clip_response not in programs:
      reading = model.clone(response=clip_response)

      @jax.jit
      def compare(frames, stops):
        hdr, aux = reading.apply({"params": params}, frames, stops, ratio=ratio)
        predicted, observed, mask = losses.reexposure_comparison(
            hdr, frames, stops, aux["flow"], response=clip_response,
            curve=aux.get("response_curve"))
        return predicted, predicted - observed, mask
      programs[clip_response] = compare
    return programs[clip_response]

  predicted_all, residual_all = [], []
  for source in clips:
    clip = clips_lib.open_clip(source, response=response, tone_calibration=tone_calibration)
    compare = program(clip.response)
    for _, frames, stops in clips_lib.iter_windows(clip, model.radius):
      predicted, residual, mask = map(np.asarray, compare(jnp.asarray(frames)[None],
                                                          jnp.asarray(stops)[None]))
      keep = np.broadcast_to(mask > 0, predicted.shape)
      predicted_all.append(predicted[keep])
      residual_all.append(residual[keep])
  table = per_level(np.concatenate(predicted_all), np.concatenate(residual_all))
  return {**table, "checkpoint": str(checkpoint),
          "fingerprint": model_files.fingerprint(checkpoint), "ratio": ratio,
          "clips": [str(c) for c in clips]}


def training_camera_clips(work: pathlib.Path, pattern: str, sources: str, num_clips: int,
                          frames: int, size: tuple[int, int], seed: int) -> list[pathlib.Path]:
  """Clips of the training sources through the stage-1 cameras (module docstring)."""
  config = testsets.testset_config(pattern, size, sources).replace(
      source_split="train", camera_pipeline_fraction=PIPELINE_FRACTION)
  return testsets.render(work, f"train_cameras_{pattern}", config, num_clips, frames, seed)


def clip_sources(paths: list[str]) -> list[pathlib.Path]:
  """The clip folders named, or the clip folders one level under a named folder."""
  found = []
  for given in paths:
    path = pathlib.Path(given)
    if not path.is_dir():
      raise SystemExit(f"{given}: no such clip folder or folder of clips")
    if any(path.glob("exposures.txt")) or any(path.glob("meta.json")):
      found.append(path)
    else:
      inner = sorted(p for p in path.iterdir()
                     if (p / "exposures.txt").exists() or (p / "meta.json").exists())
      if not inner:
        raise SystemExit(f"{given}: neither a clip folder (exposures.txt or meta.json) nor a "
                         "folder of them")
      found += inner
  return found


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("clips", nargs="*",
                      help="clip folders, or folders of them (default: training-camera clips "
                           "rendered from --sources)")
  parser.add_argument("--sources", help="HDR image folder (its training split), without clips")
  parser.add_argument("--checkpoint", default=None,
                      help="model folder or workdir (default: the shipped model for the "
                           "clips' exposures)")
  parser.add_argument("--pattern", default="2exp", choices=("2exp", "3exp"),
                      help="training-camera clips' pattern (without clips)")
  parser.add_argument("--work", default="out/reexposure_residuals",
                      help="where training-camera clips are rendered (reused when present)")
  parser.add_argument("--num-clips", type=int, default=8)
  parser.add_argument("--frames", type=int, default=9)
  parser.add_argument("--size", default="256x384")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--ratio", type=float, default=None,
                      help="attention ratio (default: the model's)")
  parser.add_argument("--response", choices=("gamma2.2", "srgb", "linear"),
                      help="read the clips with this response (default: their meta.json)")
  parser.add_argument("--tone-calibration", default="auto", metavar="auto|off|CONTRAST")
  parser.add_argument("--against", help="a --json table of this tool: print the difference")
  parser.add_argument("--json", help="write the table here")
  args = parser.parse_args(argv)
  against = None
  if args.against:
    try:
      against = json.loads(pathlib.Path(args.against).read_text())
      if against["levels"] != [round(x, 4) for x in LEVELS]:
        raise ValueError(f"levels {against['levels']}")
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise SystemExit(f"--against {args.against}: not a table of this tool ({e})") from None
  if args.clips:
    clips = clip_sources(args.clips)
  elif args.sources:
    size = tuple(int(v) for v in args.size.lower().split("x"))
    clips = training_camera_clips(pathlib.Path(args.work), args.pattern, args.sources,
                                  args.num_clips, args.frames, size, args.seed)
  else:
    raise SystemExit("give clips, or --sources to render training-camera clips")
  try:
    checkpoint = model_files.resolve_checkpoint(
        args.checkpoint or model_files.default_checkpoint(
            clips_lib.open_clip(clips[0], response=args.response).stops if args.clips else
            ([0.0, 2.0, 4.0] if args.pattern == "3exp" else [0.0, 2.0])))
    table = measure(str(checkpoint), clips, args.ratio, args.tone_calibration, args.response)
  except (clips_lib.ClipError, FileNotFoundError) as e:
    raise SystemExit(str(e)) from None
  if against is not None and against.get("fingerprint") != table["fingerprint"]:
    print(f"note: --against was measured on another model ({against.get('checkpoint')})")
  print(f"{checkpoint} on {len(clips)} clip(s): rendered − observed per rendered level")
  print("level   median×1000  sign balance   values" + ("   minus --against" if against else ""))
  for b, level in enumerate(LEVELS):
    m, s, n = table["median"][b], table["sign_balance"][b], table["counts"][b]
    row = (f"{level:5.3f}  " + ("        -  " if m is None else f"{1000 * m:+10.2f} ")
           + ("           -  " if s is None else f"{s:+13.3f} ") + f"{n:9d}")
    if against:
      a = against["median"][b]
      row += "   " + ("-" if a is None or m is None else f"{1000 * (m - a):+10.2f}")
    print(row)
  if args.json:
    path = pathlib.Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    model_files.write_bytes_atomic(path, (json.dumps(table, indent=1) + "\n").encode())
  return 0


if __name__ == "__main__":
  sys.exit(main())
