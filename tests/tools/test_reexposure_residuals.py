"""tools/reexposure_residuals.py: stage 2's re-exposure comparison of a model, per level."""
import json
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from data_pipeline import synth
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models import response as resp
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import losses
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import reexposure_residuals  # noqa: E402  pylint: disable=wrong-import-position


def test_per_level_medians_and_sign_balance_follow_the_residual_of_each_level():
  rng = np.random.default_rng(0)
  levels = np.asarray(reexposure_residuals.LEVELS)
  truth = 0.01 * np.sin(levels * 7)              # a residual that differs level by level
  held = levels < 0.8                            # nothing rendered at the top levels
  n = reexposure_residuals.MIN_VALUES + 500
  predicted = np.concatenate([rng.uniform(v - 0.02, v + 0.02, n) for v in levels[held]])
  residual = (np.repeat(truth[held], n) + rng.laplace(0, 0.01, predicted.size)
              + np.where(rng.random(predicted.size) < 0.1, 0.5, 0.0))  # 10 % outliers
  table = reexposure_residuals.per_level(predicted, residual)
  assert table["counts"] == [n if h else 0 for h in held]
  medians = np.asarray([m for m in table["median"] if m is not None])
  assert [m is None for m in table["median"]] == [not h for h in held]
  # The median moves by < 0.0015 for the outliers; the sign balance follows the residual.
  np.testing.assert_allclose(medians, truth[held], atol=2.5e-3)
  balance = np.asarray([s for s in table["sign_balance"] if s is not None])
  assert np.all(np.sign(balance[np.abs(truth[held]) > 0.005])
                == np.sign(truth[held][np.abs(truth[held]) > 0.005]))


def test_the_levels_are_bins_over_the_loss_s_well_exposed_range():
  edges = reexposure_residuals.EDGES
  assert edges[0] == losses.WELL_EXPOSED_LOW and edges[-1] == losses.WELL_EXPOSED_HIGH
  assert len(reexposure_residuals.LEVELS) == len(edges) - 1 == 18


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A tiny untrained 2-exposure model folder and one small clip."""
  root = tmp_path_factory.mktemp("residuals")
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  model_files.save_params(root / "model", model_files.init_params(model), config,
                          {"name": "tiny"})
  clips = synth.write_clips(root / "clips", num_clips=1, num_frames=5, size=(64, 96), seed=3)
  return root, clips


def test_measure_reports_the_loss_s_comparison_and_main_compares_tables(tiny, capsys):
  root, clips = tiny
  table = reexposure_residuals.measure(str(root / "model"), clips)
  assert table["fingerprint"] == model_files.fingerprint(root / "model")
  assert sum(table["counts"]) > 0 and len(table["median"]) == 18
  out = root / "table.json"
  assert reexposure_residuals.main([str(clips[0].parent), "--checkpoint",
                                    str(root / "model"), "--json", str(out)]) == 0
  written = json.loads(out.read_text())
  assert written["median"] == table["median"] and written["counts"] == table["counts"]
  assert reexposure_residuals.main([str(clips[0]), "--checkpoint", str(root / "model"),
                                    "--against", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "minus --against" in printed and "+0.00" in printed
  with pytest.raises(SystemExit, match="not a table of this tool"):
    reexposure_residuals.main([str(clips[0]), "--against", str(root / "model" / "card.json")])
  with pytest.raises(SystemExit, match="no such clip folder"):
    reexposure_residuals.main([str(root / "missing")])
  with pytest.raises(SystemExit, match="give clips, or --sources"):
    reexposure_residuals.main([])


def test_comparison_is_what_the_loss_averages():
  rng = np.random.default_rng(2)
  hdr = jnp.asarray(rng.uniform(0.01, 0.6, (1, 16, 16, 3)), jnp.float32)
  stops = jnp.asarray([[0.0, 1.5, 0.0]])
  frames = jnp.asarray(rng.uniform(0, 1, (1, 3, 16, 16, 3)), jnp.float32)
  flow = jnp.asarray(rng.normal(0, 2, (1, 2, 16, 16, 2)), jnp.float32)
  predicted, observed, mask = losses.reexposure_comparison(hdr, frames, stops, flow)
  assert predicted.shape == observed.shape == (1, 3, 16, 16, 3) and mask.shape[-1] == 1
  # The reference (frame 1, 1.5 stops) first, then its neighbours in frame order.
  np.testing.assert_allclose(predicted[:, 0], resp.apply_response(
      jnp.clip(hdr * 2.0 ** 1.5, 0, 1), "gamma2.2"), rtol=1e-5)
  np.testing.assert_allclose(predicted[:, 1], resp.apply_response(hdr, "gamma2.2"), rtol=1e-5)
  np.testing.assert_allclose(observed[:, 0], frames[:, 1])
  expected = float(jnp.sum(jnp.abs(predicted - observed) * mask) / (3 * jnp.sum(mask)))
  assert float(losses.reexposure_loss(hdr, frames, stops, flow)) == pytest.approx(expected)
