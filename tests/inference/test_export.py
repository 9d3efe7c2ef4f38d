"""Export round trip: the StableHLO program, run without the model code, equals the model."""
import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.inference import export as export_lib
from dealthdr_jax.inference import exported_program as exported_lib
from dealthdr_jax.inference import predictor as predictor_lib
from dealthdr_jax.models import dealthdr as dealthdr_lib
from dealthdr_jax.models.dealthdr import DeAltHDR


def test_export_round_trip_without_model_code(tmp_path):
  config = config_loading.load_config("dealthdr_2exp:size=tiny,ratio=0.5")
  model = DeAltHDR.from_config(config.model)
  noise = np.random.default_rng(0)
  params = jax.tree.map(lambda x: x + 0.05 * noise.normal(size=x.shape).astype(x.dtype),
                        model_files.init_params(model))
  ckpt = model_files.save_params(tmp_path / "ckpt", params, config, card={"steps": 7})
  out = export_lib.export(str(ckpt), str(tmp_path / "export"), 48, 40, ratio=None)
  assert json.loads((out / "card.json").read_text()) == {"steps": 7}
  assert json.loads((out / "program.json").read_text())["ratio"] == 0.5

  rng = np.random.default_rng(1)
  frames = rng.uniform(0, 1, (1, 3, 48, 40, 3)).astype(np.float32)
  stops = np.array([[0.0, 3.0, 0.0]], np.float32)
  np.save(tmp_path / "frames.npy", frames)
  np.save(tmp_path / "stops.npy", stops)
  expected = jax.jit(lambda f, s: model.apply({"params": params}, f, s, ratio=0.5)[0])(frames, stops)

  # A fresh interpreter runs the folder's own script; the model code must not be imported.
  code = ("import sys, runpy\n"
          "folder, frames, stops, out = sys.argv[1:5]\n"
          "sys.argv = ['run_exported.py', '--folder', folder, '--frames', frames, '--stops', stops, '--out', out]\n"
          "try:\n  runpy.run_path(folder + '/run_exported.py', run_name='__main__')\n"
          "except SystemExit as e:\n  assert not e.code, e.code\n"
          "leaked = [m for m in sys.modules if m.startswith(('dealthdr_jax', 'flax', 'data_pipeline'))]\n"
          "assert not leaked, leaked\n")
  subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "frames.npy"),
                  str(tmp_path / "stops.npy"), str(tmp_path / "hdr.npy")],
                 check=True, cwd=tmp_path)
  np.testing.assert_allclose(np.load(tmp_path / "hdr.npy"), expected, rtol=1e-5, atol=1e-7)


def test_export_refuses_bad_requests(tmp_path):
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  ckpt = model_files.save_params(tmp_path / "ckpt", model_files.init_params(model), config)
  with pytest.raises(ValueError, match="at least"):
    export_lib.export(str(ckpt), str(tmp_path / "e1"), 8, 8, ratio=0.0)
  assert not (tmp_path / "e1").exists()
  (tmp_path / "e2").mkdir()
  (tmp_path / "e2" / "keep.txt").write_text("user data")
  with pytest.raises(FileExistsError, match="not empty"):
    export_lib.export(str(ckpt), str(tmp_path / "e2"), 32, 32, ratio=0.0)
  assert (tmp_path / "e2" / "keep.txt").read_text() == "user data"
  with pytest.raises(FileNotFoundError, match="params-only checkpoint"):
    export_lib.export(str(tmp_path), str(tmp_path / "e3"), 32, 32, ratio=0.0)


