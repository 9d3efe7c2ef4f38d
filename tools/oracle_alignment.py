"""How much would perfect alignment give? A model scored with its own flow and with the
simulator's flow in its place (the oracle), optionally after fine-tuning with it.

  python tools/oracle_alignment.py --checkpoint dealthdr_jax/assets/models/dealthdr_2exp \\
      --sources ../shared/hdr_sources [--windows 16] [--crop 256] [--finetune-steps 900]

Windows are the alignment preset's validation windows (`configs/dealthdr_align.py`: held-out
sources, large motion, half through a sampled camera pipeline) at `--crop`², scored by
PSNR-T at ratio 0. The oracle replaces the finest forward flow (reference → each neighbour,
what aligns the features) with the simulator's flow area-averaged to the flow's scale; the
flow fill is off for it (the filled regions are what the oracle knows). With
`--finetune-steps N`, the model's trainable groups are then fine-tuned N steps at ratio 0
with the oracle flow (the preset's data, loss and learning rate; 50 warm-up steps, flow
loss weights 0, the flow network frozen) and scored again with it: the reconstruction's headroom when alignment is
perfect; `--finetune-flow own` runs the same fine-tune with the model's own flow (the
control).
"""
from __future__ import annotations

import argparse
import sys
import time

from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import metrics as metrics_lib
from dealthdr_jax.models import flow as flow_lib
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import input_pipeline
from dealthdr_jax.training import losses
from dealthdr_jax.training import train
from dealthdr_jax.training import train_state


def neighbour_flow(batch) -> jnp.ndarray:
  """GT flow reference → each neighbour [B, M, H, W, 2] from a batch's flow [B, T, H, W, 2]."""
  return train._neighbour_flow(batch)[0]  # pylint: disable=protected-access


def with_flow(fn, gt_flow: jnp.ndarray | None):
  """Runs `fn()` with every flow network's finest forward flow replaced by `gt_flow`
  [B, M, H, W, 2] area-averaged to its scale (None: unchanged). The flow network sees
  forward pairs first, then backward pairs (`DeAltHDR.__call__`); the backward flows, which
  only FGMA's score reads, stay the network's."""
  if gt_flow is None:
    return fn()

  def intercept(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if (isinstance(context.module, (flow_lib.CostVolumeFlow, flow_lib.PyramidFlow))
        and context.method_name == "__call__"):
      fine = out[-1]
      bm = gt_flow.shape[0] * gt_flow.shape[1]
      gt = losses.downsample_flow(gt_flow.reshape((bm,) + gt_flow.shape[2:]),
                                  fine.shape[1], fine.shape[2])
      out = list(out[:-1]) + [jnp.concatenate([gt, fine[bm:]])]
    return out

  with nn.intercept_methods(intercept):
    return fn()


def scorer(model: DeAltHDR, batches, oracle: bool):
  """params → PSNR-T per window at ratio 0 [N] (compiled once, reused across calls)."""
  @jax.jit
  def psnr(p, batch):
    hdr, _ = with_flow(lambda: model.apply({"params": p}, batch["frames"], batch["stops"],
                                           ratio=0.0),
                       neighbour_flow(batch) if oracle else None)
    return metrics_lib.psnr_t_jnp(hdr, batch["hdr"])
  return lambda params: np.concatenate([np.asarray(psnr(params, b)) for b in batches])


def _rounded(values: np.ndarray) -> list[float]:
  return [round(float(v), 2) for v in values]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", default=model_files.shipped_checkpoint("dealthdr_2exp"))
  parser.add_argument("--sources", required=True, help="HDR source folder (../shared/hdr_sources)")
  parser.add_argument("--windows", type=int, default=16)
  parser.add_argument("--crop", type=int, default=256)
  parser.add_argument("--finetune-steps", type=int, default=0)
  parser.add_argument("--finetune-flow", choices=("oracle", "own"), default="oracle",
                      help="the flow the fine-tune aligns with ('own' is the control)")
  parser.add_argument("--seed", type=int, default=0, help="the fine-tune's data seed")
  parser.add_argument("--score-every", type=int, default=0,
                      help="also score every N fine-tune steps (0: at the end only)")
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()  # grain workers outside absl.app.run
  params, saved = model_files.load_params(model_files.resolve_checkpoint(args.checkpoint))
  model = DeAltHDR.from_config(saved.model)
  spec = (f"dealthdr_align:pattern={saved.pattern},flow=,camera=0.5,tone=exact"
          + (",correct=1" if model.fgma_flow_correction else ""))
  val_config = config_loading.load_config(spec)
  config_loading.apply_overrides(val_config, [f"data.crop={args.crop}",
                                              f"data.val_size={args.windows}",
                                              f"data.source_dir={args.sources}"])
  batches = input_pipeline.make_val_batches(val_config, batch_size=4)
  unfilled = model.clone(flow_fill=False)
  scorers = {"own flow": scorer(model, batches, oracle=False),
             "own flow, no fill": scorer(unfilled, batches, oracle=False),
             "oracle flow": scorer(unfilled, batches, oracle=True)}
  rows = {name: score(params) for name, score in scorers.items()}
  for name, values in rows.items():
    print(f"{name:28s} PSNR-T {values.mean():.2f} dB  per window {_rounded(values)}", flush=True)
  if args.finetune_steps:
    config = config_loading.load_config(spec)
    config_loading.apply_overrides(config, [f"data.source_dir={args.sources}",
                                            "data.worker_count=1",
                                            f"total_steps={args.finetune_steps}",
                                            "loss.flow_weight=0.0",
                                            "loss.aligned_flow_weight=0.0",
                                            "optim.warmup_steps=50"])
    oracle = args.finetune_flow == "oracle"
    tuned_model = unfilled if oracle else model
    score_tuned = scorers["oracle flow" if oracle else "own flow"]
    tx = train_state.make_optimizer(config)
    state = jax.jit(lambda p: train_state.create(p, tx))(jax.tree.map(jnp.asarray, params))

    @jax.jit
    def step(state, batch):
      return with_flow(lambda: train.stage1_step(state, batch, model=tuned_model, tx=tx,
                                                 config=config, ratio=0.0),
                       neighbour_flow(batch) if oracle else None)

    data = input_pipeline.make_train_iterator(config, seed=args.seed, batch_size=4)
    start = time.time()
    for i in range(1, args.finetune_steps + 1):
      state, _ = step(state, input_pipeline.device_batch(next(data)))
      if i % 100 == 0 or i == args.finetune_steps:
        print(f"fine-tune step {i}/{args.finetune_steps} ({time.time() - start:.0f} s)", flush=True)
      if i == args.finetune_steps or (args.score_every and i % args.score_every == 0):
        tuned = score_tuned(state.params)
        print(f"{args.finetune_flow} flow, fine-tuned {i:>5d} steps PSNR-T {tuned.mean():.2f} dB  "
              f"per window {_rounded(tuned)}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
