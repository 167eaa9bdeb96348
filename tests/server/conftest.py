"""Fixtures for the web app: a workspace on the bundled demo scene, in-process or behind a real uvicorn."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvsam.demo.run import SCENE_DIR
from mvsam.geometry import GeometrySettings

SPHERE = {"view": 0, "x": 265.0, "y": 267.0, "label": 1}  # the demo's suggested click on object 1
BASE_URL = "http://127.0.0.1:8765"


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    """One cache folder for the demo scene's derived files (geometry) across the session."""
    return tmp_path_factory.mktemp("demo_cache")


@pytest.fixture(scope="session")
def server_predictor(mobile_sam_predictor):
    """The session's predictor (model and embedding cache shared) with the web app's decoder."""
    from mvsam.sam.accelerate import build_decoder
    from mvsam.sam.predictor import SamPredictor
    from mvsam.server.workspace import WEB_DECODER

    shared = mobile_sam_predictor
    decoder = build_decoder(shared.model, shared.model_type, shared.weights_id, WEB_DECODER)
    return SamPredictor(
        shared.model,
        shared.model_type,
        shared.weights_id,
        shared.cache,
        encoder=shared.encoder,
        encoder_name=shared.encoder_name,
        decoder=decoder,
    )


@pytest.fixture
def make_workspace(server_predictor, demo_cache):
    from mvsam.server import Workspace

    def make(out_dir: Path | None, scene_dir: Path = SCENE_DIR, config=None) -> Workspace:
        # the demo has exact depth and poses: no SfM points needed (triangulating them is the slow part)
        return Workspace(
            scene_dir,
            out_dir,
            scene_options={"cache_dir": demo_cache},
            geometry=GeometrySettings(triangulate=False),
            predictor=server_predictor,
            config=config,
        )

    return make


def wait_ready(client, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/api/status").json()
        assert status["error"] is None, status["error"]
        if status["ready"]:
            return status
        time.sleep(0.1)
    raise TimeoutError("the workspace did not become ready")


def read_png(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def masks_of(client, object_id: int, views: int = 8) -> list[np.ndarray]:
    return [read_png(client.get(f"/api/objects/{object_id}/masks/{i}.png")) > 0 for i in range(views)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app behind a real uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
