"""Depth maps from RGB-D sequences, read and aligned to their colour image (shared by ScanNet and TUM)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_depth_png(path: Path, units_per_metre: float) -> np.ndarray:
    """16-bit depth PNG -> HxW float32 metres (0 = unknown). ValueError when unreadable or not 16-bit."""
    if not path.is_file():
        raise FileNotFoundError(f"depth image not found: {path}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"cannot read depth image {path}")
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise ValueError(f"{path}: expected a single-channel 16-bit depth PNG, got {raw.dtype} {raw.shape}")
    return raw.astype(np.float32) / np.float32(units_per_metre)


def align_depth(
    depth: np.ndarray,
    size: tuple[int, int],
    K_color: np.ndarray | None = None,
    K_depth: np.ndarray | None = None,
) -> np.ndarray:
    """Depth resampled (nearest neighbour) onto the colour image's (width, height) pixel grid.

    With both intrinsics, colour pixel p samples depth pixel K_depth K_color^-1 p (same optical centre and
    axes, as in ScanNet's exports); without them the depth map is simply resized.
    """
    width, height = size
    if depth.shape == (height, width) and (K_color is None or np.allclose(K_color, K_depth)):
        return depth
    if K_color is None or K_depth is None:
        return cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x = (K_depth[0, 0] * (xs - K_color[0, 2]) / K_color[0, 0] + K_depth[0, 2]).astype(np.float32)
    map_y = (K_depth[1, 1] * (ys - K_color[1, 2]) / K_color[1, 1] + K_depth[1, 2]).astype(np.float32)
    return cv2.remap(depth, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def confidence_of(depth: np.ndarray) -> np.ndarray:
    """1 where a sensor depth exists, 0 elsewhere (HxW float32)."""
    return (depth > 0).astype(np.float32)
