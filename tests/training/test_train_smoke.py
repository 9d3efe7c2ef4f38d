"""Two-step smoke runs of `dealthdr train` for both stages on 4 fake CPU devices.

Each run is a subprocess (the fake-device flag must be set before JAX starts, and pytest
shares one process between test files). A compilation cache shared by the session's
training tests keeps repeated programs cheap.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from dealthdr_jax import model_files

REPO = pathlib.Path(__file__).resolve().parents[2]
# One training ratio per run: one step program to compile (both ratios of the tiny preset
# run in the resume test).
ONE_RATIO = ("--config.train_ratios=(0.5,)",)


def run_train(args, tmp_path_factory, devices=4, check=True, **popen):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (f"{os.environ.get('XLA_FLAGS', '')} "
                      f"--xla_force_host_platform_device_count={devices}")
  env["JAX_PLATFORMS"] = "cpu"
  env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.getbasetemp().parent / "jax_cache")
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  cmd = [sys.executable, "-m", "dealthdr_jax.cli", "train"] + [str(a) for a in args]
  result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, **popen)
  if check and result.returncode != 0:
    raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
  return result


def jax_leaves(params):
  import jax  # pylint: disable=g-import-not-at-top
  return [np.asarray(x) for x in jax.tree.leaves(params)]


def _metrics(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_stage1_then_stage2_smoke(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("smoke")
  s1 = tmp / "stage1"
  # Stage 1 on the real simulator pipeline (64×64: its smallest comfortable size).
  result = run_train(["--config", "configs/dealthdr_2exp.py:size=tiny", "--workdir", s1,
                      "--config.data.source=synthetic", "--config.data.crop=64",
                      "--config.total_steps=2", "--config.log_every=1", "--config.eval_every=2",
                      "--config.checkpoint_every=2", *ONE_RATIO], tmp_path_factory)
  # Compilation is announced, once per program, before the steps that pay for it.
  compiles = result.stderr.count("compiling the stage1_step program for attention ratio")
  assert compiles == 1 and result.stderr.count("compiled in") == compiles
  assert result.stderr.index("compiling the stage1_step") < result.stderr.index("[step 1/2]")
  assert result.stderr.count("compiling the validation program") == 1
  records = _metrics(s1)
  train_rec = [r for r in records if "train/loss" in r]
  assert [r["step"] for r in train_rec] == [1, 2]
  assert all(np.isfinite(r["train/loss"]) and r["train/flow_epe"] >= 0 for r in train_rec)
  val = [r for r in records if "val/psnr_t" in r]
  assert val and np.isfinite(val[-1]["val/psnr_t"])
  assert (s1 / "checkpoints" / "2" / "data").is_dir()
  assert any((s1 / "tensorboard").iterdir())
  params, config = model_files.load_params(s1 / "export")
  assert config.model.features == (8, 8, 8) and params

  # The same stage 1 from pre-rendered array_record windows (same programs: cache hits).
  records = tmp / "records"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  synth = subprocess.run(
      [sys.executable, "-m", "dealthdr_jax.cli", "synth", "--format", "array_record",
       "--out", str(records), "--clips", "8", "--workers", "2",
       "--config", "configs/dealthdr_2exp.py:size=tiny", "--config.data.source=synthetic",
       "--config.data.crop=64"], cwd=REPO, env=env, capture_output=True, text=True)
  assert synth.returncode == 0, synth.stderr
  assert "8 windows of 3 frames at 64x64" in synth.stdout
  s1r = tmp / "stage1_records"
  run_train(["--config", "configs/dealthdr_2exp.py:size=tiny", "--workdir", s1r,
             "--config.data.source=array_record", f"--config.data.records={records}",
             "--config.data.crop=64", "--config.total_steps=2", "--config.log_every=1",
             "--config.eval_every=2", "--config.checkpoint_every=2", *ONE_RATIO],
            tmp_path_factory)
  from_records = [r for r in _metrics(s1r) if "train/loss" in r]
  assert [r["step"] for r in from_records] == [1, 2]
  assert all(np.isfinite(r["train/loss"]) for r in from_records)
  # Shards rendered with the training seed replay the on-the-fly stream: same first step.
  np.testing.assert_allclose(from_records[0]["train/loss"], train_rec[0]["train/loss"],
                             rtol=1e-5)

  # Stage 2 from the stage-1 workdir, on GT-free windows. At learning rate 0 (raw params) no
  # step can beat the starting model's held-out criterion: the export must be that model.
  # The optional terms (re-exposure to left-out frames, the teacher's hold where no frame
  # records) are on, in the step and in the criterion.
  s2 = tmp / "stage2"
  result = run_train(["--config", "configs/dealthdr_2exp_stage2.py:size=tiny", "--workdir", s2,
                      f"--config.init_from={s1}", "--config.total_steps=2",
                      "--config.log_every=1", "--config.eval_every=2",
                      "--config.checkpoint_every=2", "--config.optim.lr=0",
                      "--config.optim.calibration_lr=0", "--config.export_params=params",
                      "--config.loss.reexpose_left_out_weight=1.0",
                      "--config.loss.teacher_unrecorded_weight=1.0",
                      *ONE_RATIO],
                     tmp_path_factory)
  assert "held-out criterion at the start" in result.stderr
  assert "never beat the starting model" in result.stderr, result.stderr[-2000:]
  card = json.loads((s2 / "export" / "card.json").read_text())
  assert card["exported_step"] == 0 and card["final_step"] == 2
  assert json.loads((s2 / "export_last" / "card.json").read_text())["exported_step"] == 2
  assert card["heldout_criterion"]["best_step"] == 0
  exported, _ = model_files.load_params(s2 / "export")
  started, _ = model_files.load_params(s1 / "export_best"
                                       if (s1 / "export_best").exists() else s1 / "export")
  assert set(started) < set(exported)  # Stage 2 adds the response calibration.
  for group in started:
    for a, b in zip(jax_leaves(exported[group]), jax_leaves(started[group])):
      np.testing.assert_array_equal(a, b)
  # The pre-flight (config, data and init_from checks) runs and speaks once.
  assert result.stderr.count("init_from lacks") == 1, result.stderr
  rec = [r for r in _metrics(s2) if "train/loss" in r]
  assert [r["step"] for r in rec] == [1, 2]
  for key in ("train/subset_loss", "train/teacher_loss", "train/reexpose_loss",
              "train/reexpose_left_out_loss", "train/teacher_unrecorded_loss"):
    assert np.isfinite(rec[-1][key]), key
  assert rec[-1]["train/reexpose_left_out_loss"] > 0
  # Stage 2 starts from stage 1: at step 1 the EMA teacher equals the student.
  assert rec[0]["train/teacher_loss"] < 1e-6 and rec[0]["train/teacher_unrecorded_loss"] < 1e-6
  assert model_files.is_params_checkpoint(s2 / "export")


def test_bad_override_fails_fast_and_keeps_workdir(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("bad")
  result = run_train(["--config", "configs/dealthdr_2exp.py:size=tiny", "--workdir", tmp / "w",
                      "--config.optim.lrr=1"], tmp_path_factory, check=False)
  assert result.returncode == 2 and "unknown config key 'optim.lrr'" in result.stderr
  assert not (tmp / "w").exists()
  # An option the chosen data source never reads is an error, not silently ignored.
  result = run_train(["--config", "configs/dealthdr_2exp.py:size=tiny", "--workdir", tmp / "w",
                      f"--config.data.source_dir={tmp}"], tmp_path_factory, check=False)
  assert result.returncode == 2, result.stderr
  assert "data.source_dir" in result.stderr and "has no effect" in result.stderr
  assert "--config.data.source=synthetic" in result.stderr
  assert not (tmp / "w").exists()
