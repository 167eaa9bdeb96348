"""Fuse per-view depth into one coloured, voxel-downsampled world point cloud."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from mvsam.scene import Scene


@dataclass
class PointCloud:
    """World points with colours: xyz Nx3 float64, rgb Nx3 uint8."""

    xyz: np.ndarray
    rgb: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)


def voxel_downsample(xyz: np.ndarray, rgb: np.ndarray, voxel_size: float) -> PointCloud:
    """One point per occupied voxel: the mean position and mean colour of the points inside."""
    if voxel_size <= 0:
        raise ValueError(f"voxel_size must be positive, got {voxel_size}")
    if len(xyz) == 0:
        return PointCloud(np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    cells = np.floor(xyz / voxel_size).astype(np.int64)
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    mean_xyz = np.stack([np.bincount(inverse, xyz[:, k]) for k in range(3)], axis=1) / counts[:, None]
    mean_rgb = np.stack([np.bincount(inverse, rgb[:, k].astype(np.float64)) for k in range(3)], axis=1)
    mean_rgb = np.clip(np.rint(mean_rgb / counts[:, None]), 0, 255).astype(np.uint8)
    return PointCloud(mean_xyz, mean_rgb)


def fuse_depth(
    scene: Scene,
    min_confidence: float = 0.3,
    voxel_size: float | None = None,
    max_side: int = 512,
    progress: bool = True,
) -> PointCloud:
    """Unproject every view's confident depth (at most ``max_side`` px on the long side) and voxelise.

    ``voxel_size`` defaults to 1/500 of the 2-98 percentile extent of the points, so the cloud size does not
    depend on the scene's (arbitrary SfM) scale. Raises ValueError when no view has usable depth.
    """
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    all_xyz, all_rgb = [], []
    for view in tqdm(scene.views, desc="fusing depth", unit="view", disable=not progress):
        if view.camera is None or view.depth is None:
            continue
        scale = min(1.0, max_side / max(view.width, view.height))
        size = (max(1, round(view.width * scale)), max(1, round(view.height * scale)))
        depth = cv2.resize(view.depth, size, interpolation=cv2.INTER_NEAREST)
        confidence = (
            np.ones_like(depth)
            if view.depth_confidence is None
            else cv2.resize(view.depth_confidence, size, interpolation=cv2.INTER_NEAREST)
        )
        image = cv2.resize(view.load_image(), size, interpolation=cv2.INTER_AREA)
        rows, cols = np.nonzero((depth > 0) & (confidence >= min_confidence))
        # Pixel centres of the small grid in full-resolution pixel coordinates.
        x = (cols + 0.5) * view.width / size[0] - 0.5
        y = (rows + 0.5) * view.height / size[1] - 0.5
        xy = np.stack([x, y], axis=1)
        all_xyz.append(view.camera.unproject(xy, depth[rows, cols]))
        all_rgb.append(image[rows, cols])
    if not all_xyz or sum(len(p) for p in all_xyz) == 0:
        raise ValueError("no view has confident depth to fuse; compute geometry or lower min_confidence")
    xyz, rgb = np.concatenate(all_xyz), np.concatenate(all_rgb)
    if voxel_size is None:
        low, high = np.percentile(xyz, [2.0, 98.0], axis=0)
        voxel_size = max(float(np.linalg.norm(high - low)) / 500.0, 1e-9)
    return voxel_downsample(xyz, rgb, voxel_size)
