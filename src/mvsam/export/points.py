"""Each object's coloured 3D points from its masks and the scene's depth, and a labelled cloud of all."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mvsam.export.ply import write_ply
from mvsam.geometry.fusion import PointCloud, voxel_downsample
from mvsam.lift.project import resize_camera, unproject_pixels
from mvsam.scene import Scene


def working_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the long side is at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def masked_points(
    scene: Scene, masks: list[np.ndarray | None], max_side: int = 640, erode: int = 1, colors: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(Nx3 float64 world points, Nx3 uint8 colours) of the mask pixels with known depth in every view.

    With ``colors=False`` the images are not read and the colours are all 0.
    ``masks``: one HxW bool per scene view at image size, or None to skip the view. Masks are shrunk by
    ``erode`` pixels at the working raster first: edge pixels mix object and background depth.
    """
    all_xyz, all_rgb = [], []
    for view, mask in zip(scene.views, masks, strict=True):
        if mask is None or view.camera is None or view.depth is None or not mask.any():
            continue
        size = working_size(view.width, view.height, max_side)
        depth = cv2.resize(view.depth, size, interpolation=cv2.INTER_NEAREST)
        small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        if erode:
            small = cv2.erode(small, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
        select = small.astype(bool) & (depth > 0)
        if not select.any():
            continue
        camera = resize_camera(view.camera, *size)
        all_xyz.append(unproject_pixels(camera, depth, select))
        if colors:
            all_rgb.append(cv2.resize(view.load_image(), size, interpolation=cv2.INTER_AREA)[select])
        else:
            all_rgb.append(np.zeros((int(select.sum()), 3), np.uint8))
    if not all_xyz:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    return np.concatenate(all_xyz), np.concatenate(all_rgb)


def object_cloud(scene: Scene, masks: list[np.ndarray | None], points_per_side: int = 400) -> PointCloud:
    """The object's points, voxel-downsampled to about ``points_per_side`` voxels along its box diagonal."""
    xyz, rgb = masked_points(scene, masks)
    if len(xyz) == 0:
        return PointCloud(xyz, rgb)
    low, high = np.percentile(xyz, [1.0, 99.0], axis=0)
    voxel = max(float(np.linalg.norm(high - low)) / points_per_side, 1e-9)
    return voxel_downsample(xyz, rgb, voxel)


def export_points(clouds: dict[int, PointCloud], out: Path, labelled: bool) -> list[Path]:
    """``out/points/<object id>.ply`` per object and, when ``labelled``, ``out/points/instances.ply`` with
    every object's points and a per-vertex ``instance`` property (the object id)."""
    written = []
    for object_id, cloud in clouds.items():
        path = out / "points" / f"{object_id}.ply"
        write_ply(path, cloud.xyz, cloud.rgb)
        written.append(path)
    if labelled:
        path = out / "points" / "instances.ply"
        ids = np.concatenate([np.full(len(c), i, dtype=np.int32) for i, c in clouds.items()])
        write_ply(
            path,
            np.concatenate([c.xyz for c in clouds.values()]),
            np.concatenate([c.rgb for c in clouds.values()]),
            properties={"instance": ids},
        )
        written.append(path)
    return written
