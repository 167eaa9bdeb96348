"""The web app on a video (a folder of DAVIS frames): click on one frame, track, undo, restart."""

from __future__ import annotations

import shutil

import numpy as np
from fastapi.testclient import TestClient

from mvsam.io.images import read_mask_png
from mvsam.server import Workspace, create_app

from .conftest import BASE_URL, masks_of, wait_ready

FRAMES = 6


def test_click_track_undo_restart(data_dir, mobile_sam_predictor, tmp_path):
    source = data_dir / "davis2016_train8"
    frames = tmp_path / "car-turn"
    frames.mkdir()
    for index in range(FRAMES):
        shutil.copy(source / "JPEGImages" / "480p" / "car-turn" / f"{index:05d}.jpg", frames)
    truth = [
        read_mask_png(source / "Annotations" / "480p" / "car-turn" / f"{i:05d}.png") for i in range(FRAMES)
    ]
    out = tmp_path / "out"

    def app():
        workspace = Workspace(
            frames,
            out,
            scene_options={"cache_dir": tmp_path / "cache"},
            predictor=mobile_sam_predictor,
            video=True,
        )
        return create_app(workspace)

    with TestClient(app(), base_url=BASE_URL) as client:
        assert wait_ready(client)["mode"] == "video"
        client.post("/api/objects", json={})
        clicked = client.post(
            "/api/objects/1/prompts", json={"view": 0, "x": 720, "y": 250, "label": 1}
        ).json()
        assert clicked["views_changed"] == [0]
        other_frame = client.post("/api/objects/1/prompts", json={"view": 3, "x": 700, "y": 250, "label": 1})
        assert other_frame.status_code == 400 and "one frame" in other_frame.json()["error"]
        tracked = client.post("/api/objects/1/track").json()
        assert tracked["views_changed"] == list(range(1, FRAMES))
        masks = masks_of(client, 1, views=FRAMES)
        ious = [(m & t).sum() / (m | t).sum() for m, t in zip(masks, truth, strict=True)]
        assert min(ious) > 0.8, ious
        assert client.get("/api/objects/1").json()["tracked"]
        assert client.post("/api/objects/1/track").status_code == 200  # tracking again changes nothing
        client.post("/api/objects/1/undo")
        client.post("/api/objects/1/undo")
        undone = masks_of(client, 1, views=FRAMES)
        assert undone[0].any() and not any(m.any() for m in undone[1:])
        client.post("/api/objects/1/redo")
    with TestClient(app(), base_url=BASE_URL) as client:  # a restart tracks again from the saved click
        wait_ready(client)
        restored = masks_of(client, 1, views=FRAMES)
        assert all(np.array_equal(a, b) for a, b in zip(restored, masks, strict=True))
