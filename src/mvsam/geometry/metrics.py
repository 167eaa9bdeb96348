"""Geometry quality checks against ground truth: pose rotation errors and depth-driven mask transfer."""

from __future__ import annotations

import numpy as np

from mvsam.scene import Camera


def relative_rotation_errors(estimated: list[np.ndarray], reference: list[np.ndarray]) -> np.ndarray:
    """Angles (degrees) between estimated and reference relative rotations of every pair of views.

    Inputs are 4x4 (or 3x3-blocked) ``world_from_cam`` poses in the same view order; relative rotations are
    frame-independent, so SfM's arbitrary world frame and scale do not matter. Returns N(N-1)/2 floats.
    """
    if len(estimated) != len(reference) or len(estimated) < 2:
        raise ValueError(
            f"need two equally long pose lists of >= 2 views, got {len(estimated)}, {len(reference)}"
        )
    est = [np.asarray(p, dtype=np.float64)[:3, :3] for p in estimated]
    ref = [np.asarray(p, dtype=np.float64)[:3, :3] for p in reference]
    errors = []
    for i in range(len(est)):
        for j in range(i + 1, len(est)):
            difference = (est[i].T @ est[j]).T @ (ref[i].T @ ref[j])
            cosine = np.clip((np.trace(difference) - 1.0) / 2.0, -1.0, 1.0)
            errors.append(np.degrees(np.arccos(cosine)))
    return np.asarray(errors)


def warp_mask(
    source_mask: np.ndarray, source_camera: Camera, target_camera: Camera, target_depth: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Transfer a source view's HsxWs bool mask into the target view through the TARGET's depth.

    Each target pixel with depth is lifted to 3D, projected into the source view and reads the source mask
    there (nearest pixel). Returns (HtxWt bool warped mask, HtxWt bool valid: depth > 0 and inside the
    source image). Occlusion in the source view is not modelled.
    """
    height, width = target_depth.shape
    if source_mask.shape != (source_camera.height, source_camera.width):
        raise ValueError(
            f"source mask is {source_mask.shape}, camera is {source_camera.height}x{source_camera.width}"
        )
    rows, cols = np.nonzero(target_depth > 0)
    points = target_camera.unproject(np.stack([cols, rows], axis=1), target_depth[rows, cols])
    xy, z = source_camera.project(points)
    x, y = np.rint(xy[:, 0]), np.rint(xy[:, 1])
    inside = (z > 0) & (x >= 0) & (y >= 0) & (x < source_camera.width) & (y < source_camera.height)
    warped = np.zeros((height, width), dtype=bool)
    valid = np.zeros((height, width), dtype=bool)
    valid[rows[inside], cols[inside]] = True
    warped[rows[inside], cols[inside]] = source_mask[y[inside].astype(np.int64), x[inside].astype(np.int64)]
    return warped, valid


def masked_iou(predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """IoU of two bool masks over the ``valid`` pixels only (1.0 when both are empty there)."""
    predicted, truth = predicted & valid, truth & valid
    union = np.count_nonzero(predicted | truth)
    return 1.0 if union == 0 else np.count_nonzero(predicted & truth) / union
