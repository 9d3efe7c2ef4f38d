"""Shared test fixtures.

Real-content tests read HDR images from `$DEALTHDR_HDR_SOURCES`, else from
`../shared/hdr_sources` beside the repository. On a user's machine without either they skip
with the reason; CI sets `DEALTHDR_REQUIRE_SHARED=1`, which turns that skip into a failure.
"""
from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _hdr_sources_dir() -> pathlib.Path | None:
  env = os.environ.get("DEALTHDR_HDR_SOURCES")
  candidates = [pathlib.Path(env)] if env else []
  candidates.append(REPO.parent / "shared" / "hdr_sources")
  for c in candidates:
    if c.is_dir() and any(c.glob("*.exr")):
      return c
  return None


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
