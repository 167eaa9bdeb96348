"""200 rapid clicks from two clients at once (real uvicorn, loopback): no error, and the final state equals
the sequential replay of each object's clicks.

Bounded to fit the test budget: a two-view subset of the demo scene and one propagation round per click.
"""

from __future__ import annotations

import shutil
import threading

import httpx
import numpy as np
from fastapi.testclient import TestClient

from mvsam.demo.run import SCENE_DIR
from mvsam.segment.interactive import SegmenterConfig
from mvsam.server import create_app

from .conftest import BASE_URL, LiveServer, masks_of, wait_ready

CLICKS = 200
SPHERE_CLICKS = [(265, 267, 1), (258, 262, 1), (300, 300, 0), (272, 272, 1), (266, 250, 1)]
BOX_CLICKS = [(277, 178, 1), (270, 172, 1), (285, 185, 1), (240, 250, 0), (280, 160, 1)]


def _two_views(folder):
    for sub in ("color", "depth", "pose"):
        (folder / sub).mkdir(parents=True)
    shutil.copytree(SCENE_DIR / "intrinsic", folder / "intrinsic")
    for pattern in ("color/{}.jpg", "depth/{}.png", "pose/{}.txt"):
        for view in (0, 2):
            shutil.copy(SCENE_DIR / pattern.format(view), folder / pattern.format(view))
    return folder


def test_two_clients_200_clicks(make_workspace, tmp_path):
    scene = _two_views(tmp_path / "scene")
    out = tmp_path / "out"
    config = SegmenterConfig(max_iterations=1)
    errors: list[str] = []
    with LiveServer(create_app(make_workspace(out, scene, config))) as server:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            wait_ready(client)
            ids = [client.post("/api/objects", json={}).json()["id"] for _ in range(2)]

        def clicker(object_id: int, clicks: list[tuple[int, int, int]]) -> None:
            with httpx.Client(base_url=server.url, timeout=300) as own:
                for k in range(CLICKS // 2):
                    x, y, label = clicks[k % len(clicks)]
                    body = {"view": 0, "x": x + k % 3, "y": y, "label": label}
                    response = own.post(f"/api/objects/{object_id}/prompts", json=body)
                    if response.status_code != 200:
                        errors.append(response.text)

        threads = [
            threading.Thread(target=clicker, args=(ids[0], SPHERE_CLICKS)),
            threading.Thread(target=clicker, args=(ids[1], BOX_CLICKS)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with httpx.Client(base_url=server.url) as client:
            final = {i: masks_of(client, i, views=2) for i in ids}
            objects = client.get("/api/objects").json()
    assert [len(obj["prompts"]) for obj in objects] == [CLICKS // 2, CLICKS // 2]
    assert all(final[i][0].any() for i in ids)
    # the sequential result: a restart replays each object's clicks one by one, in the order they came
    with TestClient(create_app(make_workspace(out, scene, config)), base_url=BASE_URL) as client:
        wait_ready(client)
        for i in ids:
            assert all(
                np.array_equal(a, b) for a, b in zip(masks_of(client, i, views=2), final[i], strict=True)
            )
