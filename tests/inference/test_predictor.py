"""Host-side prediction: tiling covers the frame seamlessly and matches untiled output."""
import jax
import numpy as np
import pytest

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.inference import predictor as predictor_lib
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


def test_tiled_prediction_matches_untiled():
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = model_files.init_params(model, seed=5)
  # Make every layer active (zero-initialised flow and output heads included), so the
  # output depends on the receptive field that tiling cuts.
  # The flow network gets less: with fully random weights its cost volumes turn a static
  # scene into flow fields of ±10 px that hinge on every tile border (its receptive field
  # spans the whole tile), which no trained flow does on a static scene.
  noise = np.random.default_rng(1)
  params = {name: jax.tree.map(
      lambda x, s=(0.002 if name == "flow" else 0.05): x + s * noise.normal(size=x.shape).astype(
          x.dtype), group) for name, group in params.items()}
  rng = np.random.default_rng(0)
  # A smooth, well-exposed static scene (what tiling must not disturb) plus mild noise.
  # A multiple of the pad size, so that only tiling (not edge padding) differs.
  yy, xx = np.mgrid[0:80, 0:96] / 96.0
  radiance = (0.03 + 0.02 * np.sin(6 * xx + 4 * yy))[..., None] * np.array([1.0, 0.8, 0.6])
  stops = np.array([0.0, 2.0, 0.0], np.float32)
  frames = np.stack([np.clip(radiance * 2 ** s, 0, 1) ** (1 / 2.2) for s in stops])
  frames = np.clip(frames + rng.normal(0, 0.003, frames.shape), 0, 1).astype(np.float32)
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