def test_exported_clip_edge_windows_match_infer(tmp_path, moving_tiny_3exp, monkeypatch):
  """A three-exposure export carries a program for each clip-edge window layout; run with
  that window's offsets it gives what `dealthdr infer`'s predictor gives (chained flow
  where chosen, else the plain program's output, bit for bit); two exposures need none."""
  assert predictor_lib.edge_layouts(1, 2) == [] and predictor_lib.edge_layouts(2, 2) == []
  start, end = (1, 2, 0, 1, 2), (-2, -1, 0, -2, -1)
  assert predictor_lib.edge_layouts(2, 3) == [end, start]
  config, model, params = moving_tiny_3exp
  rng = np.random.default_rng(2)
  ckpt = model_files.save_params(tmp_path / "ckpt", params, config)
  frames = rng.uniform(0.1, 0.7, (1, 5, 32, 32, 3)).astype(np.float32)
  stops = np.array([[2.0, 4.0, 0.0, 2.0, 4.0]], np.float32)

  monkeypatch.setattr(dealthdr_lib, "CHAIN_MARGIN", 1e9)   # Always chained: it shows.
  out = export_lib.export(str(ckpt), str(tmp_path / "chained"), 32, 32, ratio=0.0)
  spec = json.loads((out / "program.json").read_text())
  assert [tuple(e["offsets"]) for e in spec["edge_programs"]] == [end, start]
  run = exported_lib.load(out)
  predictor = predictor_lib.Predictor(model, params, ratio=0.0)
  plain = run(frames, stops)
  edge = run(frames, stops, offsets=start)
  np.testing.assert_allclose(edge[0], predictor.predict(frames[0], stops[0], offsets=start),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(plain[0], predictor.predict(frames[0], stops[0]),
                             rtol=1e-5, atol=1e-6)
  assert np.abs(edge - plain).max() > 1e-4
  np.testing.assert_array_equal(run(frames, stops, offsets=(-2, -1, 0, 1, 2)), plain)
  with pytest.raises(ValueError, match="5 frame distances with 0 at the reference"):
    run(frames, stops, offsets=(1, 2, 0))

  monkeypatch.setattr(dealthdr_lib, "CHAIN_MARGIN", 0.0)   # Never chained.
  out = export_lib.export(str(ckpt), str(tmp_path / "unchained"), 32, 32, ratio=0.0)
  run = exported_lib.load(out)
  np.testing.assert_array_equal(run(frames, stops, offsets=start), run(frames, stops))

  (out / exported_lib.edge_program_file(end)).unlink()
  with pytest.raises(FileNotFoundError, match=r"program_edge_m2_m1_0_m2_m1.stablehlo"):
    exported_lib.load(out)


def test_run_exported_takes_each_window_from_the_program_that_chained_it(tmp_path):
  """The runner's choice per window of a batch, on stand-in programs (no model): an edge
  program's output where it says the window chained, the plain program's elsewhere."""
  shape = (3, 5, 4, 6, 3)
  start = (1, 2, 0, 1, 2)
  args = ([jax.ShapeDtypeStruct((), np.float32)], jax.ShapeDtypeStruct(shape, np.float32),
          jax.ShapeDtypeStruct(shape[:2], np.float32))
  plain = lambda leaves, f, s: f[:, 2] * leaves[0]
  edge = lambda leaves, f, s: (f[:, 2] * leaves[0] + 1.0, s[:, 0] > 0)
  for name, fn in ((exported_lib.PROGRAM_FILE, plain),
                   (exported_lib.edge_program_file(start), edge)):
    (tmp_path / name).write_bytes(jax.export.export(jax.jit(fn))(*args).serialize())
  (tmp_path / exported_lib.SPEC_FILE).write_text(json.dumps({
      "frames_shape": list(shape), "num_leaves": 1,
      "edge_programs": [{"offsets": list(start),
                         "file": exported_lib.edge_program_file(start)}]}))
  np.savez(tmp_path / exported_lib.LEAVES_FILE, leaf_00000=np.float32(2.0))
  run = exported_lib.load(tmp_path)
  frames = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
  stops = np.array([[1.0] * 5, [0.0] * 5, [3.0] * 5], np.float32)  # Windows 0 and 2 chain.
  out = run(frames, stops, offsets=start)
  chained = np.array([1.0, 0.0, 1.0])[:, None, None, None]
  np.testing.assert_allclose(out, 2.0 * frames[:, 2] + chained, rtol=1e-6)
  np.testing.assert_allclose(run(frames, stops), 2.0 * frames[:, 2], rtol=1e-6)
  np.testing.assert_allclose(run(frames, np.ones_like(stops), offsets=start),
                             2.0 * frames[:, 2] + 1.0, rtol=1e-6)
