"""How far each exposure of a clip with GT misreports the light, level by level.

  python tools/exposure_bias.py out/adapt_v8/testsets/camera11_256x384 [--by observed]

For every frame of every clip folder given (or found under a folder): the frame as the
model reads it (`Clip.frame`: tone calibration applied), linearised by the clip's declared
response and divided by 2**stops, over the frame's GT radiance; the median of that ratio per
LDR level, for the shortest exposure and for the others (1.0 = the exposure reports the
light exactly); pixels where a channel of the exposed GT reaches white are left out (a
clipped channel reports white, not the light). `--by ideal` (default) bins pixels by the
level the GT would give without noise (`response(clip(GT · 2**stops))`): the bias of the
camera itself (its processing and its noise read through the linearisation). `--by
observed` bins by the level the frame shows, which is what a per-level correction such as stage 2's
response curve can act on; under noise it also holds the selection effect of binning
noisy values, which differs between exposures, since the same level is different scene
light in each. Where the exposures' ratios differ at the levels that see the same scene
light, re-exposure consistency between them cannot be met by any one curve. `--json F`
writes the table.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

from data_pipeline import clips as clips_lib  # pylint: disable=g-import-not-at-top
from data_pipeline import hdr_io  # pylint: disable=g-import-not-at-top
from data_pipeline import response as resp  # pylint: disable=g-import-not-at-top

LEVELS = (0.0, 0.03, 0.06, 0.09, 0.12, 0.16, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# Fewer pixels than this in a level of one exposure: no median reported there.
MIN_PIXELS = 50
# GT radiance below this (§3 units) is not divided by.
DARKEST = 1e-4


def level_ratios(frames: list[np.ndarray], stops, gts: list[np.ndarray], response: str,
                 by: str = "ideal", levels=LEVELS) -> dict[str, list[float | None]]:
  """Median (reported light / GT) per level, for the shortest exposure and the others.

  Args:
    frames: per frame [H, W, 3] LDR in [0, 1], as the model reads it.
    stops: [N] the frames' exposures in stops.
    gts: per frame [H, W, 3] linear GT radiance (§3 units: LDR = response(clip(GT·2**stops))).
    response: the declared camera response the frames are linearised with.
    by: "ideal" (bin by the GT's noise-free level) or "observed" (by the frame's level).
  Returns:
    {"short": [...], "long": [...]}: one median per level interval (None where fewer than
    MIN_PIXELS pixels fall in it), pixel mean over the three channels.
  """
  if by not in ("ideal", "observed"):
    raise ValueError(f"by={by!r}: expected 'ideal' or 'observed'")
  stops = np.asarray(stops, np.float64)
  shortest = stops <= stops.min() + clips_lib.SAME_EXPOSURE_STOPS
  ratios = {"short": [[] for _ in levels[:-1]], "long": [[] for _ in levels[:-1]]}
  for ldr, gt, s, short in zip(frames, gts, stops, shortest):
    reported = np.asarray(resp.linearise(ldr, response)).mean(-1) / 2.0 ** s
    light = gt.mean(-1)
    if by == "ideal":
      level = np.asarray(resp.apply_response(np.clip(gt * 2.0 ** s, 0, 1), response)).mean(-1)
    else:
      level = ldr.mean(-1)
    # A channel whose exposed light reaches white reports white, not the light: left out.
    ok = (light > DARKEST) & ((gt * 2.0 ** s).max(-1) < 1.0)
    for b in range(len(levels) - 1):
      m = ok & (level >= levels[b]) & (level < levels[b + 1])
      ratios["short" if short else "long"][b].append(reported[m] / light[m])
  out = {}
  for kind, per_level in ratios.items():
    values = [np.concatenate(v) if v else np.zeros(0) for v in per_level]
    out[kind] = [float(np.median(v)) if v.size >= MIN_PIXELS else None for v in values]
  return out


def clip_folders(paths: list[str]) -> list[pathlib.Path]:
  """The clip folders named, or found one level under a named folder."""
  found = []
  for given in paths:
    path = pathlib.Path(given)
    if not path.is_dir():
      raise SystemExit(f"{given}: no such folder; expected a clip folder or a folder of them")
    found += [path] if any(path.glob("exposures.txt")) else sorted(
        p for p in path.iterdir() if (p / "exposures.txt").exists())
  if not found:
    raise SystemExit(f"{', '.join(paths)}: no clip folder (one with exposures.txt) found")
  return found


def read_clip(folder: pathlib.Path):
  """(frames as the model reads them, stops, GT radiance, response) of a clip with GT."""
  clip = clips_lib.open_clip(folder)
  if clip.gt_paths is None:
    raise SystemExit(f"{folder}: the clip has no GT (gt/ with one EXR per frame); this tool "
                     "compares the frames with it")
  frames = [clip.frame(i) for i in range(len(clip))]
  gts = [hdr_io.read_hdr(p) for p in clip.gt_paths]
  return frames, clip.stops, gts, clip.response


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("clips", nargs="+", help="clip folders with gt/, or folders of them")
  parser.add_argument("--by", choices=("ideal", "observed"), default="ideal")
  parser.add_argument("--json", help="write the table here")
  args = parser.parse_args(argv)
  frames, stops, gts, responses = [], [], [], set()
  for folder in clip_folders(args.clips):
    f, s, g, r = read_clip(folder)
    frames += f
    gts += g
    stops += list(s)
    responses.add(r)
  if len(responses) > 1:
    raise SystemExit(f"the clips declare different responses {sorted(responses)}; give clips "
                     "of one camera")
  # Each clip's stops are shifted so its shortest is 0, so "shortest" is the same across clips.
  table = level_ratios(frames, stops, gts, responses.pop(), by=args.by)
  header = " ".join(f"{lo:>5.2f}" for lo in LEVELS[:-1])
  print(f"median reported / GT light per {args.by} LDR level (from):")
  print(f"{'':6}{header}")
  for kind, row in table.items():
    print(f"{kind:6}" + " ".join("    -" if v is None else f"{v:5.3f}" for v in row))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(
        {"by": args.by, "levels": list(LEVELS), **table}, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
