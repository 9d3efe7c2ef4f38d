"""`tools/ship_model.py`: a model with results replaces a shipped one only if it passes the
ship rule against the shipped card (or the failure is accepted with a reason, recorded in
the card); a refused candidate leaves the shipped folder untouched."""
import json
import pathlib
import sys

from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models.dealthdr import DeAltHDR

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import ship_model  # noqa: E402  pylint: disable=wrong-import-position


def _row(set_name, psnr_t, jod):
  return {"set": set_name, "method": "dealthdr", "ratio": 0.125, "psnr_t": psnr_t,
          "psnr_t_rec": 45.0, "psnr_l": 40.0, "ssim_t": 0.97, "jod": jod,
          "dark_chroma": 0.03}


def test_ship_rule_gates_replacing_a_shipped_model(tmp_path, capsys):
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  params = model_files.init_params(DeAltHDR.from_config(config.model), seed=0)
  model_files.save_params(tmp_path / "run", params, config, None)
  shipped = tmp_path / "models" / "dealthdr_2exp"
  old_card = {"name": "dealthdr_2exp", "training": {"steps": 7},
              "results": [_row("2exp", 35.0, 8.0), _row("hard motion (2exp)", 34.0, 6.0)]}
  model_files.save_params(shipped, params, config, old_card)
  before = {p.name: p.read_bytes() for p in shipped.iterdir()}

  def ship(rows, *extra):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(rows + [dict(_row("3exp", 1.0, 1.0))]))  # Other pattern.
    return ship_model.main(["--workdir", str(tmp_path / "run"), "--name", "dealthdr_2exp",
                            "--command", "c", "--machine", "m", "--wall-minutes", "1",
                            "--out", str(tmp_path / "models"), "--results", str(results),
                            *extra])

  # Higher PSNR-T, lower JOD on the hard set: refused, nothing touched.
  worse = [_row("2exp", 35.2, 8.0), _row("hard motion (2exp)", 34.1, 5.8)]
  assert ship(worse) == 1
  err = capsys.readouterr().err
  assert "hard motion (2exp) at ratio 0.125: jod falls by 0.200" in err
  assert "--accept-failing" in err
  assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
  # The same, accepted with a reason: shipped, and the card says so.
  assert ship(worse, "--accept-failing", "JOD loss is one flickering clip") == 0
  card = json.loads((shipped / model_files.CARD_FILE).read_text())
  assert card["ship_decision"]["verdict"] == "fails"
  assert card["ship_decision"]["shipped_anyway_because"] == "JOD loss is one flickering clip"
  assert [r["set"] for r in card["results"]] == ["2exp", "hard motion (2exp)"]
  # A candidate that gains everywhere passes against the (now shipped) previous rows.
  better = [_row("2exp", 35.3, 8.1), _row("hard motion (2exp)", 34.2, 5.9),
            dict(_row("2exp", 36.0, 9.0), ratio=0.5)]  # A ratio never shipped: not judged.
  assert ship(better) == 0
  card = json.loads((shipped / model_files.CARD_FILE).read_text())
  assert card["ship_decision"]["verdict"] == "passes"
  assert card["ship_decision"]["compared"] == ["2exp at ratio 0.125",
                                               "hard motion (2exp) at ratio 0.125"]
  assert "ship rule: passes" in capsys.readouterr().out
