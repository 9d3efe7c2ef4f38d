"""`tools/average_models.py`: the weighted mean of two models, leaf by leaf; different
models and a taken `--out` are refused with a clear message and nothing written."""
import json
import pathlib
import sys

import jax
import numpy as np

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models.dealthdr import DeAltHDR

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import average_models  # noqa: E402  pylint: disable=wrong-import-position


def _save(folder, name, seed):
  config = config_loading.load_config(f"{name}:size=tiny")
  params = model_files.init_params(DeAltHDR.from_config(config.model), seed=seed)
  model_files.save_params(folder, params, config, {"name": folder.name})
  return params


def test_average_is_the_weighted_mean_and_refuses_what_it_cannot_average(tmp_path, capsys):
  a = _save(tmp_path / "a", "dealthdr_2exp", seed=1)
  b = _save(tmp_path / "b", "dealthdr_2exp", seed=2)
  assert average_models.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                              "--weight", "0.25", "--out", str(tmp_path / "mix")]) == 0
  mixed, config = model_files.load_params(tmp_path / "mix")
  assert config.pattern == "2exp"
  for m, x, y in zip(jax.tree.leaves(mixed), jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(m, 0.25 * np.asarray(x) + 0.75 * np.asarray(y), rtol=1e-6,
                               atol=1e-7)
  card = json.loads((tmp_path / "mix" / model_files.CARD_FILE).read_text())
  assert card["weight"] == 0.25 and len(card["parents"]) == 2

  _save(tmp_path / "three", "dealthdr_3exp", seed=1)
  assert average_models.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "three"),
                              "--out", str(tmp_path / "bad")]) == 2
  assert "are different models: model.radius" in capsys.readouterr().err
  assert not (tmp_path / "bad").exists()
  before = (tmp_path / "mix" / model_files.PARAMS_FILE).read_bytes()
  assert average_models.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                              "--out", str(tmp_path / "mix")]) == 2
  assert "exists and is not empty" in capsys.readouterr().err
  assert (tmp_path / "mix" / model_files.PARAMS_FILE).read_bytes() == before
