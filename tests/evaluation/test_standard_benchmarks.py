"""`dealthdr benchmark` on small fixtures in the DeepHDRVideo and Real-HDRV layouts."""
import json

import cv2
import numpy as np
import pytest

from data_pipeline import hdr_io
from data_pipeline import response
from dealthdr_jax import cli
from dealthdr_jax.evaluation import perceptual
from dealthdr_jax.evaluation import standard_benchmarks as sb

H, W = 32, 48


def _radiance(seed):
  """A smooth static scene [H, W, 3] that every exposure of the fixtures captures well."""
  yy, xx = np.mgrid[0:H, 0:W] / W
  rng = np.random.default_rng(seed)
  base = 0.02 + 0.08 * (0.5 + 0.5 * np.sin(rng.uniform(5, 9) * xx) * np.cos(7 * yy))
  return (base[..., None] * rng.uniform(0.7, 1.0, 3)).astype(np.float32)


def _write_radiance_hdr(path, hdr):
  assert cv2.imwrite(str(path), np.ascontiguousarray(hdr[..., ::-1]))


def _deephdrvideo(root, gt_scale=1.0):
  """Scenes: s2 (2 exposures, GT on frames 1-4), s3 (3 exposures, GT on frame 2), s0 (no GT)."""
  root.mkdir()
  (root / "scene_all.txt").write_text("s2\ns3\ns0\n")
  for name, pattern, gt_frames in (("s2", (0, 3), (1, 2, 3, 4)), ("s3", (0, 2, 4), (2,)),
                                   ("s0", (0, 3), ())):
    folder = root / name
    folder.mkdir()
    radiance = _radiance(len(name) + len(pattern))
    lines = []
    for i in range(6):
      stops = pattern[i % len(pattern)]
      hdr_io.write_ldr(folder / f"img_{i:02d}.tif", response.radiance_to_ldr(radiance, stops),
                       bits=16)
      if i in gt_frames:
        _write_radiance_hdr(folder / f"gt_{i:02d}.hdr", radiance * gt_scale)
        lines.append(f"img_{i:02d}.tif gt_{i:02d}.hdr\n")
      else:
        lines.append(f"img_{i:02d}.tif\n")
    (folder / "Exposures.txt").write_text("\n".join(f"{s:.1f}" for s in pattern) + "\n")
    (folder / ("img_hdr_list.txt" if gt_frames else "img_list.txt")).write_text("".join(lines))


def _realhdrv(root):
  scene = root / "walk"
  for sub in ("Input_0", "Input_1", "GT"):
    (scene / sub).mkdir(parents=True)
  radiance = _radiance(3)
  for i in range(4):
    hdr_io.write_ldr(scene / "Input_0" / f"{i:04d}.tif", response.radiance_to_ldr(radiance, 0),
                     bits=16)
    hdr_io.write_ldr(scene / "Input_1" / f"{i:04d}.tif", response.radiance_to_ldr(radiance, 3),
                     bits=16)
    _write_radiance_hdr(scene / "GT" / f"GT_{i:04d}.hdr", radiance)


def test_deephdrvideo_tables_per_exposure_count(tmp_path):
  _deephdrvideo(tmp_path / "dhv")
  out = tmp_path / "report.json"
  rc = cli.main(["benchmark", "--dataset", "deephdrvideo", "--data-dir", str(tmp_path / "dhv"),
                 "--methods", "reference_only,dis_flow", "--out", str(out)])
  assert rc == 0
  report = json.loads(out.read_text())
  assert set(report["tables"]) == {"2exp", "3exp"}
  assert report["skipped_without_gt"] == ["s0"]
  two, three = report["tables"]["2exp"], report["tables"]["3exp"]
  assert (two["scenes"], two["gt_frames"], three["scenes"], three["gt_frames"]) == (1, 4, 1, 1)
  # A static, well-exposed scene: both baselines return the radiance (up to RGBE and
  # quantisation), in §3 units.
  for table in (two, three):
    for method in ("reference_only", "dis_flow"):
      assert table["methods"][method]["psnr_t"] > 38
  for scene in report["scenes"]:
    assert scene["gt_over_pred"] == pytest.approx(1.0, rel=0.03)
  assert "warning" not in report
  # With the perceptual extra, a JOD column (near 10: the baselines reproduce the scene).
  assert ("jod" in two["methods"]["reference_only"]) == perceptual.available()
  if perceptual.available():
    assert two["methods"]["reference_only"]["jod"] > 9


def test_realhdrv_both_phases_with_a_model(tmp_path):
  _realhdrv(tmp_path / "rhv")
  report = sb.run_benchmark("realhdrv", tmp_path / "rhv",
                            methods=("dealthdr", "reference_only"),
                            config="dealthdr_2exp:size=tiny", perceptual=False,
                            progress=False)
  assert [s["scene"] for s in report["scenes"]] == ["walk@long", "walk@short"]
  table = report["tables"]["2exp"]
  assert table["scenes"] == 2 and table["gt_frames"] == 8
  assert "attention ratio" in table["methods"]["dealthdr"]["model"]
  assert np.isfinite(table["methods"]["dealthdr"]["psnr_t"])
  assert table["methods"]["reference_only"]["psnr_t"] > 38
  assert "Real-HDRV" in sb.format_tables(report)


def test_gt_on_another_scale_is_reported(tmp_path):
  _deephdrvideo(tmp_path / "dhv", gt_scale=8.0)
  report = sb.run_benchmark("deephdrvideo", tmp_path / "dhv", methods=("reference_only",),
                            progress=False)
  assert report["scenes"][0]["gt_over_pred"] == pytest.approx(8.0, rel=0.03)
  assert "another scale" in report["warning"]


def test_bad_data_dirs(tmp_path):
  with pytest.raises(FileNotFoundError, match="dataset folder not found"):
    sb.run_benchmark("deephdrvideo", tmp_path / "nowhere", progress=False)
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no Real-HDRV .* scenes found"):
    sb.run_benchmark("realhdrv", tmp_path / "empty", progress=False)
  _deephdrvideo(tmp_path / "dhv")
  _write_radiance_hdr(tmp_path / "dhv" / "s2" / "gt_03.hdr", np.ones((H, W + 2, 3), np.float32))
  with pytest.raises(ValueError, match=r"gt_03.hdr: ground truth is 32x50"):
    sb.run_benchmark("deephdrvideo", tmp_path / "dhv", methods=("reference_only",),
                     progress=False)
  with pytest.raises(ValueError, match="unknown methods"):
    sb.run_benchmark("deephdrvideo", tmp_path / "dhv", methods=("hdrflow",), progress=False)
