"""`dealthdr synth`: clip folder layout (DESIGN.md §7), contents and atomic writing."""
import argparse
import json

import numpy as np
import pytest

from data_pipeline import hdr_io
from data_pipeline import response
from data_pipeline import synth


def _args(*argv):
  parser = argparse.ArgumentParser()
  synth.add_arguments(parser)
  return parser.parse_args(list(argv))


def test_writes_clip_folders(tmp_path):
  out = tmp_path / "synth"
  rc = synth.main(_args("--out", str(out), "--clips", "2", "--frames", "4", "--size", "32x40",
                        "--pattern", "2exp", "--seed", "3", "--no-noise"))
  assert rc == 0
  clips = sorted(p.name for p in out.iterdir())
  assert clips == ["clip_0000", "clip_0001"]  # No temporary folders left.
  clip = out / "clip_0000"
  stops = [float(v) for v in (clip / "exposures.txt").read_text().split()]
  assert len(stops) == 4 and min(stops) == 0
  meta = json.loads((clip / "meta.json").read_text())
  assert meta["response"] == "gamma2.2" and meta["bits"] == 8
  frames = sorted(clip.glob("*.png"))
  assert [p.name for p in frames] == [f"{j:05d}.png" for j in range(4)]
  for j, p in enumerate(frames):
    ldr, bits = hdr_io.read_ldr(p)
    assert bits == 8 and ldr.shape == (32, 40, 3)
    gt = hdr_io.read_hdr(clip / "gt" / f"{p.stem}.exr")
    # §3 units: the (noise-free) frame re-linearised over its exposure matches the GT.
    well = response.well_exposed(ldr)
    if well.sum() > 50:
      est = response.ldr_to_radiance(ldr, stops[j])
      assert np.median(np.abs(est - gt)[well] / gt[well]) < 0.05
  flows = sorted((clip / "flow").glob("*.npy"))
  assert len(flows) == 3 and np.load(flows[0]).shape == (32, 40, 2)
  assert (clip / "flow" / "00000_occ.png").exists()
  assert (clip / "preview" / "contact_sheet.png").exists()


def test_high_bit_depth_writes_16_bit_pngs(tmp_path):
  synth.write_clips(tmp_path, num_clips=1, num_frames=3, size=(24, 24), pattern="3exp",
                    bits=12, response="sigmoid")
  ldr, bits = hdr_io.read_ldr(tmp_path / "clip_0000" / "00000.png")
  assert bits == 16
  meta = json.loads((tmp_path / "clip_0000" / "meta.json").read_text())
  assert meta["response"] == "sigmoid" and 0.4 <= meta["sigmoid_n"] <= 0.9


def test_clips_do_not_depend_on_clip_count(tmp_path):
  synth.write_clips(tmp_path / "a", num_clips=1, num_frames=3, size=(24, 24), seed=9)
  synth.write_clips(tmp_path / "b", num_clips=2, num_frames=3, size=(24, 24), seed=9)
  a = (tmp_path / "a" / "clip_0000" / "00001.png").read_bytes()
  assert a == (tmp_path / "b" / "clip_0000" / "00001.png").read_bytes()


def test_error_leaves_no_partial_clip(tmp_path, monkeypatch):
  def boom(*args, **kwargs):
    raise RuntimeError("disk full")
  monkeypatch.setattr(synth, "contact_sheet", boom)  # Fails after frames were written.
  with pytest.raises(RuntimeError, match="disk full"):
    synth.write_clips(tmp_path, num_clips=1, num_frames=3, size=(24, 24))
  assert list(tmp_path.iterdir()) == []


def test_bad_requests(tmp_path, capsys):
  assert synth.main(_args("--out", str(tmp_path), "--frames", "1", "--size", "32x32")) == 2
  assert "--frames must be ≥ 2" in capsys.readouterr().err
  assert synth.main(_args("--out", str(tmp_path), "--size", "32by32")) == 2
  assert "HxW" in capsys.readouterr().err
  assert synth.main(_args("--out", str(tmp_path), "--sources", str(tmp_path / "none"))) == 2
  assert "does not exist" in capsys.readouterr().err
  synth.write_clips(tmp_path, num_clips=1, num_frames=2, size=(16, 16))
  with pytest.raises(FileExistsError, match="--overwrite"):
    synth.write_clips(tmp_path, num_clips=1, num_frames=2, size=(16, 16))
  synth.write_clips(tmp_path, num_clips=1, num_frames=2, size=(16, 16), overwrite=True)


def test_bad_source_file_is_named(tmp_path, capsys):
  src = tmp_path / "src"
  src.mkdir()
  hdr_io.write_exr(src / "good.exr", np.ones((32, 32, 3), np.float32))
  (src / "bad.exr").write_bytes(b"garbage")
  assert synth.main(_args("--out", str(tmp_path / "out"), "--sources", str(src))) == 2
  assert "bad.exr" in capsys.readouterr().err
