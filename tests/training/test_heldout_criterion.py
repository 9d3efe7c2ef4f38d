"""Stage 2's export rule (`train.HeldOutCriterion`): a step replaces the starting model only
when its no-reference held-out criterion is `data.heldout_min_gain` (relative) below the
start's, and it survives a resume."""
import json

import pytest

from dealthdr_jax.training import train


def test_a_step_must_clear_the_margin_to_replace_the_start(tmp_path):
  c = train.HeldOutCriterion(tmp_path, min_gain=0.01)
  assert c.bar is None
  assert c.record(0, 0.0100)  # The starting model is the first best.
  assert c.bar == pytest.approx(0.0099)
  assert not c.record(100, 0.00995)  # 0.5 % lower: noise, the start stays.
  assert (c.best, c.best_step) == (0.0100, 0)
  assert c.record(200, 0.0098)  # 2 % lower: a real gain.
  assert not c.record(300, 0.0099)  # Clears the bar, not the best.
  assert (c.best, c.best_step) == (0.0098, 200)
  assert c.card()["heldout_criterion"] == {
      "start": 0.0100, "best": 0.0098, "best_step": 200, "min_gain": 0.01,
      "last": [300, 0.0099]}

  # A resumed run reads the curve back and goes on with the same rule.
  resumed = train.HeldOutCriterion(tmp_path, min_gain=0.01)
  assert json.loads((tmp_path / train.HeldOutCriterion.FILE).read_text())["history"] == [
      [0, 0.0100], [100, 0.00995], [200, 0.0098], [300, 0.0099]]
  assert (resumed.start, resumed.best, resumed.best_step) == (0.0100, 0.0098, 200)
  assert resumed.record(400, 0.0097) and resumed.best_step == 400


def test_without_a_margin_any_decrease_counts_and_bad_margins_are_refused(tmp_path):
  c = train.HeldOutCriterion(tmp_path, min_gain=0.0)
  c.record(0, 1.0)
  assert c.record(5, 0.9999) and c.best_step == 5
  assert not c.record(10, 0.9999)  # Equal to the best is not better.
  for bad in (-0.01, 1.0):
    with pytest.raises(ValueError, match="heldout_min_gain must be in"):
      train.HeldOutCriterion(tmp_path / "x", min_gain=bad)
