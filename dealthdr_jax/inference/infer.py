"""`dealthdr infer`: HDR for every frame of a clip folder or a video file.

Streaming: frames are decoded through a sliding window (the clip reader keeps only the
frames the current window needs), each output is written as soon as it is made, and the
model is compiled once per (frame or tile size, ratio). Outputs (DESIGN.md §7):
`hdr/<frame>.exr`, `preview.mp4`, `run.json`, and with `--hdr-video FILE` a 10-bit HEVC
HDR10 or HLG video (`inference.hdr_video`, encoded from the EXRs once all are written,
checked before inference starts). The whole output folder is built in a hidden folder
beside `--output` (`.NAME.partial`, `partial_folder`) and renamed into place at the end, so
`--output` never holds a partial result. If a run is stopped (Ctrl-C, a kill, a crash, bad
input found late), the frames it finished stay there: `--resume` continues from the first
missing frame, after checking that the input, the model and every setting that shapes the
output are the ones the stopped run used (`run_identity`); the resumed EXRs and preview are
those of an uninterrupted run. Several inputs (`run_batch`) go each into a folder of its own
under `--output`, sharing one model and its compiled programs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence

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
IDENTITY_FILE = "identity.json"  # In the partial folder: what the run's frames depend on.
LOCK_FILE = "lock"               # In the partial folder: the host and pid writing it.


class ResumeError(ValueError):
  """A partial run that cannot be continued as asked (other input, model or settings)."""


def partial_folder(output: str | os.PathLike) -> pathlib.Path:
  """Where `run_inference` builds `output` until it is complete: `.NAME.partial` beside it."""
  out = pathlib.Path(output)
  return out.parent / f".{out.name}.partial"


def frame_range(spec: str | Sequence[int] | None, n_frames: int) -> tuple[int, int]:
  """The frames [start, stop) a run writes: `spec` "START:STOP" (either may be left out, as
  in a Python slice, without negatives) or a (start, stop) pair; None: all."""
  if spec is None:
    return 0, n_frames
  if isinstance(spec, str):
    parts = spec.split(":")
    try:
      if len(parts) != 2:
        raise ValueError
      start = int(parts[0]) if parts[0].strip() else 0
      stop = int(parts[1]) if parts[1].strip() else n_frames
    except ValueError:
      raise ValueError(f"--frames {spec}: expected START:STOP, e.g. 0:50 or 100:") from None
  else:
    start, stop = (int(v) for v in spec)
  if not 0 <= start < stop <= n_frames:
    raise ValueError(f"--frames {spec if isinstance(spec, str) else f'{start}:{stop}'}: "
                     f"expected 0 ≤ START < STOP ≤ {n_frames}, the clip's frame count")
  return start, stop


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


def predict_clip(predictor, clip: clips.Clip, radius: int, times: list | None = None,
                 start: int = 0, stop: int | None = None
                 ) -> Iterator[tuple[int, np.ndarray]]:
  """Streams (t, HDR [H, W, 3] float32, §3 units) for every frame `start` ≤ t < `stop`
  (default: the clip's end), in order.

  Frames are decoded once each and only a window of them is held, so memory does not
  grow with the clip's length. `times`, if given, receives each prediction's seconds
  (decoding excluded; the first includes compilation). Each frame's HDR depends only on
  its window, so starting later gives the same frames as a full run.
  """
  for t, frames, stops in clips.iter_windows(clip, radius, start=start, stop=stop):
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
                  flow_pair: str | None = None, resume: bool = False,
                  frames: str | Sequence[int] | None = None,
                  predictors: dict | None = None,
                  predictor_for: Callable[[clips.Clip], tuple] | None = None) -> dict:
  """Runs inference on one clip folder or video; returns the run summary (also run.json).

  Model choice as in `make_predictor`, unless `predictor_for(clip)` gives the
  (predictor, radius, description) to use (the Python API passes its compiled ones).
  `predictors`, a dict kept by the caller, holds the ones made here for reuse by later
  calls with the same settings (keyed by model file, response and number of exposure
  levels only; `run_batch`).
  `progress` prints compilation and frame progress to stderr. `hdr_video` (a .mp4, .mov or
  .mkv path, inside or outside the output folder) adds an HDR video of the result in
  `hdr_format` ("pq" or "hlg") for a display of `peak_nits` (`hdr_video.write_hdr_video`).
  `tone_calibration` ("auto", "off" or a contrast; `clips`) says how the camera's
  undeclared S-curve is undone; run.json records what was measured. `self_ensemble`
  (1, 2 or 4) and `flow_pair` as in `make_predictor`. `resume` continues a stopped run
  into the same `output` from its partial folder (module doc), and returns a finished one
  made with the same input and settings as it is (its summary, with "already_complete");
  without it, a partial folder there is an error unless `overwrite` (which starts over).
  `frames` ("START:STOP" or a pair, `frame_range`) writes only those frames (their windows
  still read the frames around them).
  """
  if method not in METHODS:
    raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
  if self_ensemble not in self_ensemble_lib.SIZES:
    raise ValueError(f"--self-ensemble must be one of {self_ensemble_lib.SIZES}, got "
                     f"{self_ensemble!r}")
  if self_ensemble != 1 and method != "dealthdr":
    raise ValueError(f"--self-ensemble applies to the model only, not to the {method} baseline")
  out = pathlib.Path(output)
  complete = check_output(out, resume=resume, overwrite=overwrite, hdr_video=hdr_video)
  if hdr_format not in hdr_video_lib.FORMATS:
    raise ValueError(f"unknown HDR format {hdr_format!r}; expected one of "
                     f"{hdr_video_lib.FORMATS}")
  # Opening checks the whole clip (exposures, sizes, bit depths) before anything is written.
  clip = clips.open_clip(input, exposures, response, tone_calibration)
  try:
    segment = frame_range(frames, len(clip))
    if hdr_video is not None:
      # Everything the video needs is checked before the model runs.
      hdr_video_lib.check_output(hdr_video, clip.size)
      if not 100 <= peak_nits <= hdr_video_lib.PQ_MAX_NITS:
        raise ValueError(f"--peak-nits must be in [100, 10000] cd/m², got {peak_nits}")
    if predictor_for is not None:
      pred, radius, description = predictor_for(clip)
    else:
      # The model a clip gets depends on its exposures (the shipped default) and response.
      if method == "dealthdr" and not (checkpoint or config):
        checkpoint = model_files.default_checkpoint(clip.stops)
      key = (checkpoint, clip.response, len(set(np.round(clip.stops, 3))))
      if predictors is None or key not in predictors:
        made = make_predictor(
            method, clip, checkpoint=checkpoint, config=config,
            attn_ratio=attn_ratio, tile=tile, overlap=overlap, dtype=dtype,
            self_ensemble=self_ensemble, flow_pair=flow_pair, verbose=progress)
        if predictors is None:
          predictors = {}
        predictors[key] = made
      pred, radius, description = predictors[key]
    video = None if hdr_video is None else {"path": hdr_video, "hdr_format": hdr_format,
                                            "peak_nits": peak_nits}
    if complete:
      # Nothing to compute if it was made with this input and these settings.
      summary = json.loads((out / "run.json").read_text())
      _check_same_run(summary.get("identity"),
                      run_identity(pred, description, clip, input, method, radius, tile,
                                   video, segment), f"the finished output {out}")
      if progress:
        log(f"infer: {out} is already complete")
      return {**summary, "already_complete": True}
    return _write_outputs(pred, radius, description, clip, input, out, method=method,
                          tile=tile, preview=preview, progress=progress, video=video,
                          resume=resume, segment=segment)
  finally:
    clip.close()


def check_output(out: pathlib.Path, *, resume: bool, overwrite: bool,
                 hdr_video: str | None = None) -> bool:
  """Refuses an output folder a run may not write (before anything is computed); returns
  whether it is a finished one that `resume` would only check."""
  partial = partial_folder(out)
  complete = resume and (out / "run.json").is_file() and not partial.exists()
  if (out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite
      and not complete):
    raise FileExistsError(f"output folder {out} exists and is not empty (use --overwrite)")
  if partial.exists() and not (resume or overwrite):
    raise FileExistsError(
        f"a stopped run into {out} left {_frames_in(partial)} HDR frames in {partial}: "
        "--resume continues it, --overwrite starts over")
  if (hdr_video is not None and pathlib.Path(hdr_video).exists() and not overwrite
      and not complete
      and not pathlib.Path(hdr_video).resolve().is_relative_to(out.resolve())):
    raise FileExistsError(f"HDR video {hdr_video} exists (use --overwrite)")
  return complete


def output_names(inputs: Sequence[str]) -> list[str]:
  """Each input's output folder name in a batch: a clip folder's name, a video's stem."""
  names = []
  for item in inputs:
    path = pathlib.Path(item).resolve()
    names.append(path.stem if path.is_file() else path.name)
  seen = {}
  for item, name in zip(inputs, names):
    if name in seen:
      raise ValueError(f"inputs {seen[name]} and {item} would both write {name}/: give "
                       "inputs with different names")
    seen[name] = item
  return names


def run_batch(inputs: Sequence[str], output: str, *, hdr_video: str | None = None,
              exposures: str | None = None, response: str | None = None,
              tone_calibration: str | float = "auto", overwrite: bool = False,
              resume: bool = False, progress: bool = True, **kwargs) -> list[dict]:
  """`run_inference` on several clip folders or videos, each into `output`/<its name>
  (`output_names`), with one model and its compiled programs shared by all of them.

  Every input and output is checked before the first frame is computed (a bad clip, an
  output that exists: nothing is written). `exposures` applies to the inputs that have no
  exposures file of their own (videos); clip folders keep theirs. `hdr_video`, if given,
  is a file name written inside each clip's folder. With `resume`, finished clips are
  checked and skipped and a stopped one continues; so a stopped batch reruns with `resume`
  to finish. Other keyword arguments as `run_inference` (model, method, tiling, preview).
  """
  if not inputs:
    raise ValueError("no input given")
  if hdr_video is not None and pathlib.Path(hdr_video).name != hdr_video:
    raise ValueError(f"--hdr-video with several inputs is a file name written inside each "
                     f"clip's output folder, got the path {hdr_video!r}")
  root = pathlib.Path(output)
  names = output_names(inputs)
  outs = [root / name for name in names]
  # `exposures` is for the inputs without their own (videos, folders without the file).
  own = [pathlib.Path(item).is_dir() and any((pathlib.Path(item) / name).is_file()
                                             for name in clips.EXPOSURE_FILES)
         for item in inputs]
  for item, out, has_own in zip(inputs, outs, own):
    check_output(out, resume=resume, overwrite=overwrite)
    with clips.open_clip(item, None if has_own else exposures, response,
                         tone_calibration) as clip:
      frame_range(kwargs.get("frames"), len(clip))
  predictors = {}                                   # Shared by the inputs.
  summaries = []
  for k, (item, out, has_own) in enumerate(zip(inputs, outs, own)):
    if progress:
      log(f"infer: input {k + 1}/{len(inputs)}: {item} -> {out}")
    summaries.append(run_inference(
        item, str(out), exposures=None if has_own else exposures, response=response,
        tone_calibration=tone_calibration, overwrite=overwrite, resume=resume,
        progress=progress, hdr_video=None if hdr_video is None else str(out / hdr_video),
        predictors=predictors, **kwargs))
  return summaries


def run_identity(predictor, description: str, clip: clips.Clip, input: str, method: str,
                 radius: int, tile: int | None, video: dict | None,
                 segment: tuple[int, int]) -> dict:
  """What a run's outputs depend on, as JSON: a stopped run resumes only if this is equal.

  The input by path and by what its frame files (or video file) are (name, size, mtime),
  the exposures, response and tone calibration read from it, the method and model (its
  description, and a SHA-256 of its parameters), the window, tiling, self-ensemble, the
  frames written (`segment`, [start, stop)) and the HDR video settings.
  """
  stats = hashlib.sha256()
  for f in clip.files:
    st = os.stat(f)
    stats.update(f"{pathlib.Path(f).name}:{st.st_size}:{st.st_mtime_ns};".encode())
  params = getattr(predictor, "params", None)
  params_sha = None
  if params is not None:
    import jax  # pylint: disable=g-import-not-at-top
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(params):
      digest.update(np.asarray(leaf).tobytes())
    params_sha = digest.hexdigest()
  identity = {
      "input": str(pathlib.Path(input).resolve()), "input_files": stats.hexdigest(),
      "frames": len(clip), "size": list(clip.size), "stops": [float(v) for v in clip.stops],
      "response": clip.response, "tone_calibration": clip.tone_fit.to_json(),
      "method": method, "model": description, "params_sha256": params_sha,
      "radius": radius, "tile": tile, "overlap": getattr(predictor, "overlap", None),
      "self_ensemble": getattr(predictor, "self_ensemble", 1), "hdr_video": video,
      "frame_range": list(segment)}
  return json.loads(json.dumps(identity))  # As it reads back from the partial folder.


def _check_same_run(before: dict | None, identity: dict, what: str) -> None:
  """Raises `ResumeError` naming what differs between a run's identity and this one's."""
  if before is None:
    raise ResumeError(f"{what} has no record of its settings (written before --resume "
                      "existed); --overwrite makes it again")
  differ = sorted(k for k in set(before) | set(identity) if before.get(k) != identity.get(k))
  if differ:
    detail = "; ".join(f"{k}: was {before.get(k)!r}, now {identity.get(k)!r}"
                       for k in differ[:4])
    raise ResumeError(f"{what} differs in {', '.join(differ)} ({detail}); rerun with the "
                      "same input and settings, or --overwrite to start over")


def _frames_in(partial: pathlib.Path) -> int:
  """How many finished HDR frames a partial folder holds (temporary files excluded)."""
  hdr = partial / "hdr"
  return sum(1 for p in hdr.glob("*.exr") if not p.name.startswith(".")) if hdr.is_dir() else 0


def _check_lock(partial: pathlib.Path) -> None:
  """Refuses a partial folder that another live process on this host is writing (the mark
  of a killed run is stale and ignored)."""
  try:
    holder = json.loads((partial / LOCK_FILE).read_text())
    pid = int(holder["pid"])
  except (FileNotFoundError, ValueError, KeyError, TypeError):
    return
  if holder.get("host") != socket.gethostname() or pid == os.getpid():
    return
  try:
    os.kill(pid, 0)
  except OSError:
    return                                          # No such process: a stale mark.
  raise FileExistsError(f"{partial} is being written by another process (pid {pid}); "
                        "wait for it or stop it first")


def _take_lock(partial: pathlib.Path) -> None:
  """Marks the partial folder as being written by this process."""
  _check_lock(partial)
  with hdr_io.atomic_path(partial / LOCK_FILE) as tmp:
    tmp.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))


