"""`dealthdr infer`: HDR for every frame of a clip folder or a video file.

Streaming: frames are decoded through a sliding window (the clip reader keeps only the
frames the current window needs), each output is written as soon as it is made, and the
model is compiled once per (frame or tile size, ratio). Outputs (DESIGN.md §7):
`hdr/<frame>.exr`, `preview.mp4`, `run.json`, and with `--hdr-video FILE` a 10-bit HEVC
HDR10 or HLG video (`inference.hdr_video`, encoded from the EXRs once all are written,
checked before inference starts). The whole output folder is built under a
temporary name beside `--output` and renamed into place at the end, so an error (bad input
found late, Ctrl-C) leaves nothing partial behind.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

import numpy as np

from data_pipeline import clips, hdr_io
from dealthdr_jax import model_files
from dealthdr_jax.inference import hdr_video as hdr_video_lib
from dealthdr_jax.inference import predictor as predictor_lib
from dealthdr_jax.inference import preview as preview_lib
from dealthdr_jax.models import dealthdr as dealthdr_lib
from dealthdr_jax.models import self_ensemble as self_ensemble_lib

METHODS = ("dealthdr", "reference_only", "dis_flow")
DTYPES = ("float32", "bfloat16")


def log(message: str) -> None:
  """Progress messages go to stderr, so stdout keeps only results."""
  print(message, file=sys.stderr, flush=True)


def make_predictor(method: str, clip: clips.Clip, *,
                   loaded: model_files.LoadedModel | None = None,
                   checkpoint: str | None = None, config: str | None = None,
                   attn_ratio: float | None = None, tile: int | None = None, overlap: int = 64,
                   dtype: str | None = None, self_ensemble: int = 1,
                   flow_pair: str | None = None, verbose: bool = False):
  """(predictor, window radius, description) of a method for `clip`.

  For "dealthdr", the model is `loaded`, else read from `checkpoint` or built from
  `config`, else the shipped model that fits the clip's exposures; it reads the clip
  through the clip's camera response. `dtype` ("float32" or "bfloat16") overrides the
  model's compute dtype (parameters stay as stored; softmax, top-k and the response curve
  stay float32). `self_ensemble` (1, 2 or 4) averages the model over that many mirrored
  copies of each window (`predictor.Predictor`; N× the compute). `flow_pair` ("off",
  "select" or "all") overrides the model's `flow_pair` (no parameters: long references take
  their flow from pairs of shorter neighbours of one exposure; README, model paragraph).
  `verbose` says when the model compiles.
  """
  if flow_pair is not None and method != "dealthdr":
    raise ValueError(f"--flow-pair applies to the model only, not to the {method} baseline")
  if method == "dealthdr":
    if loaded is None:
      loaded = model_files.load_model(
          checkpoint or (None if config else model_files.default_checkpoint(clip.stops)),
          config)
    loaded = model_files.with_flow_pair(loaded, flow_pair, option="--flow-pair")
    model, params, cfg, description = loaded
    if model.response != clip.response:
      model = model.clone(response=clip.response)
    if dtype is not None:
      if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
      if dtype != model.dtype:
        model = model.clone(dtype=dtype)
        description += f", compute {dtype}"
    ratio = cfg.attn_ratio if attn_ratio is None else attn_ratio
    predictor = predictor_lib.Predictor(model, params, ratio, tile, overlap,
                                        log=log if verbose else None,
                                        self_ensemble=self_ensemble)
    if self_ensemble > 1:
      description += f", self-ensemble of {self_ensemble} mirrored copies"
    return predictor, model.radius, f"{description}, attention ratio {ratio:g}"
  if self_ensemble != 1:
    raise ValueError(f"self-ensemble applies to the model only, not to the {method} baseline")
  from dealthdr_jax.inference import baselines  # pylint: disable=g-import-not-at-top
  radius = 2 if len(set(np.round(clip.stops, 3))) > 2 else 1
  return (predictor_lib.BaselinePredictor(baselines.BASELINES[method], clip.response), radius,
          f"baseline {method}")


def predict_clip(predictor, clip: clips.Clip, radius: int, times: list | None = None
                 ) -> Iterator[tuple[int, np.ndarray]]:
  """Streams (t, HDR [H, W, 3] float32, §3 units) for every frame t of the clip, in order.

  Frames are decoded once each and only a window of them is held, so memory does not
  grow with the clip's length. `times`, if given, receives each prediction's seconds
  (decoding excluded; the first includes compilation).
  """
  for t, frames, stops in clips.iter_windows(clip, radius):
    start = time.perf_counter()
    hdr = predictor.predict(frames, stops, offsets=clips.window_offsets(
        len(clip), t, radius, clip.exposure_cycle))
    if times is not None:
      times.append(time.perf_counter() - start)
    yield t, hdr


def run_inference(input: str, output: str, *, method: str = "dealthdr",
                  checkpoint: str | None = None, config: str | None = None,
                  attn_ratio: float | None = None, tile: int | None = None, overlap: int = 64,
                  exposures: str | None = None, response: str | None = None,
                  overwrite: bool = False, preview: bool = True, progress: bool = True,
                  hdr_video: str | None = None, hdr_format: str = "pq",
                  peak_nits: float = 1000.0, dtype: str | None = None,
                  tone_calibration: str | float = "auto", self_ensemble: int = 1,
                  flow_pair: str | None = None,
                  predictor_for: Callable[[clips.Clip], tuple] | None = None) -> dict:
  """Runs inference on one clip folder or video; returns the run summary (also run.json).

  Model choice as in `make_predictor`, unless `predictor_for(clip)` gives the
  (predictor, radius, description) to use (the Python API passes its compiled ones).
  `progress` prints compilation and frame progress to stderr. `hdr_video` (a .mp4, .mov or
  .mkv path, inside or outside the output folder) adds an HDR video of the result in
  `hdr_format` ("pq" or "hlg") for a display of `peak_nits` (`hdr_video.write_hdr_video`).
  `tone_calibration` ("auto", "off" or a contrast; `clips`) says how the camera's
  undeclared S-curve is undone; run.json records what was measured. `self_ensemble`
  (1, 2 or 4) and `flow_pair` as in `make_predictor`.
  """
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
  if self_ensemble not in self_ensemble_lib.SIZES:
    raise ValueError(f"--self-ensemble must be one of {self_ensemble_lib.SIZES}, got "
                     f"{self_ensemble!r}")
  if self_ensemble != 1 and method != "dealthdr":
    raise ValueError(f"--self-ensemble applies to the model only, not to the {method} baseline")
  out = pathlib.Path(output)
  if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
    raise FileExistsError(f"output folder {out} exists and is not empty (use --overwrite)")
  if (hdr_video is not None and pathlib.Path(hdr_video).exists() and not overwrite
      and not pathlib.Path(hdr_video).resolve().is_relative_to(out.resolve())):
    raise FileExistsError(f"HDR video {hdr_video} exists (use --overwrite)")
  if hdr_format not in hdr_video_lib.FORMATS:
    raise ValueError(f"unknown HDR format {hdr_format!r}; expected one of "
                     f"{hdr_video_lib.FORMATS}")
  # Opening checks the whole clip (exposures, sizes, bit depths) before anything is written.
  clip = clips.open_clip(input, exposures, response, tone_calibration)
  try:
    if hdr_video is not None:
      # Everything the video needs is checked before the model runs.
      hdr_video_lib.check_output(hdr_video, clip.size)
      if not 100 <= peak_nits <= hdr_video_lib.PQ_MAX_NITS:
        raise ValueError(f"--peak-nits must be in [100, 10000] cd/m², got {peak_nits}")
    if predictor_for is not None:
      pred, radius, description = predictor_for(clip)
    else:
      pred, radius, description = make_predictor(
          method, clip, checkpoint=checkpoint, config=config,
          attn_ratio=attn_ratio, tile=tile, overlap=overlap, dtype=dtype,
          self_ensemble=self_ensemble, flow_pair=flow_pair, verbose=progress)
    video = None if hdr_video is None else {"path": hdr_video, "hdr_format": hdr_format,
                                            "peak_nits": peak_nits}
    return _write_outputs(pred, radius, description, clip, input, out, method=method,
                          tile=tile, preview=preview, progress=progress, video=video)
  finally:
    clip.close()


def _write_outputs(pred, radius: int, description: str, clip: clips.Clip, input: str,
                   out: pathlib.Path, *, method: str, tile: int | None, preview: bool,
                   progress: bool, video: dict | None = None) -> dict:
  """Builds the output folder under a temporary name, then renames it into place.

  `video` (path, hdr_format, peak_nits) is encoded from the written EXRs; a path inside
  `out` is written inside the temporary folder, so it appears with the rest.
  """
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
  writer = None
  try:
    (tmp / "hdr").mkdir()
    clip_fps = getattr(clip, "fps", None) or 25.0
    if preview:
      writer = preview_lib.PreviewWriter(tmp / "preview.mp4", fps=clip_fps)
    n = len(clip)
    exr_paths = []
    times = []
    start = time.perf_counter()
    compiled_before = pred.compile_seconds  # A reused predictor may have compiled already.
    for t, hdr in predict_clip(pred, clip, radius, times):
      exr_paths.append(tmp / "hdr" / f"{pathlib.Path(clip.names[t]).stem}.exr")
      hdr_io.write_exr(exr_paths[-1], hdr)
      if writer is not None:
        writer.add(hdr)
      if progress:
        compiling = pred.compile_seconds - compiled_before
        fps = len(times) / (time.perf_counter() - start - compiling + 1e-9)
        print(f"\rinfer: frame {len(times)}/{n}  {fps:.2f} frames/s", end="",
              file=sys.stderr, flush=True)
    if progress:
      print(file=sys.stderr)
    if writer is not None:
      writer.close()
      writer = None
    video_summary = None
    if video is not None:
      video_path = pathlib.Path(video["path"])
      if video_path.resolve().is_relative_to(out.resolve()):
        video_path = tmp / video_path.resolve().relative_to(out.resolve())
      if progress:
        log(f"infer: encoding the HDR video ({video['hdr_format']}, "
            f"{video['peak_nits']:g} cd/m² peak)")
      video_summary = hdr_video_lib.write_hdr_video(
          video_path, exr_paths, fps=clip_fps, hdr_format=video["hdr_format"],
          peak_nits=video["peak_nits"])
      video_summary["path"] = str(video["path"])
    # The first frame's time includes compilation; steady state is the rest.
    steady = times[1:] if len(times) > 1 else times
    summary = {
        "input": str(input), "output": str(out), "method": method, "model": description,
        "frames": n, "size": list(clip.size), "radius": radius, "tile": tile,
        "self_ensemble": getattr(pred, "self_ensemble", 1),
        "response": clip.response, "stops": [float(s) for s in clip.stops],
        "tone_calibration": clip.tone_fit.to_json(),
        "compile_s": pred.compile_seconds - compiled_before,
        "programs_compiled": pred.num_programs,
        "ms_per_frame_mean": 1000 * float(np.mean(steady)),
        "wall_s": time.perf_counter() - start,
    }
    if video_summary is not None:
      summary["hdr_video"] = video_summary
    (tmp / "run.json").write_text(json.dumps(summary, indent=1))
    if out.exists():
      shutil.rmtree(out)
    os.replace(tmp, out)
    return summary
  except BaseException:
    if writer is not None:
      writer.abort()
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--input", required=True, help="clip folder or video file")
  parser.add_argument("--output", required=True, help="output folder (must not exist or be empty)")
  parser.add_argument("--checkpoint", help="params-only checkpoint or training workdir "
                      "(default: the shipped model)")
  parser.add_argument("--config", help="run freshly initialised weights of this config instead")
  parser.add_argument("--method", choices=METHODS, default="dealthdr")
  parser.add_argument("--attn-ratio", type=float, help="FGMA attention ratio (default: config's)")
  parser.add_argument("--dtype", choices=DTYPES,
                      help="compute dtype (default: the model's; bfloat16 for accelerators)")
  parser.add_argument("--tile", type=int, help="tile side in pixels for frames too large for memory")
  parser.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
  parser.add_argument("--self-ensemble", type=int, default=1, choices=(1, 2, 4),
                      help="average the model over this many mirrored copies of each window "
                      "(2: + left-right, 4: + upside down and both); N× the compute, "
                      "better PSNR-T (README, 'Self-ensemble')")
  parser.add_argument("--flow-pair", choices=dealthdr_lib.FLOW_PAIR_MODES,
                      help="long references take their flow from pairs of shorter "
                      "neighbours of one exposure (two-exposure clips: their two short "
                      "neighbours): per region where better (select), everywhere (all) or "
                      "never (off); default: the model's (off in the shipped ones)")
  parser.add_argument("--exposures", help="for videos: exposure file or repeating pattern like 0,3")
  parser.add_argument("--response", choices=("gamma2.2", "srgb", "linear"),
                      help="camera response (default: the clip's meta.json, else gamma2.2)")
  parser.add_argument("--tone-calibration", default="auto", metavar="auto|off|CONTRAST",
                      help="undo the camera's undeclared contrast S-curve: measured from the "
                      "exposures (auto, the default), not at all (off), or this contrast")
  parser.add_argument("--overwrite", action="store_true")
  parser.add_argument("--no-preview", action="store_true")
  parser.add_argument("--hdr-video", metavar="FILE.mp4",
                      help="also write the result as a 10-bit HEVC HDR video (.mp4/.mov/.mkv)")
  parser.add_argument("--hdr-format", choices=hdr_video_lib.FORMATS, default="pq",
                      help="HDR video transfer: pq (HDR10, with static metadata) or hlg")
  parser.add_argument("--peak-nits", type=float, default=1000.0,
                      help="display peak of the HDR video in cd/m² (highlights roll off to it)")


def main(args: argparse.Namespace) -> int:
  summary = run_inference(args.input, args.output, method=args.method,
                          checkpoint=args.checkpoint, config=args.config,
                          attn_ratio=args.attn_ratio, tile=args.tile, overlap=args.overlap,
                          exposures=args.exposures, response=args.response,
                          overwrite=args.overwrite, preview=not args.no_preview,
                          hdr_video=args.hdr_video, hdr_format=args.hdr_format,
                          peak_nits=args.peak_nits, dtype=args.dtype,
                          tone_calibration=args.tone_calibration,
                          self_ensemble=args.self_ensemble, flow_pair=args.flow_pair)
  fit = summary["tone_calibration"]
  if fit["contrast"] != 1.0:
    print(f"tone calibration: undid a contrast S-curve of {fit['contrast']:g} ("
          f"{fit.get('reason') or 'measured from the exposures'})")
  print(f"wrote {summary['frames']} HDR frames, preview.mp4 and run.json to {args.output} "
        f"({summary['ms_per_frame_mean']:.0f} ms/frame, compile {summary['compile_s']:.1f} s)")
  if "hdr_video" in summary:
    v = summary["hdr_video"]
    print(f"wrote {v['path']}: {v['format'].upper()} HEVC Main10, {v['kbit_per_s']:.0f} kbit/s"
          + (f", MaxCLL {v['max_cll']} / MaxFALL {v['max_fall']} cd/m²"
             if v["max_cll"] is not None else ""))
  return 0
