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


def test_average_is_the_weighted_mean_and_refuses_what_it_cannot_average(tmp_path, capsys):
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  a = model_files.init_params(DeAltHDR.from_config(config.model), seed=1)  # One compilation.
  b = jax.tree.map(lambda x: np.asarray(x) * -2.0 + 1.0, a)
  model_files.save_params(tmp_path / "a", a, config, {"name": "a"})
  model_files.save_params(tmp_path / "b", b, config, {"name": "b"})
  assert average_models.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                              "--weight", "0.25", "--out", str(tmp_path / "mix")]) == 0
  mixed, config = model_files.load_params(tmp_path / "mix")
  assert config.pattern == "2exp"
  for m, x, y in zip(jax.tree.leaves(mixed), jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(m, 0.25 * np.asarray(x) + 0.75 * np.asarray(y), rtol=1e-6,
                               atol=1e-7)
  card = json.loads((tmp_path / "mix" / model_files.CARD_FILE).read_text())
  assert card["weight"] == 0.25 and len(card["parents"]) == 2

  # Another model (a 3-exposure window): refused from the configs, before any arithmetic.
  other = config.copy_and_resolve_references()
  other.model.radius = 2
  model_files.save_params(tmp_path / "three", a, other, {"name": "three"})
  assert average_models.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "three"),
                              "--out", str(tmp_path / "bad")]) == 2
  assert "are different models: model.radius" in capsys.readouterr().err
  assert not (tmp_path / "bad").exists()
  before = (tmp_path / "mix" / model_files.PARAMS_FILE).read_bytes()
  assert average_models.main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                              "--out", str(tmp_path / "mix")]) == 2
  assert "exists and is not empty" in capsys.readouterr().err
  assert (tmp_path / "mix" / model_files.PARAMS_FILE).read_bytes() == before
