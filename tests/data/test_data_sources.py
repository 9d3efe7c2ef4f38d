"""HDR content: procedural scenes, image folders (bad files, held-out split), EXR sequences."""
import numpy as np
import pytest

from data_pipeline import hdr_io
from data_pipeline import simulator
from data_pipeline import sources


@pytest.mark.parametrize("seed", range(6))
def test_procedural_scene_spans_at_least_16_stops(seed):
  img = sources.procedural_scene(np.random.default_rng(seed), 96, 128)
  assert img.shape == (96, 128, 3) and img.dtype == np.float32
  assert np.isfinite(img).all() and img.min() > 0
  assert sources.dynamic_range_stops(img) >= 16.0
  # Not just two flat levels: plenty of distinct texture across the background.
  lum = np.log2(sources.luminance(img))
  assert np.std(lum) > 1.0 and len(np.unique(np.round(lum, 2))) > 500


def test_procedural_scene_is_deterministic():
  a = sources.procedural_scene(np.random.default_rng(5), 64, 64)
  b = sources.procedural_scene(np.random.default_rng(5), 64, 64)
  c = sources.procedural_scene(np.random.default_rng(6), 64, 64)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def _folder(tmp_path, n=4, bad=()):
  rng = np.random.default_rng(0)
  for i in range(n):
    hdr_io.write_exr(tmp_path / f"img{i}.exr", rng.uniform(0.01, 50, (24, 32, 3)).astype(np.float32))
  for name in bad:
    (tmp_path / name).write_bytes(b"this is not an EXR file")
  (tmp_path / "README.md").write_text("ignored")
  return tmp_path


def test_folder_with_bad_file_fails_naming_it(tmp_path):
  _folder(tmp_path, bad=("broken.exr",))
  with pytest.raises(ValueError, match="broken.exr"):
    sources.ImageFolderSource(tmp_path)


def test_folder_skip_mode_warns_listing_bad_files(tmp_path):
  _folder(tmp_path, bad=("broken.exr", "junk.hdr"))
  with pytest.warns(UserWarning, match="broken.exr[\\s\\S]*junk.hdr"):
    src = sources.ImageFolderSource(tmp_path, on_error="skip")
  assert src.names == [f"img{i}.exr" for i in range(4)]


def test_empty_or_missing_folder(tmp_path):
  with pytest.raises(ValueError, match="no .exr"):
    sources.ImageFolderSource(tmp_path)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    sources.ImageFolderSource(tmp_path / "nope")


def test_split_is_by_name_and_stable():
  names = [f"scene_{i:02d}.exr" for i in range(11)]
  train, val = sources.split_names(names, num_val=2)
  assert len(val) == 2 and not set(train) & set(val) and len(train) == 9
  # Adding files does not move an existing validation file into training unless it is
  # displaced by a new one with a smaller hash; shuffling the input changes nothing.
  assert sources.split_names(list(reversed(names)), num_val=2) == (train, val)
  assert sources.split_names(names, val_names=["scene_03.exr"])[1] == ["scene_03.exr"]
  with pytest.raises(ValueError, match="not among"):
    sources.split_names(names, val_names=["other.exr"])


def test_real_sources_split_and_render(hdr_sources_dir):
  train = sources.ImageFolderSource(hdr_sources_dir, split="train")
  val = sources.ImageFolderSource(hdr_sources_dir, split="val")
  assert len(val) >= 2 and len(train) >= 2
  assert not set(train.names) & set(val.names)
  config = simulator.SimulatorConfig(size=(48, 64), source_dir=str(hdr_sources_dir),
                                     procedural_fraction=0.0)
  s = simulator.render_clip(0, config)
  assert s["meta"]["source"] in train.names
  assert s["frames"].shape == (3, 48, 64, 3) and np.isfinite(s["hdr"]).all()
  p = np.percentile(sources.luminance(s["hdr"]), config.norm_percentile)
  assert config.norm_level[0] - 1e-3 <= p <= config.norm_level[1] + 1e-3


def test_exr_sequence_as_hdr_video(tmp_path):
  for i in range(6):
    img = np.full((40, 40, 3), 0.5, np.float32)
    img[:, 5 + 3 * i:10 + 3 * i] = 4.0  # A bar moving right, 3 px per frame.
    hdr_io.write_exr(tmp_path / f"frame_{i + 1}.exr", img)
  seq = sources.ExrSequenceSource(tmp_path)
  assert [p.name for p in seq.paths][:2] == ["frame_1.exr", "frame_2.exr"]
  np.testing.assert_allclose(seq.at(1.5), 0.5 * (seq.frame(1) + seq.frame(2)))
  config = simulator.SimulatorConfig(size=(32, 32), sequence_dir=str(tmp_path),
                                     sequence_fraction=1.0)
  s = simulator.render_sequence(0, 3, config)
  assert not s["flow_exact"] and s["hdr"].shape == (3, 32, 32, 3)


def test_exr_sequence_bad_inputs(tmp_path):
  hdr_io.write_exr(tmp_path / "a.exr", np.ones((8, 8, 3), np.float32))
  with pytest.raises(ValueError, match="frame number"):
    sources.ExrSequenceSource(tmp_path)
  (tmp_path / "a.exr").unlink()
  hdr_io.write_exr(tmp_path / "f1.exr", np.ones((8, 8, 3), np.float32))
  hdr_io.write_exr(tmp_path / "f2.exr", np.ones((9, 8, 3), np.float32))
  seq = sources.ExrSequenceSource(tmp_path)
  seq.frame(0)
  with pytest.raises(ValueError, match="f2.exr"):
    seq.frame(1)
