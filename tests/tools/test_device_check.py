"""`tools/device_check.py --quick`: the accelerator check runs end to end on the CPU.

One tiny configuration per section (each compiled program costs CI time): inference and
4K tiling in bfloat16 (float32 is what every other test runs), one train step size, the
input pipeline from the simulator and from array_record shards. Figures are not checked
(timings are not test material); that every section produced its fields is.
"""
import json
import math
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import device_check  # noqa: E402  pylint: disable=wrong-import-position
from dealthdr_jax.inference import bench  # noqa: E402  pylint: disable=wrong-import-position


def _positive(x):
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_quick_device_check_answers_every_section(tmp_path, capsys):
  out = tmp_path / "dc.json"
  assert device_check.main([
      "--quick", "--out", str(out), "--models", "tiny", "--train-model", "tiny",
      "--dtypes", "bfloat16", "--ratios", "0.25", "--resolutions", "720p",
      "--train-batches", "2", "--input-workers", "1", "--budget-s", "100000"]) == 0
  result = json.loads(out.read_text())
  assert result["quick"] and result["platform"] == "cpu" and not result["skipped"]
  (inf,) = result["inference"]
  assert (inf["model"], inf["dtype"], inf["resolution"], inf["ratio"]) == (
      "tiny", "bfloat16", "720p", 0.25)
  assert all(_positive(inf[k]) for k in ("ms_per_frame", "gflops", "compile_s"))
  (tiled,) = result["tiled"]
  assert tiled["tiles"] > 1 and _positive(tiled["ms_per_frame"])
  (train,) = result["train"]
  assert train["batch"] == 2 and _positive(train["steps_per_s"])
  assert train["samples_per_s"] == 2 * train["steps_per_s"]
  sources = [r["source"] for r in result["input"]]
  assert sources == ["synthetic (on the fly)", "array_record shards (page cache)"]
  for row in result["input"]:
    assert _positive(row["samples_per_s"])
    assert math.isclose(row["ratio_to_step"], row["samples_per_s"] / train["samples_per_s"])
  table = capsys.readouterr().out
  assert "| tiny | bfloat16 | 720p 32×48 | 0.25 |" in table and "× step appetite" in table
  assert result["flop_count_note"] is None and "Note:" not in table
  # On an accelerator the tables say that its FLOP counts do not compare.
  gpu = dict(result, platform="gpu", flop_count_note=bench.flop_count_note("gpu"))
  assert "Note: GFLOPs on gpu are XLA's cost analysis" in device_check.tables(gpu)


def test_a_spent_budget_skips_and_says_so(tmp_path, capsys):
  assert device_check.main(["--quick", "--budget-s", "0", "--models", "tiny",
                            "--sections", "train,input", "--out", str(tmp_path / "d.json")]) == 0
  result = json.loads((tmp_path / "d.json").read_text())
  assert not result["inference"] and not result["train"] and not result["input"]
  assert "inference tiny float32 720p ratio 0.25" in result["skipped"]
  assert "skipped (time budget)" in capsys.readouterr().out
