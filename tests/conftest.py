"""Shared fixtures: paths to the real data in ../shared and the MobileSAM checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MVSAM_SHARED", REPO_ROOT.parent / "shared"))
DATA = SHARED / "data"
MOBILE_SAM_CHECKPOINT = SHARED / "weights" / "mobile_sam.pt"


def require(path: Path) -> Path:
    """Skip the test when a shared file is absent (CI always has ../shared)."""
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require(DATA)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return require(SHARED)


@pytest.fixture(scope="session")
def mobile_sam_checkpoint() -> Path:
    return require(MOBILE_SAM_CHECKPOINT)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Give every test its own empty user cache, never ~/.cache."""
    home = tmp_path / "mvsam_home"
    monkeypatch.setenv("MVSAM_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def mobile_sam_predictor(tmp_path_factory):
    """One MobileSAM predictor per test session, caching embeddings in a temporary folder."""
    from mvsam.sam import load_predictor

    checkpoint = require(MOBILE_SAM_CHECKPOINT)
    return load_predictor(
        "mobile_sam", checkpoint=checkpoint, cache_dir=tmp_path_factory.mktemp("embeddings")
    )
