"""`dealthdr adapt`: bad inputs fail before compute; a short run writes a params-only model
with its card that `infer --checkpoint` runs; nothing already written is lost."""
import json

import numpy as np
import pytest

from data_pipeline import synth
from dealthdr_jax import cli
from dealthdr_jax import config_loading
from dealthdr_jax import model_files
from dealthdr_jax.models.dealthdr import DeAltHDR
from dealthdr_jax.training import adapt


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny untrained 2-exposure model and two small 2-exposure clips (one 3-exposure)."""
  root = tmp_path_factory.mktemp("adapt")
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  model_files.save_params(root / "start", model_files.init_params(model), config,
                          {"name": "tiny start"})
  clips = synth.write_clips(root / "clips", num_clips=2, num_frames=5, size=(64, 96), seed=5)
  (three,) = synth.write_clips(root / "clips3", num_clips=1, num_frames=5, size=(64, 96),
                               pattern="3exp", seed=6)
  return root, clips, three


def test_bad_inputs_fail_before_any_compute(setup, capsys):
  root, clips, three = setup
  with pytest.raises(adapt.AdaptError, match="missing_clip: no such clip"):
    adapt.adapt([str(root / "missing_clip")], str(root / "o1"))
  video = root / "take.mp4"
  video.write_bytes(b"")
  with pytest.raises(adapt.AdaptError, match="take.mp4 is a video: give --exposures"):
    adapt.adapt([str(video)], str(root / "o1"))
  with pytest.raises(adapt.AdaptError, match="3 exposure levels"):
    adapt.adapt([str(clips[0]), str(three)], str(root / "o1"))
  with pytest.raises(adapt.AdaptError, match="--steps must be positive"):
    adapt.adapt([str(clips[0])], str(root / "o1"), steps=0)
  # The curve's gate was measured over 500 steps: a longer --curve run is refused.
  with pytest.raises(adapt.AdaptError, match="--curve runs at most 500 steps, got --steps 501"):
    adapt.adapt([str(clips[0])], str(root / "o1"), steps=501, curve=True)
  taken = root / "taken"
  taken.mkdir()
  (taken / "keep.txt").write_text("mine")
  # Through the command line: one clear line, exit 2, the folder untouched.
  assert cli.main(["adapt", "--input", str(clips[0]), "--out", str(taken)]) == 2
  assert "exists and is not empty" in capsys.readouterr().err
  assert (taken / "keep.txt").read_text() == "mine" and len(list(taken.iterdir())) == 1
  assert not (root / "o1").exists() and not (root / "taken.run").exists()
  with pytest.raises(KeyError, match="optim.lrr"):
    adapt.adapt([str(clips[0])], str(root / "o2"), start_from=str(root / "start"),
                overrides=["--config.optim.lrr=1"])
  assert not (root / "o2").exists()


def test_adapt_with_curve_learns_a_monotone_response_curve_and_reports_it(setup, capsys):
  root, clips, _ = setup
  out = root / "curved"
  assert cli.main(["adapt", "--input", str(clips[0]), "--out", str(out), "--steps", "4",
                   "--from", str(root / "start"), "--curve"]) == 0
  assert "curve {'0.05'" in capsys.readouterr().out
  card = json.loads((out / model_files.CARD_FILE).read_text())
  assert list(card["response_curve"]) == [f"{v:g}" for v in adapt.CURVE_POINTS]
  assert np.all(np.diff(list(card["response_curve"].values())) > 0)
  params, config = model_files.load_params(out)
  assert config.model.response_calibration > 0 and "response_calibration" in params
  assert config.model.response_min_slope == 0.25
  # The curve's own recipe: a faster curve trained by the re-exposure terms only, and a
  # step must beat the start by 5 %.
  assert config.optim.calibration_lr == adapt.CURVE_CALIBRATION_LR
  assert config.loss.curve_from == adapt.CURVE_FROM == "reexposure"
  assert config.data.heldout_min_gain == adapt.CURVE_MIN_GAIN


def test_adapting_the_shipped_model_to_its_own_camera_costs_at_most_0_1_db(tmp_path):
  """Issue 12's safety check: a fixed synthetic clip whose camera is the assumed one
  (gamma 2.2, 8 bits, the stage-1 sensor); `adapt` from the shipped 2-exposure model, no
  GT in training. The adapted model's PSNR-T on the clip (GT read only here) is at most
  0.1 dB below the shipped model's: either a step beat the start on the held-out strip
  and did not hurt, or the starting model was exported."""
  from dealthdr_jax.evaluation import scoring  # pylint: disable=g-import-not-at-top
  (clip,) = synth.write_clips(tmp_path / "clips", num_clips=1, num_frames=7, size=(96, 160),
                              seed=12)
  shipped = model_files.shipped_checkpoint("dealthdr_2exp")
  out = tmp_path / "adapted"
  # An override that does not change training goes through to the saved config.
  card = adapt.adapt([str(clip)], str(out), steps=24, start_from=shipped,
                     overrides=["--config.log_every=5"])
  assert json.loads((out / model_files.CARD_FILE).read_text()) == json.loads(json.dumps(card))
  assert card["inputs"] == [str(clip.absolute())] and card["steps"] == 24
  assert card["response"] == "gamma2.2" and card["pattern"] == "2exp"
  c = card["heldout_criterion"]
  assert c["best"] <= c["start"] and card["exported_step"] == c["best_step"]
  # No curve by default: the clips are read through their declared response.
  params, config = model_files.load_params(out)
  assert card["response_curve"] is None and config.model.response_calibration == 0
  assert "response_calibration" not in params and config.data.heldout_min_gain == 0.01
  assert config.stage == 2 and list(config.train_ratios) == [config.attn_ratio]
  assert config.log_every == 5
  # A second run into the same --out is refused before any compute; the model stays.
  before = (out / model_files.PARAMS_FILE).read_bytes()
  with pytest.raises(FileExistsError, match="--overwrite"):
    adapt.adapt([str(clip)], str(out), steps=4)
  assert (out / model_files.PARAMS_FILE).read_bytes() == before
  # `infer --checkpoint OUT` reads it (scoring runs infer on it).
  before = scoring.score(tmp_path / "pred_shipped", [clip], perceptual=False,
                         checkpoint=shipped)["psnr_t"]
  after = scoring.score(tmp_path / "pred_adapted", [clip], perceptual=False,
                        checkpoint=str(out))["psnr_t"]
  print(f"PSNR-T shipped {before:.3f}, adapted {after:.3f} ({card['exported']}; held-out "
        f"criterion {card['heldout_criterion']})")
  assert after >= before - 0.1, (before, after, card["heldout_criterion"])
