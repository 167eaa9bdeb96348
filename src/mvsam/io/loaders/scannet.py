"""ScanNet-style RGB-D export: ``color/ depth/ pose/ intrinsic/``.

``color/<i>.jpg`` with ``depth/<i>.png`` (16-bit millimetres), ``pose/<i>.txt`` (4x4 camera-to-world,
OpenCV axes) and ``intrinsic/intrinsic_color.txt`` (+ optional ``intrinsic_depth.txt``), 4x4 each, pixel
centre convention. Depth is resampled onto the colour grid (see ``rgbd.align_depth``) and stored in metres
with confidence 1 where measured. Frames with invalid poses (ScanNet marks lost tracking with -inf) are
skipped with a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.io.images import list_images
from mvsam.io.loaders.common import (
    LoadOptions,
    Notes,
    make_camera,
    probe_images,
    require_file,
    require_single_size,
    require_views,
)
from mvsam.io.loaders.rgbd import align_depth, confidence_of, read_depth_png
from mvsam.scene import Scene, View

FOLDERS = ("color", "depth", "pose", "intrinsic")


def detect(root: Path) -> bool:
    return all((root / name).is_dir() for name in FOLDERS)


def _read_matrix(path: Path, what: str) -> np.ndarray:
    """A 4x4 matrix written as text (ScanNet writes 'inf'/'-inf' for lost poses: those parse)."""
    require_file(path, what)
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: not a 4x4 text matrix: {error}") from error
    if matrix.shape != (4, 4):
        raise ValueError(f"{path}: expected a 4x4 matrix, got shape {matrix.shape}")
    return matrix


def load(root: Path, options: LoadOptions) -> Scene:
    for name in FOLDERS:
        if not (root / name).is_dir():
            raise FileNotFoundError(f"ScanNet folder not found: {root / name}")
    K_color = _read_matrix(root / "intrinsic" / "intrinsic_color.txt", "colour intrinsics")[:3, :3]
    depth_intrinsics = root / "intrinsic" / "intrinsic_depth.txt"
    K_depth = (
        _read_matrix(depth_intrinsics, "depth intrinsics")[:3, :3] if depth_intrinsics.is_file() else None
    )
    paths = list_images(root / "color")
    notes = Notes()
    sizes = probe_images(paths, notes)
    if not sizes:
        require_views(0, root)
    size = require_single_size(sizes, "intrinsic_color.txt describes one camera")
    views = []
    for path in tqdm(paths, desc="reading RGB-D frames", unit="frame", disable=len(paths) < 50, leave=False):
        if path not in sizes:
            continue
        world_from_cam = _read_matrix(root / "pose" / f"{path.stem}.txt", "pose")
        camera = make_camera(path.name, K_color, world_from_cam, size, notes)
        if camera is None:
            continue
        try:
            depth = read_depth_png(root / "depth" / f"{path.stem}.png", 1000.0)
        except ValueError as error:
            notes.warn(f"skipped view {path.name}: {error}")
            continue
        depth = align_depth(depth, size, K_color if K_depth is not None else None, K_depth)
        views.append(
            View(path.name, path, *size, camera=camera, depth=depth, depth_confidence=confidence_of(depth))
        )
    require_views(len(views), root)
    return Scene(root, views, "scannet", options.cache_dir, notes=notes.lines)
