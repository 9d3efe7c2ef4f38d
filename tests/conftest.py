"""Shared test fixtures.

Real-content tests read HDR images from `$DEALTHDR_HDR_SOURCES`, else from
`../shared/hdr_sources` beside the repository. On a user's machine without either they skip
with the reason; CI sets `DEALTHDR_REQUIRE_SHARED=1`, which turns that skip into a failure.
"""
from __future__ import annotations

import os
import pathlib

# Tests check behaviour, not speed: XLA's CPU backend skips its LLVM optimisation passes,
# which cuts compilation (most of this suite's time) by 30-45 % and leaves the numbers
# alone (the tiny smoke run's losses are the same). Set before JAX starts; the training
# subprocesses inherit it (theirs add a device count to it).
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()

import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from data_pipeline import hdr_io  # noqa: E402  pylint: disable=wrong-import-position
from data_pipeline import response  # noqa: E402  pylint: disable=wrong-import-position

REPO = pathlib.Path(__file__).resolve().parents[1]


def _hdr_sources_dir() -> pathlib.Path | None:
  env = os.environ.get("DEALTHDR_HDR_SOURCES")
  candidates = [pathlib.Path(env)] if env else []
  candidates.append(REPO.parent / "shared" / "hdr_sources")
  for c in candidates:
    if c.is_dir() and any(c.glob("*.exr")):
      return c
  return None


# Test files by measured duration, longest first (the rest keep pytest's order after them).
# `make test` runs them with `--dist loadfile --no-loadscope-reorder`: each xdist worker
# runs one whole file (module fixtures are built once) and takes the next file in this order
# when it is done, so the long files start at once on both workers and the short ones fill
# in at the end. (The default `--dist load` hands each worker a block of consecutive tests:
# all of these went to one worker, which ran them one after the other.)
SLOW_FIRST = (
    "test_adapt.py", "test_train_smoke.py", "test_model.py", "test_train_resume.py",
    "test_train_flow.py", "test_lowering.py", "test_shipped_model.py",
    "test_train_multiprocess.py", "test_bench.py", "test_train_losses.py",
    "test_run_ablations.py", "test_device_check.py", "test_shipped_alignment.py",
    "test_fgma.py", "test_export.py", "test_train_divergence.py", "test_train_overfit.py",
    "test_predictor.py", "test_perceptual.py", "test_warp_response.py", "test_api.py",
    "test_infer_resume.py", "test_scoring.py", "test_flow_accuracy.py", "test_standard_benchmarks.py",
    "test_infer.py", "test_data_pipeline.py", "test_data_window_records.py")


def pytest_collection_modifyitems(config, items):
  """Moves the files of `SLOW_FIRST` to the front, in that order (stable otherwise)."""
  del config
  rank = {name: i for i, name in enumerate(SLOW_FIRST)}
  items.sort(key=lambda item: rank.get(pathlib.Path(str(item.fspath)).name, len(rank)))


@pytest.fixture(scope="session", autouse=True)
def shared_compilation_cache(tmp_path_factory):
  """One persistent XLA compilation cache for the session's processes (both xdist workers
  and the training subprocesses, which use the same folder): a program that several test
  files compile (the tiny model at one clip size, say) is compiled once."""
  import jax  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.getbasetemp().parent / "jax_cache"
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@pytest.fixture(scope="session")
def hdr_sources_dir() -> pathlib.Path:
  """Folder of real `.exr` HDR images (see module docstring)."""
  d = _hdr_sources_dir()
  if d is None:
    reason = ("no real HDR sources: set DEALTHDR_HDR_SOURCES to a folder of .exr files "
              "or put ../shared/hdr_sources beside the repository")
    if os.environ.get("DEALTHDR_REQUIRE_SHARED") == "1":
      pytest.fail(reason + " (required because DEALTHDR_REQUIRE_SHARED=1)")
    pytest.skip(reason)
  return d


@pytest.fixture
def static_clip(tmp_path):
  """A 5-frame 16-bit 2-exposure clip folder of a static scene, and its radiance.

  Frame i is the ideal quantised LDR of the radiance [36, 52, 3] at stops (0, 3, 0, 3, 0).
  """
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[0:36, 0:52] / 52.0
  radiance = (0.02 + 0.08 * (0.5 + 0.5 * np.sin(9 * xx) * np.cos(7 * yy)))[..., None]
  radiance = (radiance * rng.uniform(0.7, 1.0, 3)).astype(np.float32)
  folder = tmp_path / "clip"
  folder.mkdir(parents=True)
  stops = [0, 3, 0, 3, 0]
  for i, s in enumerate(stops):
    hdr_io.write_ldr(folder / f"frame_{i:03d}.png", response.radiance_to_ldr(radiance, s),
                     bits=16)
  (folder / "exposures.txt").write_text("\n".join(str(s) for s in stops) + "\n")
  return folder, radiance


@pytest.fixture
def moving_tiny_3exp():
  """(config, model, params): a tiny three-exposure model whose flow head moves (a new one
  outputs zero flow, under which a chained flow and the direct one agree)."""
  import jax  # pylint: disable=g-import-not-at-top
  from dealthdr_jax import config_loading, model_files  # pylint: disable=g-import-not-at-top
  from dealthdr_jax.models.dealthdr import DeAltHDR  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config("dealthdr_3exp:size=tiny")
  model = DeAltHDR.from_config(config.model)
  params = model_files.init_params(model, seed=5)
  rng = np.random.default_rng(2)
  params = {**params, "flow": jax.tree.map(
      lambda x: x + 0.05 * rng.standard_normal(x.shape).astype(x.dtype), params["flow"])}
  return config, model, params
