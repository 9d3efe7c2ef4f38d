"""`dealthdr bench` output: the DESIGN §8 JSON schema, FLOPs per ratio, tiled variant."""
import json

from dealthdr_jax import cli


def test_bench_json_schema(tmp_path):
  out = tmp_path / "bench.json"
  rc = cli.main(["bench", "--config", "dealthdr_2exp:size=tiny", "--size", "48x64",
                 "--ratios", "0,0.5", "--iters", "1", "--json", str(out)])
  assert rc == 0
  result = json.loads(out.read_text())
  assert result["size"] == [48, 64] and "cpu" in result["device"].lower()
  r0, r5 = result["ratios"]["0"], result["ratios"]["0.5"]
  for r in (r0, r5):
    assert r["ms_per_frame"] > 0 and r["gflops"] > 0 and r["peak_mem_mb"] > 0
  assert r0["attn_gflops"] == 0 and r5["attn_gflops"] > 0
  assert result["flop_count_note"] is None  # CPU counts compare; accelerators' do not.


def test_flop_counts_of_accelerators_carry_a_note():
  from dealthdr_jax.inference import bench  # pylint: disable=g-import-not-at-top
  assert bench.flop_count_note("cpu") is None
  for backend in ("gpu", "tpu"):
    note = bench.flop_count_note(backend)
    assert backend in note and "only between CPU runs" in note


def test_bench_tiled_reports_smaller_programs(tmp_path):
  full, tiled = tmp_path / "full.json", tmp_path / "tiled.json"
  common = ["bench", "--config", "dealthdr_2exp:size=tiny", "--size", "96x128", "--ratios",
            "0.25", "--iters", "0"]
  assert cli.main(common + ["--json", str(full)]) == 0
  assert cli.main(common + ["--tile", "64", "--overlap", "16", "--json", str(tiled)]) == 0
  f = json.loads(full.read_text())["ratios"]["0.25"]
  t = json.loads(tiled.read_text())["ratios"]["0.25"]
  assert t["tiles"] == 2 * 3 and t["tile"] == [64, 64]  # starts y: 0,32; x: 0,48,64
  assert t["peak_mem_mb"] < f["peak_mem_mb"]
  assert t["gflops"] > f["gflops"]  # overlapping tiles recompute their overlap


def test_cli_config_overrides_and_clear_errors(capsys):
  rc = cli.main(["bench", "--config", "dealthdr_2exp:size=tiny", "--size", "32x32", "--ratios",
                 "0.5", "--iters", "0", "--config.model.fgma_window=5"])
  assert rc == 0
  rc = cli.main(["bench", "--config", "dealthdr_2exp:size=tiny", "--iters", "0",
                 "--config.model.fgma_windw=5"])
  err = capsys.readouterr().err
  assert rc == 2 and "unknown config key 'model.fgma_windw'" in err and "fgma_window" in err
  assert "Traceback" not in err
  assert cli.main(["bench", "--config", "no_such_config"]) == 2
  assert "not found" in capsys.readouterr().err
  assert cli.main(["frobnicate"]) == 2


def test_bench_edges_measures_the_clip_edge_program(tmp_path, capsys):
  """--edges adds, per ratio, the program of a three-exposure clip's first window (one more
  flow pair: more FLOPs); a two-exposure model has none, and tiles are refused."""
  out = tmp_path / "bench.json"
  assert cli.main(["bench", "--config", "dealthdr_3exp:size=tiny", "--size", "32x32",
                   "--ratios", "0", "--iters", "0", "--edges", "--json", str(out)]) == 0
  r0 = json.loads(out.read_text())["ratios"]["0"]
  assert r0["edge"]["offsets"] == [1, 2, 0, 1, 2]
  assert r0["edge"]["gflops"] > r0["gflops"] > 0
  assert "clip-edge window (1, 2, 0, 1, 2)" in capsys.readouterr().out
  out2 = tmp_path / "bench2.json"
  assert cli.main(["bench", "--config", "dealthdr_2exp:size=tiny", "--size", "32x32",
                   "--ratios", "0", "--iters", "0", "--edges", "--json", str(out2)]) == 0
  assert "edge" not in json.loads(out2.read_text())["ratios"]["0"]
  assert "hold every frame where it belongs" in capsys.readouterr().out
  assert cli.main(["bench", "--config", "dealthdr_3exp:size=tiny", "--size", "64x64",
                   "--edges", "--tile", "32"]) == 2
  assert "leave out --tile" in capsys.readouterr().err
