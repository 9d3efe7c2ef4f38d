"""The Python API (`dealthdr_jax.load`): arrays, clip folders and `reconstruct` give the
same HDR as `dealthdr infer`, one compiled program serves them all, and bad input is named.

A tiny freshly initialised model (saved as a params-only folder) keeps compilation short;
the shipped models are only loaded, not run (test_shipped_model runs them).
"""
import json

import numpy as np
import pytest

import dealthdr_jax
from data_pipeline import clips
from data_pipeline import hdr_io
from dealthdr_jax import model_files
from dealthdr_jax.inference import infer


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
  loaded = model_files.load_model(config="dealthdr_2exp:size=tiny", seed=3)
  return model_files.save_params(tmp_path_factory.mktemp("tiny") / "model", loaded.params,
                                 loaded.config)


def _codes(folder):
  with clips.open_clip(folder) as clip:
    return np.stack([clip.frame_codes(i) for i in range(len(clip))]), clip.stops


def test_arrays_folders_and_reconstruct_agree_with_infer(static_clip, tiny_model_dir,
                                                         tmp_path):
  folder, _ = static_clip
  codes, stops = _codes(folder)                                     # uint16 [5, 36, 52, 3]
  model = dealthdr_jax.load(tiny_model_dir, ratio=0.5)
  hdr = model(codes, stops)
  assert hdr.shape == (5, 36, 52, 3) and hdr.dtype == np.float32
  assert np.isfinite(hdr).all() and hdr.min() >= 0
  # The same frames as floats, a repeating stops pattern, and the clip folder itself.
  np.testing.assert_allclose(model(codes / 65535.0, (0, 3)), hdr, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(np.stack(list(model.stream(folder))), hdr)
  # `reconstruct` writes what `dealthdr infer` writes, with the program already compiled.
  summary = model.reconstruct(folder, tmp_path / "api", preview=False)
  assert summary["compile_s"] == 0 and summary["programs_compiled"] == 1
  infer.run_inference(str(folder), str(tmp_path / "cli"), checkpoint=str(tiny_model_dir),
                      attn_ratio=0.5, preview=False, progress=False)
  for t in range(5):
    name = f"frame_{t:03d}.exr"
    np.testing.assert_array_equal(hdr_io.read_hdr(tmp_path / "api" / "hdr" / name), hdr[t])
    np.testing.assert_array_equal(hdr_io.read_hdr(tmp_path / "cli" / "hdr" / name), hdr[t])
  assert json.loads((tmp_path / "api" / "run.json").read_text())["frames"] == 5
  # Streaming yields frame by frame (a generator, not a list made up front).
  stream = model.stream(codes, stops)
  np.testing.assert_array_equal(next(stream), hdr[0])
  stream.close()
  # A self-ensemble of 2: the mean with the left-right mirrored clip, mirrored back.
  mirrored = model(codes[:, :, ::-1], stops)[:, :, ::-1]
  ensemble = dealthdr_jax.load(tiny_model_dir, ratio=0.5, self_ensemble=2)
  np.testing.assert_allclose(ensemble(codes, stops), (hdr + mirrored) / 2, rtol=1e-5,
                             atol=1e-7)


def test_bad_inputs_are_named(static_clip, tiny_model_dir):
  folder, _ = static_clip
  codes, stops = _codes(folder)
  model = dealthdr_jax.load(tiny_model_dir)
  with pytest.raises(ValueError, match="need stops"):
    model(codes)
  with pytest.raises(clips.ClipError, match=r"frame 0 has shape \(36, 52\)"):
    model(codes[..., 0], stops)
  with pytest.raises(clips.ClipError, match="1 frame"):
    model(codes[:1], stops[:1])
  with pytest.raises(clips.ClipError, match="6 value"):
    model(codes, [0, 3, 0, 3, 0, 3])
  with pytest.raises(clips.ClipError, match="frame 1 is 36x50"):
    model([codes[0], codes[1, :, :50]], (0, 3))
  with pytest.raises(clips.ClipError, match="dtype int32"):
    model(codes.astype(np.int32), stops)
  floats = codes / 65535.0
  floats[2, 0, 0, 0] = 1.5
  with pytest.raises(clips.ClipError, match=r"frame 2 of the input array has values outside"):
    model(floats, stops)
  with pytest.raises(FileNotFoundError, match="nope"):
    dealthdr_jax.load("nope")
  with pytest.raises(ValueError, match="self_ensemble must be one of"):
    dealthdr_jax.load(tiny_model_dir, self_ensemble=8)
  with pytest.raises(ValueError, match="flow_pair must be one of"):
    dealthdr_jax.load(tiny_model_dir, flow_pair="both")


def test_shipped_models_load_by_short_name():
  two, three = dealthdr_jax.load("2exp"), dealthdr_jax.load("3exp", ratio=1.0, tile=256)
  assert "dealthdr_2exp" in two.description and two.radius == 1 and two.ratio == 0.125
  assert "dealthdr_3exp" in three.description and three.radius == 2 and three.ratio == 1.0
  assert three.tile == 256 and three.config.pattern == "3exp"
  # The flow_pair switch (no parameters) is set on the module that runs, and named.
  assert two.model.flow_pair == "off" and "flow_pair" not in two.description
  paired = dealthdr_jax.load("2exp", flow_pair="select")
  assert paired.model.flow_pair == "select" and paired.description.endswith("flow_pair select")
