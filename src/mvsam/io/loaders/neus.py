"""IDR / NeuS layout (also DTU as released by those projects): ``cameras_sphere.npz`` + ``image/``.

``world_mat_i`` is K [R | t] as a 4x4 (world to image) for the i-th image in name order; it is decomposed
into K and world_from_cam. The world stays in the original (unnormalised) frame, e.g. millimetres for DTU.
``scale_mat_i`` maps the unit sphere that bounds the object to that world: it is not applied, but it gives
each view's ``depth_range`` (near, far) = distance to the sphere centre -/+ its radius. The ``mask/``
folder, when present, holds ground-truth object masks for evaluation and is not read here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvsam.io.conventions import projection_to_K_world_from_cam
from mvsam.io.images import list_images
from mvsam.io.loaders.common import (
    LoadOptions,
    Notes,
    make_camera,
    probe_images,
    require_file,
    require_views,
)
from mvsam.scene import Scene, View

CAMERAS_FILE = "cameras_sphere.npz"


def detect(root: Path) -> bool:
    return (root / CAMERAS_FILE).is_file()


def _image_folder(root: Path, image_subdir: str | None) -> Path:
    candidates = [image_subdir] if image_subdir else ["image", "images", "rgb"]
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(
        f"{root}: image folder not found (looked for {', '.join(c + '/' for c in candidates)})"
    )


def _depth_range(scale_mat: np.ndarray, center: np.ndarray) -> tuple[float, float] | None:
    """(near, far) of the bounding sphere seen from a camera centre, or None when the camera is inside it."""
    radius = float(np.cbrt(abs(np.linalg.det(scale_mat[:3, :3]))))
    distance = float(np.linalg.norm(center - scale_mat[:3, 3]))
    if not np.isfinite(radius) or distance <= radius:
        return None
    return distance - radius, distance + radius


def load(root: Path, options: LoadOptions) -> Scene:
    cameras_path = require_file(root / CAMERAS_FILE, "IDR/NeuS camera file")
    with np.load(cameras_path) as data:
        cameras = {key: np.asarray(data[key], dtype=np.float64) for key in data.files}
    folder = _image_folder(root, options.image_subdir)
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"{folder}: no image files")
    notes = Notes()
    sizes = probe_images(paths, notes)
    views = []
    for index, path in enumerate(paths):
        if path not in sizes:
            continue
        key = f"world_mat_{index}"
        if key not in cameras:
            raise ValueError(f"{cameras_path}: no {key} for image {path.name} (image #{index} in name order)")
        try:
            K, world_from_cam = projection_to_K_world_from_cam(cameras[key])
        except ValueError as error:
            notes.warn(f"skipped view {path.name}: {key}: {error}")
            continue
        camera = make_camera(path.name, K, world_from_cam, sizes[path], notes)
        if camera is None:
            continue
        scale_mat = cameras.get(f"scale_mat_{index}")
        depth_range = None if scale_mat is None else _depth_range(scale_mat, camera.center)
        width, height = sizes[path]
        views.append(View(path.name, path, width, height, camera=camera, depth_range=depth_range))
    require_views(len(views), root)
    return Scene(root=root, views=views, source_format="neus", cache_dir=options.cache_dir, notes=notes.lines)
