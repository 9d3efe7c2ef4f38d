"""`dealthdr eval`: PSNR-T, PSNR-L, SSIM-T (and flicker) of predicted HDR frames vs ground truth.

    dealthdr eval --pred OUT --gt CLIP [--json metrics.json] [--perceptual [--fps 25]]
    dealthdr eval --pred OUTS --gt CLIPS ...     # a set: OUTS/<name> vs CLIPS/<name>

With a set (`evaluate_set`: `--pred` holds one folder per clip, as a batch `dealthdr infer
--input ... --input ...` writes, and `--gt` the clip folders of the same names) each clip
is scored as below; the set's means are over clips, each clip's mean over its frames.

`--pred` is a folder of `.exr` frames, or a folder holding them in `hdr/` (an `infer`
output). `--gt` is a folder of `.exr` frames, or a clip folder holding them in `gt/`
(DESIGN.md §7). Frames are matched by file stem; both sides must hold the same names and
each pair the same size. Metrics follow `dealthdr_jax.evaluation.metrics` (DESIGN.md §8); means are
over frames, flicker is over consecutive pairs in name order.

JSON (`--json`, written atomically):
  {"mean": {"psnr_t", "psnr_l", "ssim_t", "dark_chroma", "psnr_t_rec", "flicker"},
   "frames": {"<stem>": {the same, "flicker"?}}, "num_frames", "pred_dir", "gt_dir",
   "protocol"}
"psnr_t_rec" is PSNR-T on the pixels that some exposure of the clip recorded
(`metrics.psnr_t_recoverable`; only when `--gt` is a clip folder or its gt/, else null).
A frame's "flicker" is its error against the previous frame (absent for the first);
"mean.flicker" is null for a single frame. PSNRs are capped at 100 dB (identical images).
With `--perceptual` (the optional `perceptual` extra), "perceptual" holds the clip's
ColorVideoVDP JOD with the display model and absolute scaling it used
(`evaluation.perceptual`).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from data_pipeline import clips as clips_lib
from data_pipeline import hdr_io
from data_pipeline import tone_calibration
from dealthdr_jax.evaluation import headroom
from dealthdr_jax.evaluation import metrics

PathLike = str | pathlib.Path
_MAX_LISTED = 10


def _exr_files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
  return {p.stem: p for p in sorted(folder.iterdir())
          if p.is_file() and p.suffix.lower() == ".exr" and not p.name.startswith(".")}


def resolve_folder(path: PathLike, subfolder: str, role: str) -> pathlib.Path:
  """The folder of `.exr` frames: `path` itself if it holds any, else `path/subfolder`.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: neither `path` nor `path/subfolder` holds `.exr` files.
  """
  path = pathlib.Path(path)
  if not path.is_dir():
    raise FileNotFoundError(f"{role} folder {path} does not exist or is not a folder")
  if _exr_files(path):
    return path
  sub = path / subfolder
  if sub.is_dir() and _exr_files(sub):
    return sub
  raise ValueError(f"{role} folder {path} holds no .exr files (nor does {sub})")


def _names(names: list[str]) -> str:
  shown = ", ".join(names[:_MAX_LISTED])
  return shown + (f", … ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def match_frames(pred_dir: pathlib.Path,
                 gt_dir: pathlib.Path) -> list[tuple[str, pathlib.Path, pathlib.Path]]:
  """(stem, pred file, gt file) for every frame, in name order.

  Raises:
    ValueError: the two folders do not hold the same stems (lists the missing and extra ones).
  """
  pred, gt = _exr_files(pred_dir), _exr_files(gt_dir)
  _check_paired(set(pred), set(gt),
                f"predicted frames in {pred_dir} do not match ground truth in {gt_dir}:",
                "missing predictions", "predictions without ground truth")
  return [(stem, pred[stem], gt[stem]) for stem in sorted(gt)]


def _check_paired(pred: set[str], gt: set[str], header: str, missing_what: str,
                  extra_what: str) -> None:
  """Raises ValueError listing the names on one side only (`header` first)."""
  missing, extra = sorted(gt - pred), sorted(pred - gt)
  if missing or extra:
    lines = [header]
    if missing:
      lines.append(f"  {missing_what} ({len(missing)}): {_names(missing)}")
    if extra:
      lines.append(f"  {extra_what} ({len(extra)}): {_names(extra)}")
    raise ValueError("\n".join(lines))


def unrecoverable_masks(clip_dir: PathLike) -> dict[str, np.ndarray] | None:
  """Per frame of a clip folder (§7), the pixels that no exposure of it recorded.

  A pixel of frame t is unrecoverable when it is clipped (a channel at or above
  `tone_calibration.CLIPPED`, as stored) in every frame of the clip's shortest exposure
  that is nearest to t in time (t itself if it is one; with two exposures, both
  neighbours), at the same position (`metrics.psnr_t_recoverable`).

  Returns:
    {frame stem: [H, W] bool}, or None where `clip_dir` is not a readable clip folder.
  """
  try:
    # Clipping is judged on the stored code values: the clip's response does not enter (a
    # curve the readers do not know, e.g. the other-camera set's, must not hide the mask).
    clip = clips_lib.open_clip(clip_dir, response="linear", tone_calibration="off")
  except (FileNotFoundError, ValueError):
    return None
  clipped = {}
  masks = {}
  for t, name in enumerate(clip.names):
    nearest = headroom.nearest_shortest(clip.stops, t)
    for i in nearest:
      if i not in clipped:
        clipped[i] = headroom.clipped(clip.frame(int(i)))
    masks[name] = np.logical_and.reduce([clipped[i] for i in nearest])
  clip.close()
  return masks


def evaluate_folders(pred_dir: PathLike, gt_dir: PathLike, *, perceptual: bool = False,
                     fps: float = 25.0) -> dict:
  """Per-frame and mean metrics of the predicted frames in `pred_dir` vs `gt_dir`.

  Args:
    pred_dir: folder of `.exr` frames, or a folder with them in `hdr/`.
    gt_dir: folder of `.exr` frames, or a clip folder with them in `gt/`.
    perceptual: also the ColorVideoVDP JOD of the clip (needs the `perceptual` extra).
    fps: the clip's frame rate (for the perceptual metric).
  Returns:
    The JSON-ready dict described in the module docstring.
  Raises:
    FileNotFoundError, ValueError: missing folders, mismatched names or sizes, bad files.
  """
  pred_dir = resolve_folder(pred_dir, "hdr", "prediction")
  gt_dir = resolve_folder(gt_dir, "gt", "ground-truth")
  frames: dict[str, dict[str, float]] = {}
  previous = None
  pairs = match_frames(pred_dir, gt_dir)
  unrecoverable = unrecoverable_masks(gt_dir.parent) if gt_dir.name == "gt" else None
  for stem, pred_path, gt_path in pairs:
    pred, gt = hdr_io.read_hdr(pred_path), hdr_io.read_hdr(gt_path)
    if pred.shape != gt.shape:
      raise ValueError(f"size mismatch for frame {stem!r}: {pred_path} is "
                       f"{pred.shape[1]}x{pred.shape[0]} (WxH) but {gt_path} is "
                       f"{gt.shape[1]}x{gt.shape[0]}")
    row = metrics.frame_metrics(pred, gt)
    mask = (unrecoverable or {}).get(stem)
    row["psnr_t_rec"] = (None if mask is None or mask.shape != gt.shape[:2]
                         else metrics.psnr_t_recoverable(pred, gt, ~mask))
    current = metrics.tonemapped_normalised(pred, gt)
    if previous is not None:
      if previous[0].shape != current[0].shape:
        raise ValueError(f"frame {stem!r} ({gt.shape[1]}x{gt.shape[0]}) differs in size from "
                         f"the previous frame ({previous[0].shape[1]}x{previous[0].shape[0]})")
      row["flicker"] = metrics.flicker_pair(previous, current)
    previous = current
    frames[stem] = row
  mean = {k: float(np.mean([r[k] for r in frames.values()])) for k in metrics.METRIC_NAMES}
  recoverable = [r["psnr_t_rec"] for r in frames.values() if r["psnr_t_rec"] is not None]
  mean["psnr_t_rec"] = float(np.mean(recoverable)) if recoverable else None
  flick = [r["flicker"] for r in frames.values() if "flicker" in r]
  mean["flicker"] = float(np.mean(flick)) if flick else None
  result = {
      "mean": mean,
      "frames": frames,
      "num_frames": len(frames),
      "pred_dir": str(pred_dir),
      "gt_dir": str(gt_dir),
      "protocol": {
          "normalisation": "pred and gt / max(gt) per frame, clipped to [0, 1]",
          "tone_map": f"mu-law, mu={metrics.MU:g}",
          "psnr_cap_db": metrics.PSNR_CAP_DB,
          "ssim": (f"gaussian {metrics.SSIM_WINDOW}x{metrics.SSIM_WINDOW}, "
                   f"sigma {metrics.SSIM_SIGMA}, K1 {metrics.SSIM_K1}, K2 {metrics.SSIM_K2}, "
                   "valid windows, per channel, averaged"),
          "flicker": "mean |dT(pred) - dT(gt)| over consecutive frames (name order)",
          "dark_chroma": (f"mean rg-chromaticity distance over the darkest "
                          f"{metrics.DARK_FRACTION:.0%} of GT pixels by luminance"),
          "psnr_t_rec": ("PSNR-T over the pixels not clipped (>= "
                         f"{tone_calibration.CLIPPED}) in every nearest frame of the clip's "
                         "shortest exposure; null without the clip's LDR frames"),
      },
  }
  if perceptual:
    from dealthdr_jax.evaluation import perceptual as perceptual_lib  # pylint: disable=g-import-not-at-top
    result["perceptual"] = perceptual_lib.color_video_vdp(
        [p for _, p, _ in pairs], [g for _, _, g in pairs], fps=fps)
    result["mean"]["jod"] = result["perceptual"]["jod"]
  return result


def is_set(pred: PathLike) -> bool:
  """Whether `pred` is a set of per-clip outputs: no frames of its own, in it or in `hdr/`,
  but subfolders."""
  path = pathlib.Path(pred)
  if not path.is_dir() or _exr_files(path) or (path / "hdr").is_dir():
    return False
  return any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


def evaluate_set(pred_root: PathLike, gt_root: PathLike, *, perceptual: bool = False,
                 fps: float = 25.0) -> dict:
  """`evaluate_folders` on every clip of a set, paired by folder name.

  Args:
    pred_root: one folder per clip (an `infer` output or a folder of `.exr` frames).
    gt_root: the clip folders (or folders of GT `.exr` frames), under the same names.
  Returns:
    {"mean": means over clips of each clip's means (keys as `evaluate_folders`; a
     metric some clip lacks is averaged over the others, null if all do), "clips":
     {name: evaluate_folders' result}, "num_clips", "num_frames", "pred_dir", "gt_dir"}.
  Raises:
    FileNotFoundError, ValueError: missing folders, clips on one side only (listed), or any
      clip's own error (named).
  """
  pred_root, gt_root = pathlib.Path(pred_root), pathlib.Path(gt_root)
  for path, role in ((pred_root, "prediction"), (gt_root, "ground-truth")):
    if not path.is_dir():
      raise FileNotFoundError(f"{role} folder {path} does not exist or is not a folder")
  subfolders = lambda root: {p.name for p in root.iterdir()
                             if p.is_dir() and not p.name.startswith(".")}
  pred, gt = subfolders(pred_root), subfolders(gt_root)
  _check_paired(pred, gt, f"the clips predicted in {pred_root} do not match those in "
                f"{gt_root}:", "clips without predictions", "predictions without a clip")
  results = {}
  for name in sorted(gt):
    try:
      results[name] = evaluate_folders(pred_root / name, gt_root / name,
                                       perceptual=perceptual, fps=fps)
    except (FileNotFoundError, ValueError) as e:
      raise type(e)(f"clip {name}: {e}") from None
  mean = {}
  for key in results[next(iter(results))]["mean"]:
    values = [r["mean"].get(key) for r in results.values()]
    values = [v for v in values if v is not None]
    mean[key] = float(np.mean(values)) if values else None
  return {"mean": mean, "clips": results, "num_clips": len(results),
          "num_frames": sum(r["num_frames"] for r in results.values()),
          "pred_dir": str(pred_root), "gt_dir": str(gt_root)}


def format_set_table(result: dict) -> str:
  """The per-clip and mean table printed by `dealthdr eval` on a set."""
  rows = {name: {**r["mean"], "frames": r["num_frames"]} for name, r in result["clips"].items()}
  return format_table({"frames": rows, "mean": result["mean"]}, first_column="clip")


def format_table(result: dict, first_column: str = "frame") -> str:
  """The per-frame and mean table printed by `dealthdr eval`."""
  def fmt(v, digits):
    return "-" if v is None else f"{v:.{digits}f}"

  width = max([len("mean"), len(first_column)] + [len(n) for n in result["frames"]])
  header = (f"{first_column:<{width}}  {'PSNR-T':>7}  {'PSNR-L':>7}  {'SSIM-T':>7}  {'flicker':>8}"
            f"  {'dark chroma':>11}  {'PSNR-T rec.':>11}")
  lines = [header, "-" * len(header)]
  rows = list(result["frames"].items()) + [("mean", result["mean"])]
  for i, (name, r) in enumerate(rows):
    if i == len(rows) - 1:
      lines.append("-" * len(header))
    lines.append(f"{name:<{width}}  {fmt(r['psnr_t'], 2):>7}  {fmt(r['psnr_l'], 2):>7}  "
                 f"{fmt(r['ssim_t'], 4):>7}  {fmt(r.get('flicker'), 5):>8}  "
                 f"{fmt(r.get('dark_chroma'), 4):>11}  {fmt(r.get('psnr_t_rec'), 2):>11}")
  return "\n".join(lines)


def write_json(path: PathLike, result: dict) -> None:
  """Writes `result` as indented JSON, atomically."""
  with hdr_io.atomic_path(path) as tmp:
    tmp.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--pred", required=True,
                      help="folder of predicted .exr frames, or an infer output holding hdr/; "
                      "or a folder of such outputs, one per clip (a set)")
  parser.add_argument("--gt", required=True,
                      help="folder of ground-truth .exr frames, or a clip folder holding gt/; "
                      "for a set, the folder of those clips (same names)")
  parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")
  parser.add_argument("--perceptual", action="store_true",
                      help="also ColorVideoVDP (JOD) of the clip; needs pip install -e "
                           "'.[perceptual]'")
  parser.add_argument("--fps", type=float, default=25.0,
                      help="frame rate of the clip, for --perceptual")


def main(args: argparse.Namespace) -> int:
  if args.perceptual:
    from dealthdr_jax.evaluation import perceptual  # pylint: disable=g-import-not-at-top
    if not perceptual.available():
      print(f"dealthdr eval: error: --perceptual: {perceptual.INSTALL_HINT}", file=sys.stderr)
      return 2
  many = is_set(args.pred)
  try:
    result = (evaluate_set if many else evaluate_folders)(
        args.pred, args.gt, perceptual=args.perceptual, fps=args.fps)
  except (FileNotFoundError, ValueError) as e:
    print(f"dealthdr eval: error: {e}", file=sys.stderr)
    return 1
  print(format_set_table(result) if many else format_table(result))
  if many:
    print(f"{result['num_clips']} clips, {result['num_frames']} frames; means over clips")
  if "perceptual" in result:
    p = result["perceptual"]
    print(f"ColorVideoVDP: {p['jod']:.3f} JOD (display {p['display']['name']}, "
          f"{p['display']['peak_nits']:g} cd/m² peak; GT diffuse white at 203 cd/m², "
          f"{p['scaling']['nits_per_unit']:.1f} cd/m² per radiance unit)")
  if args.json:
    write_json(args.json, result)
    print(f"wrote {args.json}")
  return 0
