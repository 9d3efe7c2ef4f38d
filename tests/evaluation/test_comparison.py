"""`evaluation.comparison`: rows paired by set, ratio and self-ensemble; the ship rule
fails a candidate that raises PSNR-T while it loses JOD or dark colour, names each failing
set and metric, and passes one that gains or holds everywhere."""
import pytest

from dealthdr_jax.evaluation import comparison


def row(set_name, ratio=0.125, method="dealthdr", self_ensemble=None, clips=None, **metrics):
  values = dict(psnr_t=35.0, psnr_t_rec=45.0, psnr_l=40.0, ssim_t=0.97, jod=8.0,
                dark_chroma=0.030)
  values.update(metrics)
  out = {"set": set_name, "method": method, "ratio": ratio, **values}
  if self_ensemble:
    out["self_ensemble"] = self_ensemble
  if clips:
    out["per_clip"] = {name: {"psnr_t": p, "jod": j} for name, (p, j) in clips.items()}
  return out


BASELINE = [row("2exp", clips={"a": (34.0, 8.0), "b": (36.0, 8.0)}),
            row("hard motion (2exp)"),
            row("2exp", self_ensemble=2, psnr_t=35.2),
            row("2exp", method="dis_flow", ratio=None, psnr_t=33.0)]


def test_pairs_rows_and_counts_clips():
  cand = [row("2exp", psnr_t=35.1, clips={"a": (34.3, 8.1), "b": (35.9, 7.9)}),
          row("2exp", self_ensemble=2, psnr_t=35.25)]
  comps = comparison.compare(cand, BASELINE)
  assert [(c.set, c.self_ensemble) for c in comps] == [("2exp", 1), ("2exp", 2)]
  assert comps[0].delta("psnr_t") == pytest.approx(0.1)
  assert comps[1].delta("psnr_t") == pytest.approx(0.05)  # Its own baseline row, not N=1.
  assert comps[0].clip_psnr_t_deltas == pytest.approx({"a": 0.3, "b": -0.1})
  table = comparison.markdown(comps)
  assert "1 of 2 (-0.10)" in table and "b -0.10" in table
  assert comparison.verdict(comps) == (True, [])


def test_psnr_t_gain_with_jod_and_dark_colour_losses_fails_naming_each():
  cand = [row("2exp", psnr_t=35.1, jod=7.9, dark_chroma=0.036),
          row("hard motion (2exp)", psnr_t=35.1, psnr_t_rec=44.9)]
  ships, reasons = comparison.verdict(comparison.compare(cand, BASELINE))
  assert not ships
  assert any(r.startswith("2exp at ratio 0.125: jod falls by 0.100") for r in reasons)
  assert any("2exp at ratio 0.125: dark_chroma rises by 20.0 %" in r for r in reasons)
  assert any(r.startswith("hard motion (2exp) at ratio 0.125: psnr_t_rec falls by 0.100")
             for r in reasons)
  assert len(reasons) == 3
  # Within the tolerances it passes; wider tolerances are the caller's to give.
  loose = comparison.Tolerances(psnr_t_rec=0.2, jod=0.2, dark_chroma=0.25)
  assert comparison.verdict(comparison.compare(cand, BASELINE), loose) == (True, [])


def test_no_gain_anywhere_does_not_ship_and_a_missing_jod_is_not_judged():
  cand = [row("2exp", jod=None), row("hard motion (2exp)", psnr_t=34.99)]
  ships, reasons = comparison.verdict(comparison.compare(cand, BASELINE))
  assert not ships
  assert reasons == ["hard motion (2exp) at ratio 0.125: psnr_t falls by 0.010 (allowed 0)",
                     "PSNR-T rises on no set"]


def test_bad_inputs_are_refused_by_name():
  with pytest.raises(comparison.ComparisonError, match="no row for 'held-out camera.*0.25"):
    comparison.compare([row("held-out camera (2exp)", ratio=0.25)], BASELINE)
  with pytest.raises(comparison.ComparisonError, match="no candidate rows of method 'x'"):
    comparison.compare([row("2exp")], BASELINE, candidate_method="x")
  with pytest.raises(comparison.ComparisonError, match="two rows of method 'dealthdr'"):
    comparison.compare([row("2exp"), row("2exp")], BASELINE)
  with pytest.raises(comparison.ComparisonError, match="no 'ratio'"):
    comparison.compare([{"set": "2exp", "method": "dealthdr"}], BASELINE)
  with pytest.raises(comparison.ComparisonError, match="nothing to judge"):
    comparison.verdict([])
