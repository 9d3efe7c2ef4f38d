"""tools/oracle_alignment.py: the oracle puts the simulator's flow where the model's own
forward flow was, and leaves everything else to the model."""
import pathlib
import sys

import jax
import numpy as np

from dealthdr_jax import config_loading
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import losses
from dealthdr_jax.training import toy_data
from dealthdr_jax.training import train
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import oracle_alignment  # noqa: E402  pylint: disable=wrong-import-position


def test_the_oracle_aligns_with_the_simulators_flow():
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model).clone(flow_fill=False)
  params = jax.tree_util.tree_map_with_path(  # a flow that moves pixels
      lambda path, x: x + 0.01 if "out" in jax.tree_util.keystr(path) else x,
      train.initial_params(model, 0))
  samples = [toy_data.sample(3, i, frames=model.window, crop=32) for i in range(2)]
  batch = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
  gt = oracle_alignment.neighbour_flow(batch)
  assert gt.shape == (2, model.window - 1, 32, 32, 2) and np.abs(gt).max() > 0

  @jax.jit
  def run(p, b, g):
    return oracle_alignment.with_flow(
        lambda: model.apply({"params": p}, b["frames"], b["stops"], ratio=0.0), g)

  hdr_own, own = run(params, batch, None)
  hdr_oracle, oracle = run(params, batch, gt)
  want = losses.downsample_flow(gt, 8, 8)
  np.testing.assert_allclose(oracle["flow_aligned"], want, atol=1e-5)
  assert np.abs(np.asarray(own["flow_aligned"]) - want).max() > 0.05
  # The coarser levels are the network's own either way; only the finest one changes.
  for a, b in zip(own["flow_pyramid"][:-1], oracle["flow_pyramid"][:-1]):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(oracle["flow_pyramid"][-1], want, atol=1e-5)
  assert not np.allclose(hdr_own, hdr_oracle)
