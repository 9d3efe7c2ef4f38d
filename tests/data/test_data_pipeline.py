"""grain pipelines: determinism per (seed, index), workers, sharding, checkpoints, flips."""
import numpy as np
import pytest
from scipy import ndimage

from data_pipeline import patterns
from data_pipeline import pipeline
from data_pipeline import simulator

CONFIG = simulator.SimulatorConfig(size=(32, 32))


def _equal(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_batch_layout():
  it = iter(pipeline.make_synthetic_loader(CONFIG.replace(pattern="3exp"), seed=0, batch_size=2))
  b = next(it)
  assert b["frames"].shape == (2, 5, 32, 32, 3) and b["frames"].dtype == np.float32
  assert b["stops"].shape == (2, 5) and b["hdr"].shape == (2, 32, 32, 3)
  assert b["flow"].shape == (2, 5, 32, 32, 2) and b["occlusion"].shape == (2, 5, 32, 32)
  assert b["response_id"].shape == (2,) and b["noise_ab"].shape == (2, 2)
  np.testing.assert_array_equal(b["index"], [0, 1])
  # The reference (centre) frame has zero flow, whatever the augmentation did.
  assert not b["flow"][:, 2].any()


def test_sample_depends_only_on_seed_and_index():
  ds = pipeline.synthetic_dataset(CONFIG, seed=3)
  a, b = ds[5], ds[5]
  assert _equal(a, b)
  assert not np.array_equal(ds[6]["frames"], a["frames"])
  assert not np.array_equal(pipeline.synthetic_dataset(CONFIG, seed=4)[5]["frames"], a["frames"])


def test_checkpoint_resume_and_worker_count_give_identical_batches():
  kwargs = dict(seed=1, batch_size=2)
  it0 = iter(pipeline.make_synthetic_loader(CONFIG, worker_count=0, **kwargs))
  first = _take(it0, 2)
  state = it0.get_state()
  rest = _take(it0, 2)
  # Resume from the saved state in a fresh iterator.
  it1 = iter(pipeline.make_synthetic_loader(CONFIG, worker_count=0, **kwargs))
  it1.set_state(state)
  assert all(_equal(x, y) for x, y in zip(_take(it1, 2), rest))
  # Two worker processes: the same stream.
  it2 = iter(pipeline.make_synthetic_loader(CONFIG, worker_count=2, **kwargs))
  got = _take(it2, 4)
  state2 = it2.get_state()
  assert all(_equal(x, y) for x, y in zip(got, first + rest))
  it2.close()
  it3 = iter(pipeline.make_synthetic_loader(CONFIG, worker_count=2, **kwargs))
  it3.set_state(state2)
  nxt = next(it3)
  it3.close()
  np.testing.assert_array_equal(nxt["index"], [8, 9])
  assert _equal(nxt, next(it0))


def test_shards_are_disjoint_and_cover_the_stream():
  seen = []
  for shard in range(2):
    it = iter(pipeline.make_synthetic_loader(CONFIG, seed=2, batch_size=2, shard_index=shard,
                                             shard_count=2, num_samples=8, num_epochs=1))
    seen.append(np.concatenate([b["index"] for b in it]))
  assert set(seen[0]).isdisjoint(seen[1])
  assert sorted(np.concatenate(seen)) == list(range(8))
  with pytest.raises(ValueError, match="shard_index"):
    pipeline.synthetic_dataset(CONFIG, seed=0, shard_index=2, shard_count=2)


def _warp(image, flow):
  h, w = flow.shape[:2]
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  coords = [yy + flow[..., 1], xx + flow[..., 0]]
  return np.stack([ndimage.map_coordinates(image[..., c], coords, order=1, mode="nearest")
                   for c in range(3)], -1)


@pytest.mark.parametrize("flip", [pipeline.hflip, pipeline.vflip])
def test_flips_keep_flow_consistent(flip):
  # A noiseless linear camera so frames are exposures of the radiance (linear warps apply).
  config = simulator.SimulatorConfig(size=(48, 48), noise=None, responses=("linear",),
                                     response_weights=None, bits=(12,), duty=(0.01, 0.01))
  s = simulator.render_clip(2, config)
  s.pop("meta")
  f = flip(s)
  for sample in (s, f):
    ref = sample["frames"][1] / 2.0 ** sample["stops"][1]
    for j in (0, 2):
      nb = sample["frames"][j] / 2.0 ** sample["stops"][j]
      valid = ~ndimage.binary_dilation(sample["occlusion"][j], iterations=2)
      ok = valid & np.all((sample["frames"][j] > 0.02) & (sample["frames"][j] < 0.98), -1) & (
          np.all((sample["frames"][1] > 0.02) & (sample["frames"][1] < 0.98), -1))
      err = np.abs(_warp(nb, sample["flow"][j]) - ref)[ok] / (ref[ok] + 1e-6)
      assert np.median(err) < 0.05
  # And the flip is not a no-op on the flow.
  assert not np.array_equal(f["flow"], s["flow"])


def test_time_reversal_and_crop():
  s = simulator.render_clip(1, CONFIG.replace(size=(40, 48)))
  s.pop("meta")
  r = pipeline.reverse_time(s)
  np.testing.assert_array_equal(r["stops"], s["stops"][::-1])
  np.testing.assert_array_equal(r["hdr"], s["hdr"])
  c = pipeline.Augment(crop=(16, 24), flips=False, time_reversal=False)(
      s, np.random.default_rng(0))
  assert c["frames"].shape == (3, 16, 24, 3) and c["flow"].shape == (3, 16, 24, 2)
  with pytest.raises(ValueError, match="larger than the rendered size"):
    pipeline.Augment(crop=(64, 64))(s, np.random.default_rng(0))


def test_validation_set_is_fixed_and_uses_held_out_sources(hdr_sources_dir):
  config = CONFIG.replace(source_dir=str(hdr_sources_dir), procedural_fraction=0.0)
  a = pipeline.make_validation_set(config, num_samples=3, batch_size=2)
  b = pipeline.make_validation_set(config, num_samples=3, batch_size=2)
  assert [x["frames"].shape[0] for x in a] == [2, 1]
  assert all(_equal(x, y) for x, y in zip(a, b))
  assert pipeline.validation_config(config).source_split == "val"
  # Training may weight the reference's exposure level; validation stays uniform.
  weighted = config.replace(patterns=patterns.PatternConfig(reference_weights=(0.0, 1.0)))
  assert pipeline.validation_config(weighted).patterns == patterns.PatternConfig()


def test_config_from_plain_dict():
  c = pipeline.as_config({"size": [64, 96], "pattern": "3exp", "motion": {"num_layers": [0, 1]},
                          "noise": None})
  assert c.size == (64, 96) and c.motion.num_layers == (0, 1) and c.noise is None
  assert c.num_frames == 5


def test_experiment_config_and_other_camera():
  experiment = {"pattern": "3exp", "model": {"radius": 2},
                "data": {"crop": 32, "simulator": {"noise": None}}}
  c = pipeline.as_config(experiment)
  assert c.size == (32, 32) and c.num_frames == 5 and c.noise is None
  b = next(pipeline.make_synthetic_loader(experiment, seed=0, batch_size=1, other_camera=True))
  assert b["frames"].shape == (1, 5, 32, 32, 3)
  assert b["response_id"][0] == 3  # "sigmoid": stage-2 camera.
  samples = pipeline.make_validation_set(c, size=2)
  assert len(samples) == 2 and samples[0]["frames"].shape == (5, 32, 32, 3)
