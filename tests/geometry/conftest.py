"""A synthetic scene with exactly known geometry: a textured plane at z = 5 seen by four cameras."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mvsam.scene import Camera, Scene, View

PLANE_Z = 5.0
WIDTH, HEIGHT = 160, 120
K = np.array([[150.0, 0.0, 79.5], [0.0, 150.0, 59.5], [0.0, 0.0, 1.0]])
CENTRES = [(0.0, 0.0, 0.0), (0.4, 0.0, 0.0), (-0.4, 0.0, 0.0), (0.0, 0.3, 0.0)]


def render_plane(texture: np.ndarray, camera: Camera) -> np.ndarray:
    """HxWx3 uint8 view of the plane z = PLANE_Z whose texture covers x, y in [-4, 4]."""
    ys, xs = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    rays = (
        np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(camera.K).T @ camera.world_from_cam[:3, :3].T
    )
    centre = camera.center
    t = (PLANE_Z - centre[2]) / rays[..., 2]
    hit = centre + rays * t[..., None]
    size = texture.shape[0]
    map_x = ((hit[..., 0] + 4.0) / 8.0 * size - 0.5).astype(np.float32)
    map_y = ((hit[..., 1] + 4.0) / 8.0 * size - 0.5).astype(np.float32)
    return cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.fixture
def plane_scene(tmp_path) -> Scene:
    """Four posed views of a textured plane at camera depth 5 (world z), written as PNG files."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (1024, 1024, 3)).astype(np.float32), (0, 0), 1.5)
    texture = np.clip((texture - 127.5) * 4 + 127.5, 0, 255).astype(np.uint8)
    views = []
    for index, centre in enumerate(CENTRES):
        pose = np.eye(4)
        pose[:3, 3] = centre
        camera = Camera(K=K, world_from_cam=pose, width=WIDTH, height=HEIGHT)
        path = tmp_path / "images" / f"view{index}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(render_plane(texture, camera)).save(path)
        views.append(View(path.name, path, WIDTH, HEIGHT, camera=camera, depth_range=(2.0, 12.0)))
    return Scene(root=tmp_path, views=views, source_format="images", cache_dir=tmp_path / "cache")
