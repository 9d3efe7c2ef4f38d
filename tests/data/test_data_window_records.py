"""Pre-rendered training shards (`data_pipeline.window_records`, `dealthdr synth --format
array_record`): exact records, the on-the-fly stream reproduced, resumable writing and
reading, bad folders, the training source, and the same shards from Apache Beam."""
import argparse
import json
import os

import numpy as np
import pytest

from data_pipeline import pipeline
from data_pipeline import simulator as sim_lib
from data_pipeline import synth
from data_pipeline import window_records
from dealthdr_jax import config_loading
from dealthdr_jax.training import input_pipeline

CONFIG = sim_lib.SimulatorConfig(size=(32, 32))
SEED = 11


def _equal(a, b):
  assert sorted(a) == sorted(b)
  for k in a:
    assert np.asarray(a[k]).dtype == np.asarray(b[k]).dtype, k
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """6 records of CONFIG in 3 shard files, rendered by 2 processes."""
  out = tmp_path_factory.mktemp("shards") / "s"
  window_records.write_shards(out, CONFIG, seed=SEED, num_records=6, workers=2, num_shards=3)
  return out


def test_records_round_trip_exactly_and_frames_are_stored_as_codes():
  sample = pipeline.RenderSample(CONFIG, SEED, pipeline.NO_AUGMENT)(0)
  record = window_records.encode(sample)
  _equal(window_records.decode(record), sample)
  header = json.loads(record[8:8 + int.from_bytes(record[4:8], "little")])
  items = {h["key"]: h for h in header}
  assert items["frames"]["codec"] == "codes" and items["occlusion"]["codec"] == "bits"
  # Code values: 1 byte per value up to 8 bits, 2 above (4 as float32).
  per_value = 1 if int(sample["bits"]) <= 8 else 2
  assert items["frames"]["nbytes"] == sample["frames"].size * per_value
  assert items["occlusion"]["nbytes"] == -(-sample["occlusion"].size // 8)
  # Frames that are not exact code values are kept as float32, still exact.
  off_grid = dict(sample, frames=sample["frames"] + np.float32(1e-4))
  _equal(window_records.decode(window_records.encode(off_grid)), off_grid)
  with pytest.raises(window_records.ShardError, match="not a dealthdr shard record"):
    window_records.decode(b"JUNK" + record[4:])


def test_shards_reproduce_the_on_the_fly_stream_then_revisit_records(folder):
  meta = json.loads((folder / "shards.json").read_text())
  assert meta["complete"] and meta["num_records"] == 6 and meta["records_per_file"] == [2, 2, 2]
  assert sorted(p.name for p in folder.iterdir()) == ["shards.json"] + meta["files"]
  read = iter(window_records.make_shard_dataset(folder, seed=SEED, batch_size=2, crop=(32, 32)))
  rendered = pipeline.make_synthetic_loader(CONFIG, seed=SEED, batch_size=2)
  for _ in range(3):  # The first epoch is the on-the-fly source's stream, bit for bit.
    _equal(next(read), next(rendered))
  # Later epochs: the same records in another order, with fresh augmentation.
  reader = window_records.ShardReader(folder)
  records = [reader[i] for i in range(6)]
  later = [next(read) for _ in range(3)]
  hdrs = np.concatenate([b["hdr"] for b in later])
  assert [int(i) for b in later for i in b["index"]] == list(range(6, 12))
  matched = []
  for hdr in hdrs:
    hits = [i for i, r in enumerate(records)
            if any(np.array_equal(hdr, f(r["hdr"])) for f in
                   (lambda x: x, lambda x: x[:, ::-1], lambda x: x[::-1], lambda x: x[::-1, ::-1]))]
    assert len(hits) == 1
    matched.append(hits[0])
  assert sorted(matched) == list(range(6)) and matched != list(range(6))


def test_reading_resumes_from_a_checkpointed_state_and_shards_by_process(folder):
  it = iter(window_records.make_shard_dataset(folder, seed=SEED, batch_size=2, crop=(24, 24)))
  for _ in range(4):  # Into the second epoch.
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(2)]
  again = iter(window_records.make_shard_dataset(folder, seed=SEED, batch_size=2, crop=(24, 24)))
  again.set_state(state)
  for a, b in zip(expected, [next(again) for _ in range(2)]):
    _equal(a, b)
  assert expected[0]["frames"].shape == (2, 3, 24, 24, 3)
  # Two processes read disjoint, interleaved global samples.
  p0 = next(iter(window_records.make_shard_dataset(folder, seed=SEED, batch_size=2, shard_count=2)))
  p1 = next(iter(window_records.make_shard_dataset(folder, seed=SEED, batch_size=2, shard_index=1,
                                           shard_count=2)))
  assert list(p0["index"]) == [0, 2] and list(p1["index"]) == [1, 3]


