"""Kill-and-resume: a training run SIGKILLed mid-way and restarted from its workdir ends
with exactly the parameters of an uninterrupted run (same data order, ratios, keys)."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from dealthdr_jax import model_files

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


def test_killed_run_resumes_to_identical_params(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("resume")
  _run(tmp / "straight", tmp_path_factory)

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

  a, _ = model_files.load_params(tmp / "straight" / "export")
  b, _ = model_files.load_params(killed / "export")
  for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))
