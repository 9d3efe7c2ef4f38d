"""Host-side prediction: tiling covers the frame seamlessly and matches untiled output; the
self-ensemble is the mean of the mirrored predictions."""
import jax
import numpy as np
import pytest

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.inference import predictor as predictor_lib
from dealthdr_jax.models import dealthdr as dealthdr_lib
from dealthdr_jax.models.dealthdr import DeAltHDR


@pytest.mark.parametrize("length,tile,overlap", [(100, 32, 8), (64, 32, 16), (31, 32, 8),
                                                  (97, 40, 12)])
def test_tiles_cover_and_weights_partition(length, tile, overlap):
  starts = predictor_lib.tile_starts(length, tile, overlap)
  size = min(tile, length)
  cover = np.zeros(length)
  for s in starts:
    assert 0 <= s and s + size <= length
    cover[s:s + size] += predictor_lib.blend_ramp(length, s, size, overlap)
  assert cover.min() > 0.49  # every pixel gets real weight, none is dropped


def test_tile_overlap_must_be_smaller_than_tile():
  with pytest.raises(ValueError, match="overlap"):
    predictor_lib.tile_starts(100, 16, 16)


def active_tiny_model():
  """A tiny 2exp model with every layer active (zero-initialised flow and output heads
  included), so the output depends on the receptive field that tiling cuts and on the
  window's orientation.

  The flow network gets less: with fully random weights its cost volumes turn a static
  scene into flow fields of ±10 px that hinge on every tile border (its receptive field
  spans the whole tile), which no trained flow does on a static scene.
  """
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = model_files.init_params(model, seed=5)
  noise = np.random.default_rng(1)
  params = {name: jax.tree.map(
      lambda x, s=(0.002 if name == "flow" else 0.05): x + s * noise.normal(size=x.shape).astype(
          x.dtype), group) for name, group in params.items()}
  return model, params


def smooth_window():
  """A smooth, well-exposed static scene (what tiling must not disturb) plus mild noise,
  80×96 (a multiple of the pad size, so that only tiling, not edge padding, differs).

  Returns:
    frames [3, 80, 96, 3] float32 in [0, 1], stops [3].
  """
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:80, 0:96] / 96.0
  radiance = (0.03 + 0.02 * np.sin(6 * xx + 4 * yy))[..., None] * np.array([1.0, 0.8, 0.6])
  stops = np.array([0.0, 2.0, 0.0], np.float32)
  frames = np.stack([np.clip(radiance * 2 ** s, 0, 1) ** (1 / 2.2) for s in stops])
  frames = np.clip(frames + rng.normal(0, 0.003, frames.shape), 0, 1).astype(np.float32)
  return frames, stops


def test_tiled_prediction_matches_untiled():
  model, params = active_tiny_model()
  frames, stops = smooth_window()
  full = predictor_lib.Predictor(model, params, ratio=0.25).predict(frames, stops)
  tiled_pred = predictor_lib.Predictor(model, params, ratio=0.25, tile=64, overlap=32)
  tiled = tiled_pred.predict(frames, stops)
  assert tiled_pred.num_programs == 1  # every tile reuses one compiled program
  assert tiled.shape == full.shape == (80, 96, 3)
  rel = np.abs(tiled - full) / (full + 1e-3)
  # FGMA picks the top `ratio` share per tile rather than per frame, so a few tokens differ.
  assert np.median(rel) < 0.005 and np.percentile(rel, 99) < 0.05, (np.median(rel), rel.max())
  # The untiled output is not trivially the same everywhere: tiling had something to break.
  untrained = predictor_lib.Predictor(model, model_files.init_params(model, seed=5), 0.25)
  assert np.abs(untrained.predict(frames, stops) - full).max() > 1e-3


def test_self_ensemble_is_the_mean_of_mirrored_predictions():
  model, params = active_tiny_model()
  frames, stops = smooth_window()
  single = predictor_lib.Predictor(model, params, ratio=0.25)
  # Reference: each mirrored window predicted on its own, mirrored back with explicit flips.
  copies = [single.predict(frames, stops),
            single.predict(frames[:, :, ::-1], stops)[:, ::-1],
            single.predict(frames[:, ::-1], stops)[::-1],
            single.predict(frames[:, ::-1, ::-1], stops)[::-1, ::-1]]
  # The model is not mirror-symmetric, so the mean is not trivially the plain prediction.
  assert max(np.abs(c - copies[0]).max() for c in copies[1:]) > 1e-4
  for n in (2, 4):
    ensemble = predictor_lib.Predictor(model, params, ratio=0.25, self_ensemble=n)
    np.testing.assert_allclose(ensemble.predict(frames, stops), np.mean(copies[:n], axis=0),
                               rtol=1e-5, atol=1e-7)
    assert ensemble.num_programs == 1  # every copy has the window's shape
  # Tiled, each copy is tiled in its own orientation: still close to the untiled mean.
  tiled = predictor_lib.Predictor(model, params, ratio=0.25, tile=64, overlap=32,
                                  self_ensemble=4).predict(frames, stops)
  rel = np.abs(tiled - np.mean(copies, axis=0)) / (copies[0] + 1e-3)
  assert np.median(rel) < 0.005, np.median(rel)
  with pytest.raises(ValueError, match="self-ensemble must be one of"):
    predictor_lib.Predictor(model, params, ratio=0.25, self_ensemble=3)


def test_clip_edge_windows_get_their_own_program(moving_tiny_3exp, monkeypatch):
  """A window whose slots hold the frames they stand for (any window of a two-exposure
  clip, and every one inside a clip) runs the one program; a three-exposure window filled
  in at a clip's edge, whose slots hold further frames, runs the model with its `offsets`
  (chained flow, `dealthdr.chain_plan`), compiled once for that window's layout, and where
  no slot takes the chained flow it gets the one program's output, bit for bit."""
  _, model, params = moving_tiny_3exp
  rng = np.random.default_rng(2)
  frames = rng.uniform(0.1, 0.7, (5, 64, 64, 3)).astype(np.float32)
  stops = np.array([4.0, 0.0, 2.0, 4.0, 0.0], np.float32)
  monkeypatch.setattr(dealthdr_lib, "CHAIN_MARGIN", 1e9)   # Always chained: it shows.
  predictor = predictor_lib.Predictor(model, params, ratio=0.0)
  plain = predictor.predict(frames, stops)
  np.testing.assert_array_equal(predictor.predict(frames, stops, offsets=(-2, -1, 0, 1, 2)),
                                plain)
  assert predictor.num_programs == 1
  edge = predictor.predict(frames, stops, offsets=(1, 2, 0, 1, 2))
  assert predictor.num_programs == 2
  expected = model.apply({"params": params}, frames[None], stops[None], ratio=0.0,
                         offsets=(1, 2, 0, 1, 2))[0][0]
  np.testing.assert_allclose(edge, np.asarray(expected), rtol=1e-5, atol=1e-6)
  assert np.abs(edge - plain).max() > 0
  predictor.predict(frames, stops, offsets=(1, 2, 0, 1, 2))
  assert predictor.num_programs == 2
  monkeypatch.setattr(dealthdr_lib, "CHAIN_MARGIN", 0.0)   # Never chained.
  unchained = predictor_lib.Predictor(model, params, ratio=0.0)
  np.testing.assert_array_equal(unchained.predict(frames, stops, offsets=(1, 2, 0, 1, 2)),
                                plain)
