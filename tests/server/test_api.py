"""The web app's HTTP API on the bundled demo scene, through FastAPI's TestClient."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from fastapi.testclient import TestClient

from mvsam.demo.run import ground_truth_instances
from mvsam.server import create_app

from .conftest import BASE_URL, SPHERE, masks_of, read_png, wait_ready

NEGATIVE = {"view": 0, "x": 300.0, "y": 300.0, "label": 0}  # on the sphere's right edge: cuts it off


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_click_undo_redo_restart(make_workspace, tmp_path):
    out = tmp_path / "out"
    with TestClient(create_app(make_workspace(out)), base_url=BASE_URL) as client:
        status = wait_ready(client)
        assert status["stage"] == "ready" and status["progress"] == 1.0
        views = client.get("/api/views").json()
        assert [v["name"] for v in views] == [f"{i}.jpg" for i in range(8)]
        assert views[0] == {"index": 0, "name": "0.jpg", "width": 640, "height": 480}
        assert client.get("/api/views/0/image").content[:2] == b"\xff\xd8"  # the scene's JPEG

        created = client.post("/api/objects", json={})
        assert created.status_code == 200 and created.json()["id"] == 1
        update = client.post("/api/objects/1/prompts", json=SPHERE).json()
        assert update["views_changed"] == list(range(8)) and update["seconds"] > 0
        first = masks_of(client, 1)
        ious = [_iou(mask, ground_truth_instances(i) == 1) for i, mask in enumerate(first)]
        assert np.mean(ious) >= 0.95, ious
        assert all(mask.shape == (480, 640) for mask in first)

        second_update = client.post("/api/objects/1/prompts", json=NEGATIVE).json()
        second = masks_of(client, 1)
        undone = client.post("/api/objects/1/undo").json()
        assert all(np.array_equal(a, b) for a, b in zip(masks_of(client, 1), first, strict=True))
        assert set(undone["views_changed"]) == set(second_update["views_changed"])
        client.post("/api/objects/1/redo")
        assert all(np.array_equal(a, b) for a, b in zip(masks_of(client, 1), second, strict=True))
        described = client.get("/api/objects").json()
        assert described[0]["prompts"] == [SPHERE, NEGATIVE] and described[0]["can_undo"]
        assert described[0]["visible_views"] == list(range(8))

        overlay = read_png(client.get("/api/views/3/overlay.png"))
        assert overlay.ndim == 3 and overlay.shape[2] == 4 and overlay[..., 3].max() == 255
        cameras = client.get("/api/scene/cameras").json()
        assert len(cameras) == 8 and len(cameras[0]["world_from_cam"]) == 4
        assert 0.5 < cameras[0]["median_depth"] < 2.0  # metres: the cameras stand 1 m from the table centre
        ply = client.get("/api/objects/1/points.ply")
        assert ply.status_code == 200 and ply.content.startswith(b"ply")

        archive = zipfile.ZipFile(io.BytesIO(client.get("/api/export.zip").content))
        names = set(archive.namelist())
        assert {"coco.json", "objects.json", "points/1_object_1.ply", "overlays/0.jpg"} <= names
        assert all(f"masks/1_object_1/{i}.png" in names for i in range(8))
        coco = json.loads(archive.read("coco.json"))
        assert len(coco["images"]) == 8 and coco["categories"] == [{"id": 1, "name": "object 1"}]
        assert len(coco["annotations"]) == 8 and coco["annotations"][0]["segmentation"]["size"] == [480, 640]

    saved = json.loads((out / "state.json").read_text())
    assert saved["objects"][0]["steps"] == [[SPHERE], [NEGATIVE]]
    # a restart replays the saved prompts: the same masks, ids and undo
    with TestClient(create_app(make_workspace(out)), base_url=BASE_URL) as client:
        wait_ready(client)
        assert client.get("/api/objects").json()[0]["prompts"] == [SPHERE, NEGATIVE]
        assert all(np.array_equal(a, b) for a, b in zip(masks_of(client, 1), second, strict=True))
        assert client.post("/api/objects", json={"name": "box"}).json() == {
            "id": 2,
            "name": "box",
            "color": client.get("/api/objects/2").json()["color"],
        }
        client.post("/api/objects/1/undo")
        assert all(np.array_equal(a, b) for a, b in zip(masks_of(client, 1), first, strict=True))
        client.post("/api/objects/1/clear")
        assert not any(mask.any() for mask in masks_of(client, 1))
        assert client.delete("/api/objects/1").json() == {"deleted": 1}
        assert [o["id"] for o in client.get("/api/objects").json()] == [2]