def test_parallel_writing_is_deterministic_and_an_interrupted_run_resumes(folder, tmp_path):
  out = tmp_path / "one_process"
  meta = window_records.write_shards(out, CONFIG, seed=SEED, num_records=6, num_shards=3)
  for name in meta["files"]:  # Bytes do not depend on the number of workers.
    assert (out / name).read_bytes() == (folder / name).read_bytes()
  # A killed run: metadata says incomplete, one shard missing. Readers refuse it ...
  kept = out / meta["files"][0]
  before = kept.stat().st_mtime_ns
  os.utime(kept, ns=(before - 10**9, before - 10**9))
  (out / meta["files"][2]).unlink()
  (out / "shards.json").write_text(json.dumps(dict(meta, complete=False)))
  with pytest.raises(window_records.ShardError, match="incomplete.*run the same"):
    window_records.ShardReader(out)
  # ... and the same command renders only what is missing.
  window_records.write_shards(out, CONFIG, seed=SEED, num_records=6, num_shards=3)
  assert kept.stat().st_mtime_ns == before - 10**9
  assert (out / meta["files"][2]).read_bytes() == (folder / meta["files"][2]).read_bytes()
  assert json.loads((out / "shards.json").read_text())["complete"]
  # Another plan in the same folder: an error, nothing touched, unless overwrite.
  with pytest.raises(FileExistsError, match="another plan"):
    window_records.write_shards(out, CONFIG, seed=SEED + 1, num_records=6, num_shards=3)
  assert (out / meta["files"][0]).stat().st_mtime_ns == before - 10**9
  window_records.write_shards(out, CONFIG, seed=SEED + 1, num_records=4, num_shards=1, overwrite=True)
  assert sorted(p.name for p in out.iterdir()) == [
      "shards.json", "train-00000-of-00001.array_record"]


def test_bad_shard_folders_are_named(tmp_path, folder):
  with pytest.raises(window_records.ShardError, match="does not exist"):
    window_records.read_meta(tmp_path / "none")
  with pytest.raises(window_records.ShardError, match="no shards.json"):
    window_records.read_meta(tmp_path)
  (tmp_path / "shards.json").write_text("{")
  with pytest.raises(window_records.ShardError, match="not valid JSON"):
    window_records.read_meta(tmp_path)
  meta = json.loads((folder / "shards.json").read_text())
  (tmp_path / "shards.json").write_text(json.dumps(meta))
  with pytest.raises(window_records.ShardError, match="missing: train-00000-of-00003"):
    window_records.read_meta(tmp_path)
  (tmp_path / "shards.json").write_text(json.dumps(dict(meta, version=99)))
  with pytest.raises(window_records.ShardError, match="version 99"):
    window_records.read_meta(tmp_path)
  with pytest.raises(window_records.ShardError, match="pattern '2exp'.*3exp.*model reads 5.*crop=64"):
    window_records.check_compatible(meta, pattern="3exp", window=5, crop=64, where="here")
  with pytest.raises(FileExistsError, match="other files"):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    window_records.write_shards(tmp_path / "x", CONFIG, seed=0, num_records=2)
  assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def _synth(*argv):
  parser = argparse.ArgumentParser()
  synth.add_arguments(parser)
  args, overrides = parser.parse_known_args(list(argv))
  args.config_overrides = overrides
  return synth.main(args)


def _tiny_config(**data):
  config = config_loading.load_config("dealthdr_2exp:size=tiny")
  config.data.source = "array_record"
  for k, v in data.items():
    config.data[k] = v
  return config


def test_synth_command_and_the_training_source(tmp_path, capsys):
  out = tmp_path / "records"
  assert _synth("--out", str(out), "--format", "array_record", "--clips", "4",
                "--config", "dealthdr_2exp:size=tiny", "--config.data.source=synthetic",
                "--size", "40x40") == 0
  assert "4 windows of 3 frames at 40x40" in capsys.readouterr().out
  meta = window_records.read_meta(out)
  assert meta["simulator"]["pattern"] == "2exp" and meta["simulator"]["radius"] == 1
  # The training source reads them at data.crop, and validates on the shards' simulator.
  config = _tiny_config(records=str(out))
  input_pipeline.check(config)
  batch = next(input_pipeline.make_train_iterator(config, seed=0, batch_size=2))
  assert batch["frames"].shape == (2, 3, 32, 32, 3) and batch["hdr"].shape == (2, 32, 32, 3)
  val = input_pipeline.make_val_batches(config, batch_size=2)
  assert val[0]["flow"].shape == (2, 3, 32, 32, 2) and "valid" in val[0]
  # Shards that cannot feed the model, and options that do not apply, are errors.
  with pytest.raises(input_pipeline.DataError, match="needs data.records"):
    input_pipeline.check(_tiny_config())
  with pytest.raises(input_pipeline.DataError, match="smaller than data.crop=64"):
    input_pipeline.check(_tiny_config(records=str(out), crop=64))
  three = config_loading.load_config("dealthdr_3exp:size=tiny")
  three.data.source, three.data.records = "array_record", str(out)
  with pytest.raises(input_pipeline.DataError, match="pattern '2exp', the config's is '3exp'"):
    input_pipeline.check(three)
  assert _synth("--out", str(tmp_path / "x"), "--format", "array_record") == 2
  assert "needs --config" in capsys.readouterr().err
  assert _synth("--out", str(tmp_path / "x"), "--format", "array_record", "--config",
                "dealthdr_2exp:size=tiny", "--config.data.source=synthetic",
                "--pattern", "3exp") == 2
  assert "--pattern: clip-folder options" in capsys.readouterr().err
  assert _synth("--out", str(tmp_path / "x"), "--workers", "2") == 2
  assert not (tmp_path / "x").exists()


def test_beam_renders_the_same_shards(folder, tmp_path):
  try:
    from data_pipeline import window_records_beam  # pylint: disable=g-import-not-at-top
    import apache_beam  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    if os.environ.get("DEALTHDR_REQUIRE_BEAM"):
      raise
    pytest.skip("the `beam` extra is not installed (pip install -e '.[beam]')")
  meta = window_records_beam.write_shards_beam(str(tmp_path / "beam"), CONFIG, seed=SEED,
                                       num_records=6, num_shards=3)
  assert meta == json.loads((folder / "shards.json").read_text())
  for name in meta["files"]:
    assert (tmp_path / "beam" / name).read_bytes() == (folder / name).read_bytes()
  assert sorted(p.name for p in (tmp_path / "beam").iterdir()) == ["shards.json"] + meta["files"]
