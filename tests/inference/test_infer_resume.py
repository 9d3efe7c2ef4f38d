"""`dealthdr infer --resume`: a run stopped part-way (Ctrl-C, or killed outright) keeps the
frames it finished beside --output; resuming gives exactly the outputs of an uninterrupted
run, and is refused for another input, model or settings. Batches (`--input` repeated)
share one model and resume clip by clip."""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest

from data_pipeline import hdr_io
from data_pipeline import synth
from dealthdr_jax import cli
from dealthdr_jax.inference import infer

CONFIG = "dealthdr_2exp:size=tiny"
FRAMES = 6

# Runs `dealthdr infer` with a predictor that kills its own process (SIGKILL: no cleanup of
# any kind) when asked for frame argv[3].
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from dealthdr_jax import cli
    from dealthdr_jax.inference import infer
    clip, out, stop_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    make = infer.make_predictor
    def killing_predictor(*args, **kwargs):
      predictor, radius, description = make(*args, **kwargs)
      predict, calls = predictor.predict, []
      def predict_or_die(*a, **k):
        if len(calls) == stop_at:
          os.kill(os.getpid(), signal.SIGKILL)
        calls.append(1)
        return predict(*a, **k)
      predictor.predict = predict_or_die
      return predictor, radius, description
    infer.make_predictor = killing_predictor
    sys.exit(cli.main(["infer", "--input", clip, "--output", out, "--config", %r]))