def _open_partial(partial: pathlib.Path, identity: dict, names: list[str], resume: bool,
                  progress: bool) -> int:
  """Prepares the partial folder; returns the first frame to compute.

  A fresh run (or `resume` with nothing to resume) starts an empty folder at frame 0; a
  resumed one keeps the finished frames 0..k-1 in order (an EXR is written atomically, so
  one that exists is whole) and drops anything after the first missing one.
  """
  if partial.exists() and not resume:
    _check_lock(partial)
    shutil.rmtree(partial)                          # --overwrite: start over.
  if partial.exists():
    try:
      before = json.loads((partial / IDENTITY_FILE).read_text())
    except (FileNotFoundError, ValueError) as e:
      raise ResumeError(f"{partial} has no readable {IDENTITY_FILE} ({e}); it cannot be "
                        "resumed: --overwrite starts over") from None
    _check_same_run(before, identity, f"cannot resume {partial}: the stopped run")
    _take_lock(partial)
    done = 0
    while done < len(names) and (partial / "hdr" / f"{names[done]}.exr").is_file():
      done += 1
    # Everything else is rebuilt: later frames, the preview, temporary files of the stop.
    keep = {f"{n}.exr" for n in names[:done]}
    for f in (partial / "hdr").iterdir():
      if f.name not in keep:
        f.unlink()
    for f in partial.iterdir():
      if f.name not in ("hdr", IDENTITY_FILE, LOCK_FILE):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    if progress:
      log(f"infer: resuming {partial}: {done} of {len(names)} frames already written")
    return done
  (partial / "hdr").mkdir(parents=True)
  _take_lock(partial)
  with hdr_io.atomic_path(partial / IDENTITY_FILE) as tmp:
    tmp.write_text(json.dumps(identity, indent=1))
  return 0


