"""`tools/compare_results.py`: reads results.json files and cards, finds the shipped card of
the candidate's pattern, exits 0 / 1 / 2 for passes / fails / bad input, and says why."""
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools"))
import compare_results  # noqa: E402  pylint: disable=wrong-import-position

from dealthdr_jax import model_files  # noqa: E402


def _shipped_rows(name):
  card = json.loads((model_files.SHIPPED_DIR / name / model_files.CARD_FILE).read_text())
  return [r for r in card["results"] if r["method"] == "dealthdr"
          and not r.get("self_ensemble") and r["ratio"] == 0.125]


def test_exit_status_follows_the_ship_rule(tmp_path, capsys):
  rows = _shipped_rows("dealthdr_3exp")
  assert rows, "the shipped 3exp card lost its default-ratio rows"
  same = tmp_path / "same.json"
  same.write_text(json.dumps(rows))
  # The shipped model against itself (found from the sets' pattern): no set gains.
  assert compare_results.main(["--candidate", str(same)]) == 1
  out = capsys.readouterr().out
  assert "dealthdr_3exp" in out and "PSNR-T rises on no set" in out
  better = [dict(r, psnr_t=r["psnr_t"] + 0.1) for r in rows]
  (tmp_path / "better.json").write_text(json.dumps(better))
  assert compare_results.main(["--candidate", str(tmp_path / "better.json")]) == 0
  assert "ship rule: passes" in capsys.readouterr().out
  worse_jod = [dict(r, psnr_t=r["psnr_t"] + 0.1, jod=r["jod"] - 0.1) for r in rows]
  (tmp_path / "jod.json").write_text(json.dumps(worse_jod))
  assert compare_results.main(["--candidate", str(tmp_path / "jod.json")]) == 1
  assert "jod falls by 0.100" in capsys.readouterr().out
  assert compare_results.main(["--candidate", str(tmp_path / "jod.json"),
                               "--tol-jod", "0.2"]) == 0


def test_bad_inputs_exit_2_with_the_file_named(tmp_path, capsys):
  assert compare_results.main(["--candidate", str(tmp_path / "none.json")]) == 2
  assert "none.json: no such file" in capsys.readouterr().err
  (tmp_path / "bad.json").write_text("{not json")
  assert compare_results.main(["--candidate", str(tmp_path / "bad.json")]) == 2
  assert "bad.json: not JSON" in capsys.readouterr().err
  (tmp_path / "mixed.json").write_text(json.dumps(
      _shipped_rows("dealthdr_2exp") + _shipped_rows("dealthdr_3exp")))
  assert compare_results.main(["--candidate", str(tmp_path / "mixed.json")]) == 2
  assert "pass --baseline" in capsys.readouterr().err
  assert compare_results.main(["--candidate", str(tmp_path / "mixed.json"),
                               "--ratios", "0.7"]) == 2
  assert "no rows at ratios (0.7,)" in capsys.readouterr().err
