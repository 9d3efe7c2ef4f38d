"""A real 2-process run on localhost (jax.distributed, CPU collectives) through
launch/local_multiprocess.sh: it trains, checkpoints both processes' data positions, and
only process 0 writes logs."""
import json
import os
import pathlib
import subprocess
import sys

from dealthdr_jax import model_files

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_two_process_training(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("multiprocess") / "run"
  env = dict(os.environ)
  # One device per process: no fake device count (conftest's other flags stay).
  env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                              if "device_count" not in f)
  env["PYTHON"] = sys.executable
  env["DEVICES_PER_PROCESS"] = "1"
  env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.getbasetemp().parent / "jax_cache")
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  cmd = ["bash", "launch/local_multiprocess.sh", "2", "--config",
         "configs/dealthdr_2exp.py:size=tiny", "--workdir", str(workdir),
         "--config.total_steps=4", "--config.checkpoint_every=2", "--config.log_every=2",
         "--config.eval_every=4", "--config.train_ratios=(0.0,)"]
  result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  logs = "\n".join(p.read_text() for p in sorted(workdir.glob("process_*.log")))
  assert result.returncode == 0, result.stderr[-3000:] + logs[-3000:]
  assert "2 process(es)" in result.stdout + result.stderr
  for step in (2, 4):
    data = workdir / "checkpoints" / str(step) / "data"
    assert (data / "process_0-of-2.json").is_file() and (data / "process_1-of-2.json").is_file()
  # The two processes read different shards: their iterator states both advanced.
  states = [json.loads((workdir / "checkpoints" / "4" / "data" / f"process_{i}-of-2.json")
                       .read_text()) for i in range(2)]
  assert states[0] == states[1] and states[0]  # Same position (4 batches) in their own shard.
  records = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if "train/loss" in r] == [2, 4]  # Written once.
  assert "[step" not in (workdir / "process_1.log").read_text()
  assert model_files.is_params_checkpoint(workdir / "export")