""") % CONFIG


@pytest.fixture(scope="module")
def clip_and_reference(tmp_path_factory):
  """A moving 2-exposure clip (every frame's output differs) and an uninterrupted run."""
  root = tmp_path_factory.mktemp("resume")
  (clip,) = synth.write_clips(root / "clips", num_clips=1, num_frames=FRAMES, size=(48, 64),
                              seed=3)
  reference = root / "reference"
  assert cli.main(["infer", "--input", str(clip), "--output", str(reference),
                   "--config", CONFIG]) == 0
  return clip, reference


def stop_predictions(monkeypatch, after: int) -> None:
  """Makes `infer` predictors raise KeyboardInterrupt (Ctrl-C) when asked for their
  prediction number `after` (0-based, counted per predictor)."""
  make = infer.make_predictor

  def interrupting_predictor(*args, **kwargs):
    predictor, radius, description = make(*args, **kwargs)
    predict, calls = predictor.predict, []

    def predict_or_stop(*a, **k):
      if len(calls) == after:
        raise KeyboardInterrupt
      calls.append(1)
      return predict(*a, **k)
    predictor.predict = predict_or_stop
    return predictor, radius, description

  monkeypatch.setattr(infer, "make_predictor", interrupting_predictor)


def assert_same_outputs(out: pathlib.Path, reference: pathlib.Path) -> None:
  """Bit for bit the same EXRs, a preview of every frame, and nothing else left behind."""
  names = sorted(p.name for p in (reference / "hdr").iterdir())
  assert sorted(p.name for p in (out / "hdr").iterdir()) == names and len(names) == FRAMES
  for name in names:
    np.testing.assert_array_equal(hdr_io.read_hdr(out / "hdr" / name),
                                  hdr_io.read_hdr(reference / "hdr" / name), err_msg=name)
  with av.open(str(out / "preview.mp4")) as video:
    assert sum(1 for _ in video.decode(video=0)) == FRAMES
  assert sorted(p.name for p in out.iterdir()) == ["hdr", "preview.mp4", "run.json"]
  assert not infer.partial_folder(out).exists()


def test_ctrl_c_keeps_the_finished_frames_and_resume_completes_them(
    clip_and_reference, tmp_path, monkeypatch, capsys):
  clip, reference = clip_and_reference
  out = tmp_path / "out"
  stop_predictions(monkeypatch, after=3)
  command = ["infer", "--input", str(clip), "--output", str(out), "--config", CONFIG]
  assert cli.main(command) == 130
  partial = infer.partial_folder(out)
  assert f"3 finished HDR frames are kept in {partial}" in capsys.readouterr().err
  assert not out.exists()
  assert sorted(p.name for p in (partial / "hdr").iterdir()) == [
      f"{i:05d}.exr" for i in range(3)]
  assert not (partial / "preview.mp4").exists()
  monkeypatch.undo()

  # Other settings than the stopped run's: refused before any frame, the partial kept.
  assert cli.main(command + ["--resume", "--attn-ratio", "0.5"]) == 2
  err = capsys.readouterr().err
  assert "cannot resume" in err and "differs in model" in err
  assert len(list((partial / "hdr").iterdir())) == 3

  assert cli.main(command + ["--resume"]) == 0
  assert "resumed at frame 3" in capsys.readouterr().out
  assert_same_outputs(out, reference)
  run = json.loads((out / "run.json").read_text())
  assert run["resumed_from_frame"] == 3 and run["frames_computed"] == FRAMES - 3


def test_a_killed_run_resumes_to_the_uninterrupted_outputs(clip_and_reference, tmp_path,
                                                             capsys):
  clip, reference = clip_and_reference
  out = tmp_path / "out"
  killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(clip), str(out), "2"],
                          capture_output=True, text=True, timeout=600,
                          cwd=pathlib.Path(__file__).parents[2])
  assert killed.returncode == -9, killed.stderr[-2000:]
  partial = infer.partial_folder(out)
  assert not out.exists() and sorted(p.name for p in (partial / "hdr").iterdir()) == [
      "00000.exr", "00001.exr"]
  # The dead process's lock mark is still there (stale: resuming takes it over).
  assert json.loads((partial / infer.LOCK_FILE).read_text())["pid"] != os.getpid()
  (partial / ".preview.0123.tmp.mp4").write_bytes(b"what a killed writer leaves")

  command = ["infer", "--input", str(clip), "--output", str(out), "--config", CONFIG]
  # Without --resume: one clear line naming the partial folder; nothing is touched.
  assert cli.main(command) == 2
  assert (f"left 2 HDR frames in {partial}: --resume continues it, --overwrite starts over"
          in capsys.readouterr().err)
  assert len(list((partial / "hdr").iterdir())) == 2

  # A frame file rewritten since the stop (here: its modification time) is refused.
  frame = sorted(clip.glob("*.png"))[4]
  stat = os.stat(frame)
  os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  try:
    with pytest.raises(infer.ResumeError, match="differs in input_files"):
      infer.run_inference(str(clip), str(out), config=CONFIG, resume=True, progress=False)
  finally:
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns))
  assert len(list((partial / "hdr").iterdir())) == 2

  assert cli.main(command + ["--resume"]) == 0
  assert_same_outputs(out, reference)
  assert json.loads((out / "run.json").read_text())["resumed_from_frame"] == 2


def test_overwrite_starts_over_and_resume_without_a_partial_starts_fresh(
    clip_and_reference, tmp_path):
  clip, reference = clip_and_reference
  out = tmp_path / "out"
  partial = infer.partial_folder(out)
  (partial / "hdr").mkdir(parents=True)
  (partial / "hdr" / "00000.exr").write_bytes(b"not from this run")
  summary = infer.run_inference(str(clip), str(out), config=CONFIG, overwrite=True,
                                progress=False)
  assert summary["resumed_from_frame"] == 0 and summary["frames_computed"] == FRAMES
  assert_same_outputs(out, reference)
  fresh = tmp_path / "fresh"
  assert infer.run_inference(str(clip), str(fresh), config=CONFIG, resume=True,
                             progress=False)["resumed_from_frame"] == 0
  assert_same_outputs(fresh, reference)


