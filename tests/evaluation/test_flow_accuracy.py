"""Flow accuracy against the simulator's ground truth (the hard-motion columns of the
results table): exact sums on hand-made fields, and end to end on a rendered clip."""
import numpy as np
import pytest

from data_pipeline import clips as clips_lib
from data_pipeline import motion as motion_lib
from data_pipeline import simulator as sim_lib
from data_pipeline import synth
from dealthdr_jax import model_files
from dealthdr_jax.evaluation import flow_accuracy


def test_scores_split_by_occlusion_and_selection():
  gt = np.zeros((4, 5, 2))
  flow = np.zeros((4, 5, 2))
  flow[0, :, 0] = 3.0          # row 0: 3 px off
  flow[1, :, 1] = 4.0          # row 1: 4 px off
  occluded = np.zeros((4, 5), bool)
  occluded[1] = True           # row 1 is occluded
  selected = np.zeros((4, 5), bool)
  selected[1, :2] = True       # 2 of the 5 occluded (and bad) pixels are selected
  scores = flow_accuracy.FlowScores()
  scores.add(flow, gt, occluded, selected, bad_px=3.5)
  s = scores.summary()
  assert s["epe_visible"] == pytest.approx(15 / 15)     # 5 px of 3 over 15 visible pixels
  assert s["epe_occluded"] == pytest.approx(4.0)
  assert s["selected_share"] == pytest.approx(2 / 20)
  assert s["occluded_captured"] == pytest.approx(2 / 5)
  assert s["bad_flow_captured"] == pytest.approx(2 / 5)  # only row 1 is off by > 3.5
  assert "selected_share" not in _without_selection(flow, gt, occluded)


def _without_selection(flow, gt, occluded):
  scores = flow_accuracy.FlowScores()
  scores.add(flow, gt, occluded)
  return scores.summary()


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory):
  config = sim_lib.SimulatorConfig(
      size=(64, 96), pattern="2exp", responses=("gamma2.2",), response_weights=None, bits=(8,),
      motion=motion_lib.MotionConfig(camera_speed=(3.0, 5.0), num_layers=(1, 1),
                                     layer_speed=(4.0, 6.0)))
  return synth.write_clips(tmp_path_factory.mktemp("flow") / "clips", num_clips=1,
                           num_frames=4, size=config.size, seed=5, config=config)


def test_ground_truth_against_itself_and_methods(moving_clip):
  with clips_lib.open_clip(moving_clip[0]) as clip:
    gt, occluded = flow_accuracy.ground_truth(clip, 0)
    assert gt.shape == (64, 96, 2) and np.abs(gt).max() > 1.0
    assert flow_accuracy.ground_truth(clip, len(clip) - 1) is None  # no frame after the last
  perfect = flow_accuracy.FlowScores()
  perfect.add(gt, gt, occluded)
  assert perfect.summary()["epe_visible"] == 0.0

  dis = flow_accuracy.dis_flow_scores(moving_clip)
  assert np.isfinite(dis["epe_visible"]) and dis["epe_visible"] >= 0
  loaded = model_files.load_model(config="dealthdr_2exp:size=tiny")
  learned = flow_accuracy.model_flow_scores(loaded.model, loaded.params, moving_clip, ratio=0.5)
  assert np.isfinite(learned["epe_visible"])
  # FGMA's finest level selects half of its tokens, so half of the pixels.
  assert learned["selected_share"] == pytest.approx(0.5, abs=0.02)
  for key in ("occluded_captured", "bad_flow_captured"):
    assert learned[key] is None or 0.0 <= learned[key] <= 1.0