def _write_outputs(pred, radius: int, description: str, clip: clips.Clip, input: str,
                   out: pathlib.Path, *, method: str, tile: int | None, preview: bool,
                   progress: bool, video: dict | None = None, resume: bool = False,
                   segment: tuple[int, int] | None = None) -> dict:
  """Builds the output folder in `partial_folder(out)`, then renames it into place.

  `video` (path, hdr_format, peak_nits) is encoded from the written EXRs; a path inside
  `out` is written inside the partial folder, so it appears with the rest. If this stops
  early the finished frames stay in the partial folder for `resume` (module doc). Only
  the frames of `segment` ([start, stop), default all) are written.
  """
  out.parent.mkdir(parents=True, exist_ok=True)
  partial = partial_folder(out)
  first, last = segment or (0, len(clip))
  names = [pathlib.Path(name).stem for name in clip.names[first:last]]
  identity = run_identity(pred, description, clip, input, method, radius, tile, video,
                          (first, last))
  done = _open_partial(partial, identity, names, resume, progress)
  writer = None
  try:
    clip_fps = getattr(clip, "fps", None) or 25.0
    exr_paths = [partial / "hdr" / f"{name}.exr" for name in names]
    if preview:
      writer = preview_lib.PreviewWriter(partial / "preview.mp4", fps=clip_fps)
      for path in exr_paths[:done]:   # The preview's white point follows the clip.
        writer.add(hdr_io.read_hdr(path))
    n = len(names)
    times = []
    start = time.perf_counter()
    compiled_before = pred.compile_seconds  # A reused predictor may have compiled already.
    for t, hdr in predict_clip(pred, clip, radius, times, start=first + done, stop=last):
      hdr_io.write_exr(exr_paths[t - first], hdr)
      if writer is not None:
        writer.add(hdr)
      if progress:
        compiling = pred.compile_seconds - compiled_before
        fps = len(times) / (time.perf_counter() - start - compiling + 1e-9)
        print(f"\rinfer: frame {t - first + 1}/{n}  {fps:.2f} frames/s", end="",
              file=sys.stderr, flush=True)
    if progress and times:
      print(file=sys.stderr)
    if writer is not None:
      writer.close()
      writer = None
    video_summary = None
    if video is not None:
      video_path = pathlib.Path(video["path"])
      if video_path.resolve().is_relative_to(out.resolve()):
        video_path = partial / video_path.resolve().relative_to(out.resolve())
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
        "ms_per_frame_mean": 1000 * float(np.mean(steady)) if steady else None,
        "wall_s": time.perf_counter() - start,
        "resumed_from_frame": first + done if done else 0,
        "frame_range": [first, last],
        "frames_computed": len(times),
        "identity": identity,   # What `--resume` compares (`run_identity`).
    }
    if video_summary is not None:
      summary["hdr_video"] = video_summary
    (partial / "run.json").write_text(json.dumps(summary, indent=1))
    (partial / IDENTITY_FILE).unlink()
    (partial / LOCK_FILE).unlink()
    if out.exists():
      shutil.rmtree(out)
    os.replace(partial, out)
    return summary
  except BaseException:
    # The finished frames stay for --resume; only the preview (rebuilt then) is dropped.
    if writer is not None:
      writer.abort()
    (partial / LOCK_FILE).unlink(missing_ok=True)
    raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--input", required=True, action="append",
                      help="clip folder or video file; repeat it for several (a batch: each "
                      "into OUTPUT/<its name>, the model compiled once)")
  parser.add_argument("--output", required=True,
                      help="output folder (must not exist or be empty; see --resume)")
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
  parser.add_argument("--overwrite", action="store_true",
                      help="replace --output, or a stopped run's partial folder beside it")
  parser.add_argument("--resume", action="store_true",
                      help="continue a stopped run into --output: the frames it finished "
                      "are kept (same input, model and settings required)")
  parser.add_argument("--frames", metavar="START:STOP",
                      help="write only these frames (0-based, STOP excluded; e.g. 0:50 to "
                      "try a long video first); their windows still read the frames around")
  parser.add_argument("--no-preview", action="store_true")
  parser.add_argument("--hdr-video", metavar="FILE.mp4",
                      help="also write the result as a 10-bit HEVC HDR video (.mp4/.mov/.mkv)")
  parser.add_argument("--hdr-format", choices=hdr_video_lib.FORMATS, default="pq",
                      help="HDR video transfer: pq (HDR10, with static metadata) or hlg")
  parser.add_argument("--peak-nits", type=float, default=1000.0,
                      help="display peak of the HDR video in cd/m² (highlights roll off to it)")