def test_a_batch_shares_one_model_and_a_stopped_batch_resumes(clip_and_reference, tmp_path,
                                                              monkeypatch, capsys):
  """`--input A --input B`: each into OUTPUT/<name>, every input checked first, the model
  compiled once; stopped in B, `--resume` skips the finished A and completes B."""
  clip, reference = clip_and_reference
  copy = tmp_path / "second"
  copy.mkdir()
  for f in clip.iterdir():
    if f.is_file():
      (copy / f.name).write_bytes(f.read_bytes())
  out = tmp_path / "batch"
  command = ["infer", "--input", str(clip), "--input", str(copy), "--output", str(out),
             "--config", CONFIG]
  # Checked before any compute: a missing input, two inputs of one name.
  assert cli.main(command + ["--input", str(tmp_path / "missing")]) == 2
  assert "missing" in capsys.readouterr().err and not out.exists()
  assert cli.main(command + ["--input", str(clip)]) == 2
  assert "would both write clip_0000/" in capsys.readouterr().err and not out.exists()

  stop_predictions(monkeypatch, after=FRAMES + 2)      # Frame 2 of the second input.
  assert cli.main(command) == 130
  assert "2 finished HDR frames are kept in" in capsys.readouterr().err
  first = json.loads((out / clip.name / "run.json").read_text())
  assert first["programs_compiled"] == 1 and first["compile_s"] > 0
  assert not (out / "second").exists()
  monkeypatch.undo()

  assert cli.main(command + ["--resume"]) == 0
  printed = capsys.readouterr().out
  assert f"{out / clip.name}: already complete (6 HDR frames)" in printed
  assert "resumed at frame 2" in printed and "2 inputs into" in printed
  for name in (clip.name, "second"):
    assert_same_outputs(out / name, reference)
  assert json.loads((out / clip.name / "run.json").read_text()) == first
  # A finished output made with other settings is not taken as done.
  assert cli.main(command + ["--resume", "--attn-ratio", "0.5"]) == 2
  assert f"the finished output {out / clip.name} differs in model" in capsys.readouterr().err

  # One predictor for both: the second input runs on the first one's compiled program.
  # `exposures` is for inputs without their own: these folders keep their exposures.txt.
  summaries = infer.run_batch([str(clip), str(copy)], str(tmp_path / "again"), config=CONFIG,
                              progress=False, preview=False, exposures="0,1")
  assert summaries[0]["compile_s"] > 0 and summaries[1]["compile_s"] == 0
  assert summaries[0]["stops"] == summaries[1]["stops"] == first["stops"]
  assert first["stops"][:2] != [0.0, 1.0]


def test_frames_writes_a_segment_equal_to_the_full_run(clip_and_reference, tmp_path, capsys):
  """`--frames 2:5`: frames 2, 3, 4 only, each equal to the full run's (their windows read
  the frames around them); a bad range is one clear line and nothing written."""
  clip, reference = clip_and_reference
  out = tmp_path / "segment"
  command = ["infer", "--input", str(clip), "--config", CONFIG]
  assert cli.main(command + ["--output", str(out), "--frames", "2:5"]) == 0
  names = sorted(p.name for p in (out / "hdr").iterdir())
  assert names == [f"{i:05d}.exr" for i in range(2, 5)]
  for name in names:
    np.testing.assert_array_equal(hdr_io.read_hdr(out / "hdr" / name),
                                  hdr_io.read_hdr(reference / "hdr" / name), err_msg=name)
  run = json.loads((out / "run.json").read_text())
  assert run["frames"] == 3 and run["frame_range"] == [2, 5]
  with av.open(str(out / "preview.mp4")) as video:
    assert sum(1 for _ in video.decode(video=0)) == 3
  capsys.readouterr()
  for bad in ("5:2", "0:7", "a:b", "3"):
    assert cli.main(command + ["--output", str(tmp_path / "bad"), "--frames", bad]) == 2
    assert f"--frames {bad}" in capsys.readouterr().err
  assert not (tmp_path / "bad").exists() and not infer.partial_folder(tmp_path / "bad").exists()
