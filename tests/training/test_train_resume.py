"""Kill-and-resume: a training run SIGKILLed mid-way and restarted from its workdir ends
with exactly the parameters of an uninterrupted run (same data order, ratios, keys). And
`tools/export_checkpoint.py` on that run: a chosen checkpoint step exported as the run
itself exports."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from dealthdr_jax import model_files
from dealthdr_jax.training import checkpoints

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import export_checkpoint  # noqa: E402  pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[2]
STEPS = 24  # Killed right after its first checkpoint (step 4), well before the end.
ARGS = ["--config", "configs/dealthdr_2exp.py:size=tiny", f"--config.total_steps={STEPS}",
        "--config.checkpoint_every=4", "--config.log_every=4", f"--config.eval_every={STEPS}",
        "--config.keep_checkpoints=2"]


def _command(workdir, tmp_path_factory):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
  env["JAX_PLATFORMS"] = "cpu"
  env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.getbasetemp().parent / "jax_cache")
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  cmd = [sys.executable, "-m", "dealthdr_jax.cli", "train", "--workdir", str(workdir)] + ARGS
  return cmd, env


def _run(workdir, tmp_path_factory):
  cmd, env = _command(workdir, tmp_path_factory)
  result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-4000:]
  return result


def _steps(workdir):
  ckpt = workdir / "checkpoints"
  return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  """An uninterrupted run's workdir (checkpoints 20 and 24 kept, exported at 24)."""
  workdir = tmp_path_factory.mktemp("straight") / "run"
  _run(workdir, tmp_path_factory)
  return workdir


def test_killed_run_resumes_to_identical_params(tmp_path_factory, straight_run):
  tmp = tmp_path_factory.mktemp("resume")

  killed = tmp / "killed"
  cmd, env = _command(killed, tmp_path_factory)
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 240
  while not _steps(killed) and time.monotonic() < deadline and proc.poll() is None:
    time.sleep(0.02)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  saved = _steps(killed)
  assert saved and saved[-1] < STEPS, f"run was not interrupted mid-way: {saved}"
  assert not (killed / "export").exists()

  result = _run(killed, tmp_path_factory)
  assert "resumed from" in result.stderr
  print(f"killed after checkpoint(s) {saved}; resumed to step {STEPS}")

  a, _ = model_files.load_params(straight_run / "export")
  b, _ = model_files.load_params(killed / "export")
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def _same(a, b) -> bool:
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_export_checkpoint_writes_a_step_as_the_run_exports_it(straight_run, tmp_path, capsys):
  kept = _steps(straight_run)
  assert kept[-1] == STEPS and len(kept) == 2, kept
  # The last step: exactly the run's own export (the same EMA-or-raw choice), and a card
  # with the step's logged metrics.
  assert export_checkpoint.main(["--workdir", str(straight_run), "--step", str(STEPS),
                                 "--out", str(tmp_path / "last")]) == 0
  last, config = model_files.load_params(tmp_path / "last")
  run_export, run_config = model_files.load_params(straight_run / "export")
  assert _same(last, run_export) and config.to_dict() == run_config.to_dict()
  card = json.loads((tmp_path / "last" / model_files.CARD_FILE).read_text())
  run_card = json.loads((straight_run / "export" / model_files.CARD_FILE).read_text())
  assert card["step"] == STEPS and card["params"] == run_card["params"]
  logged = checkpoints.logged_metrics(straight_run)[STEPS]
  assert card["train"]["loss"] == logged["train/loss"]
  assert card["val"]["psnr_t"] == logged["val/psnr_t"] == run_card["val"]["psnr_t"]
  # An earlier kept step is another set of parameters.
  assert export_checkpoint.main(["--workdir", str(straight_run), "--step", str(kept[0]),
                                 "--out", str(tmp_path / "early")]) == 0
  early, _ = model_files.load_params(tmp_path / "early")
  assert not _same(early, last)
  # Refused, nothing written: a step not kept (the message names those kept), a taken --out.
  assert export_checkpoint.main(["--workdir", str(straight_run), "--step", "3",
                                 "--out", str(tmp_path / "none")]) == 2
  assert f"holds no checkpoint of step 3; it holds steps {kept}" in capsys.readouterr().err
  assert not (tmp_path / "none").exists()
  before = (tmp_path / "early" / model_files.PARAMS_FILE).read_bytes()
  assert export_checkpoint.main(["--workdir", str(straight_run), "--step", str(STEPS),
                                 "--out", str(tmp_path / "early")]) == 2
  assert "exists and is not empty" in capsys.readouterr().err
  assert (tmp_path / "early" / model_files.PARAMS_FILE).read_bytes() == before