def main(args: argparse.Namespace) -> int:
  inputs = args.input
  kwargs = dict(method=args.method, checkpoint=args.checkpoint, config=args.config,
                attn_ratio=args.attn_ratio, tile=args.tile, overlap=args.overlap,
                exposures=args.exposures, response=args.response, overwrite=args.overwrite,
                preview=not args.no_preview, hdr_video=args.hdr_video,
                hdr_format=args.hdr_format, peak_nits=args.peak_nits, dtype=args.dtype,
                tone_calibration=args.tone_calibration, self_ensemble=args.self_ensemble,
                flow_pair=args.flow_pair, resume=args.resume, frames=args.frames)
  outputs = ([pathlib.Path(args.output)] if len(inputs) == 1 else
             [pathlib.Path(args.output) / name for name in output_names(inputs)])
  try:
    if len(inputs) == 1:
      summaries = [run_inference(inputs[0], args.output, **kwargs)]
    else:
      summaries = run_batch(inputs, args.output, **kwargs)
  except KeyboardInterrupt:
    for out in outputs:
      partial = partial_folder(out)
      if partial.exists():
        log(f"\ninfer: interrupted; {_frames_in(partial)} finished HDR frames are kept in "
            f"{partial}: the same command with --resume continues from there")
    return 130
  for out, summary in zip(outputs, summaries):
    _report(out, summary)
  if len(summaries) > 1:
    done = sum(1 for x in summaries if x.get("already_complete"))
    print(f"{len(summaries)} inputs into {args.output}: "
          f"{sum(x['frames'] for x in summaries)} HDR frames"
          + (f" ({done} inputs were already complete)" if done else ""))
  return 0


def _report(out: pathlib.Path, summary: dict) -> None:
  """What `main` prints for one input."""
  if summary.get("already_complete"):
    print(f"{out}: already complete ({summary['frames']} HDR frames)")
    return
  fit = summary["tone_calibration"]
  if fit["contrast"] != 1.0:
    print(f"tone calibration: undid a contrast S-curve of {fit['contrast']:g} ("
          f"{fit.get('reason') or 'measured from the exposures'})")
  speed = ("no frame left to compute" if summary["ms_per_frame_mean"] is None else
           f"{summary['ms_per_frame_mean']:.0f} ms/frame, compile {summary['compile_s']:.1f} s")
  resumed = (f"; resumed at frame {summary['resumed_from_frame']}"
             if summary["resumed_from_frame"] else "")
  print(f"wrote {summary['frames']} HDR frames, preview.mp4 and run.json to {out} "
        f"({speed}{resumed})")
  if "hdr_video" in summary:
    v = summary["hdr_video"]
    print(f"wrote {v['path']}: {v['format'].upper()} HEVC Main10, {v['kbit_per_s']:.0f} kbit/s"
          + (f", MaxCLL {v['max_cll']} / MaxFALL {v['max_fall']} cd/m²"
             if v["max_cll"] is not None else ""))
