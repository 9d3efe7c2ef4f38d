"""`dealthdr eval` on tiny EXR folders: JSON schema, folder layouts and clear errors."""
import argparse
import json

import numpy as np
import pytest

from data_pipeline import hdr_io
from dealthdr_jax.evaluation import evaluate, metrics


def _write(folder, names, size=(12, 16), seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  images = {}
  for n in names:
    images[n] = (rng.uniform(size=size + (3,)) * scale).astype(np.float32)
    hdr_io.write_exr(folder / f"{n}.exr", images[n])
  return images


def _run(argv):
  parser = argparse.ArgumentParser()
  evaluate.add_arguments(parser)
  return evaluate.main(parser.parse_args(argv))


def test_cli_writes_json_with_per_frame_and_mean_metrics(tmp_path, capsys):
  names = ["f000", "f001", "f002"]
  gt = _write(tmp_path / "clip" / "gt", names, seed=1, scale=4.0)
  pred = {n: g * 1.05 for n, g in gt.items()}
  pred["f001"] = gt["f001"]  # A perfect frame: capped PSNR.
  for n, img in pred.items():
    hdr_io.write_exr(tmp_path / "out" / "hdr" / f"{n}.exr", img)
  out_json = tmp_path / "metrics.json"
  # Layouts: an infer output holding hdr/ and a clip folder holding gt/.
  assert _run(["--pred", str(tmp_path / "out"), "--gt", str(tmp_path / "clip"),
               "--json", str(out_json)]) == 0
  table = capsys.readouterr().out
  assert "PSNR-T" in table and "mean" in table and "f002" in table
  result = json.loads(out_json.read_text())
  assert set(result["mean"]) >= {"psnr_t", "psnr_l", "ssim_t", "flicker"}
  assert list(result["frames"]) == names
  assert "flicker" not in result["frames"]["f000"]
  assert result["frames"]["f001"]["psnr_t"] == metrics.PSNR_CAP_DB
  want = metrics.frame_metrics(pred["f000"], gt["f000"])
  for k, v in want.items():
    assert result["frames"]["f000"][k] == pytest.approx(v, rel=1e-6)
  assert result["mean"]["psnr_l"] == pytest.approx(
      np.mean([result["frames"][n]["psnr_l"] for n in names]))
  want_flicker = metrics.flicker(np.stack([pred[n] for n in names]),
                                 np.stack([gt[n] for n in names]))
  assert result["mean"]["flicker"] == pytest.approx(want_flicker, rel=1e-6)
  # Frame folders given directly work too, and give the same numbers.
  direct = evaluate.evaluate_folders(tmp_path / "out" / "hdr", tmp_path / "clip" / "gt")
  assert direct["mean"] == result["mean"]
  assert not list(tmp_path.glob(".*"))  # No temporary files left behind.


def test_single_frame_has_null_mean_flicker(tmp_path):
  _write(tmp_path / "gt", ["a"])
  _write(tmp_path / "pred", ["a"], seed=3)
  result = evaluate.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
  assert result["mean"]["flicker"] is None
  json.dumps(result, allow_nan=False)


def test_name_mismatch_lists_missing_and_extra(tmp_path, capsys):
  _write(tmp_path / "gt", ["f0", "f1", "f2"])
  _write(tmp_path / "pred", ["f0", "f2", "zz"])
  with pytest.raises(ValueError, match=r"missing predictions \(1\): f1") as e:
    evaluate.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
  assert "predictions without ground truth (1): zz" in str(e.value)
  assert _run(["--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]) == 1
  assert "f1" in capsys.readouterr().err


def test_size_mismatch_names_the_file_and_both_sizes(tmp_path):
  _write(tmp_path / "gt", ["f0", "f1"])
  _write(tmp_path / "pred", ["f0"])
  _write(tmp_path / "pred", ["f1"], size=(12, 18))
  with pytest.raises(ValueError, match=r"'f1'.*18x12.*16x12"):
    evaluate.evaluate_folders(tmp_path / "pred", tmp_path / "gt")


def test_folders_without_exr_are_rejected(tmp_path):
  (tmp_path / "empty").mkdir()
  _write(tmp_path / "gt", ["f0"])
  with pytest.raises(ValueError, match="no .exr files"):
    evaluate.evaluate_folders(tmp_path / "empty", tmp_path / "gt")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    evaluate.evaluate_folders(tmp_path / "nope", tmp_path / "gt")


def test_recoverable_psnr_t_leaves_out_what_no_exposure_recorded(tmp_path):
  """PSNR-T rec.: pixels clipped in every nearest frame of the clip's shortest exposure
  (for a long frame between two short ones: clipped in both, at the same position) are
  left out; a clip folder without LDR frames gives null."""
  names = ["00000", "00001", "00002"]  # short, long, short
  clip = tmp_path / "clip"
  gt = _write(clip / "gt", names, size=(8, 10), seed=2)
  (clip / "exposures.txt").write_text("0\n3\n0\n")
  ldr = {n: np.full((8, 10, 3), 0.4, np.float32) for n in names}
  ldr["00000"][:4, :, 0] = 1.0  # clipped in the top half of the first short frame,
  ldr["00002"][:, :5, 1] = 1.0  # and in the left half of the second.
  ldr["00001"][:] = 1.0  # The long frame is clipped everywhere: it does not count.
  for n in names:
    hdr_io.write_ldr(clip / f"{n}.png", ldr[n])
  masks = evaluate.unrecoverable_masks(clip)
  top, left = np.zeros((8, 10), bool), np.zeros((8, 10), bool)
  top[:4], left[:, :5] = True, True
  np.testing.assert_array_equal(masks["00000"], top)
  np.testing.assert_array_equal(masks["00001"], top & left)
  np.testing.assert_array_equal(masks["00002"], left)

  pred = {n: g.copy() for n, g in gt.items()}
  for n in names:
    pred[n][masks[n]] *= 0.2  # Wrong only where nothing was recorded.
  pred["00002"][7, 9] *= 3.0  # ... and at one recorded pixel of the last frame.
  for n, img in pred.items():
    hdr_io.write_exr(tmp_path / "out" / f"{n}.exr", img)
  result = evaluate.evaluate_folders(tmp_path / "out", clip)
  frames = result["frames"]
  assert frames["00000"]["psnr_t_rec"] == frames["00001"]["psnr_t_rec"] == metrics.PSNR_CAP_DB
  assert frames["00000"]["psnr_t"] < 60
  keep = ~masks["00002"]
  tp, tg = metrics.tonemapped_normalised(pred["00002"], gt["00002"])
  assert frames["00002"]["psnr_t_rec"] == pytest.approx(metrics.psnr(tp[keep], tg[keep]))
  assert frames["00002"]["psnr_t_rec"] < 60
  assert result["mean"]["psnr_t_rec"] == pytest.approx(
      np.mean([frames[n]["psnr_t_rec"] for n in names]))
  assert metrics.psnr_t_recoverable(pred["00000"], gt["00000"], np.zeros((8, 10), bool)) is None
  with pytest.raises(ValueError, match="mask shape"):
    metrics.psnr_t_recoverable(pred["00000"], gt["00000"], np.ones((4, 4), bool))
  # A clip's gt/ given directly reads its clip; a folder of GT frames alone gives null.
  assert evaluate.evaluate_folders(tmp_path / "out", clip / "gt")["mean"] == result["mean"]
  for n in names:
    hdr_io.write_exr(tmp_path / "gt_only" / f"{n}.exr", gt[n])
  only_gt = evaluate.evaluate_folders(tmp_path / "out", tmp_path / "gt_only")
  assert only_gt["mean"]["psnr_t_rec"] is None and only_gt["mean"]["psnr_t"] == result["mean"]["psnr_t"]


def test_a_set_is_scored_clip_by_clip_with_means_over_clips(tmp_path, capsys):
  """`--pred` holding one output per clip (a batch `infer`) and `--gt` the clip folders:
  each clip as alone, the set's means over clips; clips on one side only are listed."""
  frames = {"a": ["f0", "f1", "f2"], "b": ["f0", "f1"]}
  for k, (clip, names) in enumerate(frames.items()):
    gt = _write(tmp_path / "clips" / clip / "gt", names, seed=k, scale=3.0)
    for n, g in gt.items():
      hdr_io.write_exr(tmp_path / "outs" / clip / "hdr" / f"{n}.exr", g * (1.02 + 0.05 * k))
  out_json = tmp_path / "set.json"
  assert _run(["--pred", str(tmp_path / "outs"), "--gt", str(tmp_path / "clips"),
               "--json", str(out_json)]) == 0
  printed = capsys.readouterr().out
  assert "clip" in printed and "2 clips, 5 frames; means over clips" in printed
  result = json.loads(out_json.read_text())
  assert result["num_clips"] == 2 and result["num_frames"] == 5
  alone = {c: evaluate.evaluate_folders(tmp_path / "outs" / c, tmp_path / "clips" / c)
           for c in frames}
  for c in frames:
    assert result["clips"][c]["mean"] == alone[c]["mean"]
  for key in ("psnr_t", "psnr_l", "ssim_t", "flicker"):
    assert result["mean"][key] == pytest.approx(
        np.mean([alone[c]["mean"][key] for c in frames]))
  # Clips and predictions that do not pair up: both listed, exit status 1.
  (tmp_path / "outs" / "c" / "hdr").mkdir(parents=True)
  (tmp_path / "clips" / "d").mkdir()
  assert _run(["--pred", str(tmp_path / "outs"), "--gt", str(tmp_path / "clips")]) == 1
  err = capsys.readouterr().err
  assert "clips without predictions (1): d" in err and "predictions without a clip (1): c" in err
  # A clip's own error names the clip.
  (tmp_path / "outs" / "c").rename(tmp_path / "outs" / "d")
  assert _run(["--pred", str(tmp_path / "outs"), "--gt", str(tmp_path / "clips")]) == 1
  assert "clip d: prediction folder" in capsys.readouterr().err
