"""The README's results table: baselines vs the shipped models on held-out synthetic clips.

  python tools/results_table.py --out out/results --sources ../shared/hdr_sources \\
      --stage2 runs/2exp_small_stage2

Fixed test sets are rendered by the camera simulator, with content only from the
held-out validation images of `--sources` (the same name-hash split that training holds
out, `data_pipeline.sources.split_names`), never seen in training:
  2exp         the stage-1 camera family (gamma 2.2 / sRGB responses, 8–12 bit, stage-1
               noise ranges), two alternating exposures 1–4 stops apart;
  3exp         the same camera, three alternating exposures;
  other camera two exposures from `simulator.stage2_camera`: one sigmoid response curve
               (`--other-camera-response`, the one stage 2 trains on by default) and
               a noisier sensor. Every method is told the response is gamma 2.2 (the
               user of a real camera does not know its curve), which is what stage 2 must
               adapt to.
  held-out camera  (2exp; 3exp as `held_out_camera_3exp`) clips written by real-camera
               pipelines never drawn in training (`camera_pipeline.HELD_OUT_RANGES`:
               Bayer raw noise, demosaicing, stronger white-balance gains and colour
               matrices, harder tone S-curves, JPEG quality 70–79); methods read the clip's declared base response (meta.json), not
               its S-curve. The "dark chroma" column (every set) is the colour error in
               the darkest 10 % of GT pixels (`metrics.dark_chroma_error`), "PSNR-T rec."
               (every set) PSNR-T on the pixels some exposure recorded (not clipped in
               every nearest frame of the shortest exposure, `metrics.psnr_t_recoverable`):
               where emitters outshine the scene, PSNR-T is mostly the guess at what no
               frame recorded;
  hard motion  (2exp and 3exp, `--hard-size`, `--hard-clips`): the stage-1 camera under
               large motion: the camera pans 8–24 px/frame with rotation (≤ 1°/frame) and
               zoom (≤ 2 %/frame), 1–3 occluding layers move 12–32 px/frame (their own
               direction, so often against the camera), long frames integrate most of
               the frame period (heavy blur) and are exposed brighter (more clipping over
               moving content). Extra columns score the alignment against the simulator's
               flow (`evaluation.flow_accuracy`): EPE on visible and on occluded pixels for
               DIS and the learned flow (on the ratio-0.25 row; on every row for models
               whose FGMA corrects the flow, `model.fgma_flow_correction`), and the share of
               GT-occluded pixels and of pixels whose learned flow is off by > 3 px that
               FGMA selects at 0.25;
               `--flow-checkpoint` adds the flow of other models (e.g. flow pre-training).
Rows: both baselines, the shipped model of the pattern at attention ratios 0 … 1 (`RATIOS`),
and on the other-camera set the stage-1 model before and after stage-2 fine-tuning
(`--stage2`: each such run's workdir or params-only export). Metrics are `dealthdr eval`'s
(mean over clips of the per-clip mean), with a ColorVideoVDP JOD column when the
`perceptual` extra is installed (`evaluation.perceptual`); ms/frame is the steady-state time of one output
frame at the test size on this machine (`dealthdr bench` for the model, the baseline
function on one window for the baselines). `--dtype bfloat16 --ratios 0.125,0.25
--skip-baselines` gives the models' rows in bfloat16 compute (issue 14's fp32 comparison);
`--self-ensemble 4 --skip-baselines` the model rows averaged over mirrored copies (`dealthdr
infer --self-ensemble`), written to results_se4.md beside the plain table.
Every method reads the clips as `dealthdr infer` does, with the camera's undeclared
contrast S-curve measured and undone (`--tone-calibration auto`; `off` gives the rows as
they were before it). results.json also holds each row's per-clip scores ("per_clip").
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import statistics
import sys
import time

import numpy as np

from data_pipeline import clips as clips_lib
from data_pipeline import simulator as sim_lib
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import flow_accuracy
from dealthdr_jax.evaluation import scoring
from dealthdr_jax.evaluation.testsets import hard_config, held_out_camera_config, render
from dealthdr_jax.evaluation.testsets import OTHER_CAMERA_READ_AS, testset_config
from dealthdr_jax.inference import baselines
from dealthdr_jax.inference import bench
from dealthdr_jax.inference import infer

RATIOS = (0.0, 0.125, 0.25, 0.5, 1.0)
COLUMNS = [("test set", "set", "s"), ("method", "method", "s"), ("ratio", "ratio", "g"),
           ("PSNR-T", "psnr_t", ".2f"), ("PSNR-L", "psnr_l", ".2f"), ("SSIM-T", "ssim_t", ".4f"),
           ("dark chroma", "dark_chroma", ".4f"), ("PSNR-T rec.", "psnr_t_rec", ".2f"),
           ("ms/frame", "ms_per_frame", ".0f")]
FLOW_COLUMNS = [("EPE visible", "epe_visible", ".2f"), ("EPE occluded", "epe_occluded", ".2f"),
                ("occluded captured", "occluded_captured", ".2f"),
                ("bad flow captured", "bad_flow_captured", ".2f")]
def baseline_ms(method: str, clip: pathlib.Path, response: str | None, iters: int = 5) -> float:
  """Median ms for one output frame of a baseline on the middle window of `clip`."""
  opened = clips_lib.open_clip(clip, response=response)
  response = opened.response
  radius = 2 if len(set(np.round(opened.stops, 3))) > 2 else 1
  windows = list(clips_lib.iter_windows(opened, radius))
  _, frames, stops = windows[len(windows) // 2]
  fn = baselines.BASELINES[method]
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    fn(np.asarray(frames, np.float32), np.asarray(stops, np.float32), response=response)
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def model_ms(checkpoint: str, size, ratios, dtype: str | None = None) -> dict[float, float]:
  model, params, _, _ = model_files.load_model(checkpoint)
  if dtype is not None:
    model = model.clone(dtype=dtype)
  cost = bench.benchmark(model, params, *size, ratios, iters=5)
  return {r: cost[f"{r:g}"]["ms_per_frame"] for r in ratios}


def run(args) -> list[dict]:
  out = pathlib.Path(args.out)
  size = args.size
  hard = args.hard_size
  sets = [  # (folder, label, simulator config, model, clips)
      ("2exp", "2exp", testset_config("2exp", size, args.sources), args.model_2exp, args.clips),
      ("3exp", "3exp", testset_config("3exp", size, args.sources), args.model_3exp, args.clips),
      ("other_camera", "other camera (2exp)", testset_config("2exp", size, args.sources,
                                                       args.other_camera_response),
       args.model_2exp, args.clips),
      ("hard_2exp", "hard motion (2exp)", hard_config("2exp", hard, args.sources),
       args.model_2exp, args.hard_clips),
      ("hard_3exp", "hard motion (3exp)", hard_config("3exp", hard, args.sources),
       args.model_3exp, args.hard_clips),
      # Last: a set's seed is its position, so earlier sets keep theirs.
      ("held_out_camera", "held-out camera (2exp)",
       held_out_camera_config("2exp", size, args.sources), args.model_2exp, args.clips),
      ("held_out_camera_3exp", "held-out camera (3exp)",
       held_out_camera_config("3exp", size, args.sources), args.model_3exp, args.clips),
  ]
  rows = []
  for k, (tag, set_name, config, model, num_clips) in enumerate(sets):
    if args.sets and tag not in args.sets:
      continue
    clips = render(out, tag, config, num_clips, args.frames, args.seed + k)
    flow_scores = tag.startswith("hard_")
    # The stage-1 camera's clips declare their response in meta.json; the other camera's
    # are read as `OTHER_CAMERA_READ_AS`.
    response = OTHER_CAMERA_READ_AS if tag == "other_camera" else None
    common = {"response": response, "tone_calibration": args.tone_calibration}
    model_kwargs = ({"dtype": args.dtype} if args.dtype else {}) | (
        {"self_ensemble": args.self_ensemble} if args.self_ensemble > 1 else {})
    passes = args.self_ensemble  # model passes per frame (the self-ensemble's copies)
    ratios = args.ratios or RATIOS

    def add(label, ratio, ms, flow=None, **kwargs):
      name = (f"{label}_r{ratio}" + (f"_{kwargs['dtype']}" if kwargs.get("dtype") else "")
              + (f"_se{kwargs['self_ensemble']}" if kwargs.get("self_ensemble") else ""))
      scores = scoring.score(out / "pred" / tag / re.sub(r"[^\w.-]+", "_", name),
                             clips, per_clip=True, **common, **kwargs)
      rows.append({"set": set_name, "method": label, "ratio": ratio,
                   **({"dtype": kwargs["dtype"]} if kwargs.get("dtype") else {}),
                   **({"self_ensemble": kwargs["self_ensemble"]}
                      if kwargs.get("self_ensemble") else {}), **scores,
                   "ms_per_frame": ms, **(flow or {})})
      print(json.dumps(rows[-1]), flush=True)

    for method in () if args.skip_baselines else ("reference_only", "dis_flow"):
      flow = (flow_accuracy.dis_flow_scores(clips, response)
              if flow_scores and method == "dis_flow" else None)
      add(method, None, baseline_ms(method, clips[0], response), flow, method=method)
    for checkpoint in (args.flow_checkpoint or ()) if flow_scores else ():
      loaded = model_files.load_model(checkpoint)
      # Ratio 0.25: the flow does not depend on it; FGMA's selection (parameter-free,
      # from this flow) is scored at the shipped default.
      rows.append({"set": set_name, "method": f"flow only: {checkpoint}", "ratio": 0.25,
                   **flow_accuracy.model_flow_scores(loaded.model, loaded.params, clips, 0.25,
                                                     response=response)})
      print(json.dumps(rows[-1]), flush=True)
    if tag == "other_camera":
      ms = passes * model_ms(model, size, (0.25,), args.dtype)[0.25]
      add("dealthdr stage 1", 0.25, ms, method="dealthdr", checkpoint=model, attn_ratio=0.25,
          **model_kwargs)
      for stage2 in args.stage2 or ():
        _, s2 = model_files.load_params(model_files.resolve_checkpoint(stage2))
        curve = s2.model.get("response_calibration", 0)
        add(f"dealthdr stage 2 (lr {s2.optim.lr:g}, {s2.total_steps} steps"
            + (f", {curve}-segment response calibration)" if curve else ")"), 0.25, ms,
            method="dealthdr", checkpoint=stage2, attn_ratio=0.25, **model_kwargs)
      continue
    ms = {r: passes * v for r, v in model_ms(model, config.size, ratios, args.dtype).items()}
    loaded = model_files.load_model(model) if flow_scores else None
    corrects = flow_scores and loaded.model.fgma_flow_correction
    for ratio in ratios:
      # Without FGMA's flow correction the flow does not depend on the ratio, and FGMA's
      # capture is scored at 0.25 (at ratio 1 it is 1 by definition); with it, every ratio.
      flow = (flow_accuracy.model_flow_scores(loaded.model, loaded.params, clips, ratio,
                                              response=response)
              if flow_scores and (ratio == 0.25 or corrects) else None)
      add("dealthdr", ratio, ms[ratio], flow, method="dealthdr", checkpoint=model,
          attn_ratio=ratio, **model_kwargs)
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--sources", default=os.environ.get("DEALTHDR_HDR_SOURCES",
                                                          "../shared/hdr_sources"),
                      help="folder of .exr/.hdr images; only its held-out split is used")
  shipped = model_files.SHIPPED_DIR
  parser.add_argument("--model-2exp", default=str(shipped / "dealthdr_2exp"))
  parser.add_argument("--model-3exp", default=str(shipped / "dealthdr_3exp"))
  parser.add_argument("--stage2", action="append",
                      help="stage-2 workdir or export (other-camera rows; repeatable)")
  parser.add_argument("--sets", nargs="+",
                      choices=("2exp", "3exp", "other_camera", "hard_2exp", "hard_3exp",
                               "held_out_camera", "held_out_camera_3exp"),
                      help="only these test sets (default: all seven)")
  parser.add_argument("--other-camera-response", default=sim_lib.STAGE2_RESPONSE,
                      help="the other camera's response: 'sigmoid:N,SIGMA' (one camera, the "
                           "default matches stage-2 training) or 'sigmoid' (random per clip)")
  parser.add_argument("--dtype", choices=infer.DTYPES,
                      help="the models' compute dtype (default: as stored, float32)")
  parser.add_argument("--self-ensemble", type=int, choices=(1, 2, 4), default=1,
                      help="the model rows average this many mirrored copies per frame "
                      "(`dealthdr infer --self-ensemble`; ms/frame is N model passes)")
  parser.add_argument("--ratios", type=lambda t: tuple(float(v) for v in t.split(",")),
                      help=f"attention ratios of the model rows (default: {RATIOS})")
  parser.add_argument("--tone-calibration", default="auto", metavar="auto|off|CONTRAST",
                      help="how every method's clips are read (`dealthdr infer "
                      "--tone-calibration`; rows of the README before v4: off)")
  parser.add_argument("--skip-baselines", action="store_true",
                      help="only the model rows (e.g. a dtype comparison)")
  parser.add_argument("--clips", type=int, default=4)
  parser.add_argument("--frames", type=int, default=8)
  parser.add_argument("--size", type=bench.parse_size, default=(192, 256))
  parser.add_argument("--seed", type=int, default=4242)
  parser.add_argument("--hard-size", type=bench.parse_size, default=(256, 384),
                      help="frame size of the hard-motion sets")
  parser.add_argument("--flow-checkpoint", action="append",
                      help="hard-motion sets: also score this model's learned flow alone "
                           "(e.g. a flow pre-training workdir; repeatable)")
  parser.add_argument("--hard-clips", type=int, default=8,
                      help="clips per hard-motion set")
  args = parser.parse_args(argv)
  if not pathlib.Path(args.sources).is_dir():
    parser.error(f"--sources {args.sources}: no such folder")
  rows = run(args)
  columns = (COLUMNS[:3] + ([("dtype", "dtype", "s")] if args.dtype else [])
             + ([("self-ensemble", "self_ensemble", "d")] if args.self_ensemble > 1 else [])
             + COLUMNS[3:]
             + ([("JOD", "jod", ".2f")] if any("jod" in r for r in rows) else [])
             + (FLOW_COLUMNS if any("epe_visible" in r for r in rows) else []))
  table = scoring.markdown(rows, columns)
  # A dtype or self-ensemble comparison does not replace the plain float32 table.
  stem = ("results" + (f"_{args.dtype}" if args.dtype else "")
          + (f"_se{args.self_ensemble}" if args.self_ensemble > 1 else ""))
  pathlib.Path(args.out, f"{stem}.md").write_text(table)
  pathlib.Path(args.out, f"{stem}.json").write_text(json.dumps(rows, indent=1))
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
