"""Mask utilities shared by the segmentation modes: one IoU, components, resampling, point sampling.

Masks are HxW bool arrays; points are (x, y) = (column, row) with pixel (0, 0) the centre of the top-left
pixel. The box, NMS and RLE helpers of SAM's own outputs live in :mod:`mvsam.sam.masks`.
"""

from __future__ import annotations

import cv2
import numpy as np

# The one convention for empty masks: two empty masks agree perfectly (IoU 1), an empty and a non-empty
# mask not at all (IoU 0). A mode that wants "no evidence" instead checks emptiness itself.
EMPTY_IOU = 1.0


def mask_iou(a: np.ndarray, b: np.ndarray, known: np.ndarray | None = None) -> float:
    """IoU of two HxW bool masks, counted over the ``known`` pixels only (all pixels if None).

    Empty vs empty (over the known pixels) is :data:`EMPTY_IOU`.
    """
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    if known is not None:
        known = np.asarray(known, dtype=bool)
        if known.shape != a.shape:
            raise ValueError(f"known shape {known.shape} differs from the masks' {a.shape}")
        a, b = a & known, b & known
    union = np.count_nonzero(a | b)
    return EMPTY_IOU if union == 0 else np.count_nonzero(a & b) / union


def pairwise_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels shared by every pair of N and M masks over the same P pixels: NxP, MxP bool -> NxM int64."""
    a = np.asarray(a, dtype=np.float32).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float32).reshape(len(b), -1)
    return np.rint(a @ b.T).astype(np.int64)


def keep_large_components(mask: np.ndarray, min_pixels: int, relative: float = 0.1) -> np.ndarray:
    """HxW bool without the 8-connected components smaller than max(min_pixels, relative x the largest)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.asarray(mask, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= max(min_pixels, relative * areas.max())
    return keep[labels]


def components(mask: np.ndarray, min_pixels: int = 1) -> list[np.ndarray]:
    """The 8-connected components of an HxW bool mask with at least ``min_pixels``, largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable") + 1
    return [labels == k for k in order if stats[k, cv2.CC_STAT_AREA] >= min_pixels]


def centre_indices(count_from: int, count_to: int) -> np.ndarray:
    """Index into a raster of ``count_from`` pixels of the pixel nearest each centre of ``count_to`` pixels
    covering the same extent (pixel centres at +0.5)."""
    centres = (np.arange(count_to) + 0.5) * count_from / count_to - 0.5
    return np.clip(np.rint(centres), 0, count_from - 1).astype(np.int64)


def sample_at_centres(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-centre resampling of an HxW(xC) array to ``size`` = (width, height) (depth, labels)."""
    width, height = size
    rows = centre_indices(array.shape[0], height)
    cols = centre_indices(array.shape[1], width)
    return array[np.ix_(rows, cols)]


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """HxW bool -> bool at ``size`` = (width, height): area-averaged when shrinking, > 0.5 kept."""
    mask = np.asarray(mask, dtype=np.float32)
    if (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask > 0.5
    shrinking = size[0] < mask.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(mask, tuple(size), interpolation=interpolation) > 0.5


def scale_points(xy: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Nx2 (x, y) pixels of a ``from_size`` raster -> the same places in a ``to_size`` raster (w, h)."""
    scale = np.array([to_size[0] / from_size[0], to_size[1] / from_size[1]])
    return (np.asarray(xy, dtype=np.float64).reshape(-1, 2) + 0.5) * scale - 0.5


def spread_points(candidates: np.ndarray, first: int, count: int) -> np.ndarray:
    """Farthest-point sampling: up to ``count`` rows of Nx2 ``candidates``, starting at row ``first``."""
    chosen = [first]
    distance = np.linalg.norm(candidates - candidates[first], axis=1)
    while len(chosen) < min(count, len(candidates)):
        nxt = int(np.argmax(distance))
        if distance[nxt] <= 0:
            break
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(candidates - candidates[nxt], axis=1))
    return candidates[chosen]


def distance_inside(mask: np.ndarray) -> np.ndarray:
    """HxW float32 distance of each mask pixel to the nearest pixel outside (the image border counts as
    outside); 0 outside the mask."""
    padded = np.pad(np.asarray(mask, dtype=np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def interior_points(mask: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` (x, y) points of an HxW bool mask, far from its edge and spread apart (Kx2 float).

    The first is the point farthest from the boundary; the rest are spread by farthest-point sampling over
    the pixels at least half as deep.
    """
    depth = distance_inside(mask)
    if count < 1 or depth.max() <= 0:
        return np.zeros((0, 2))
    rows, cols = np.nonzero(depth >= 0.5 * depth.max())
    candidates = np.stack([cols, rows], axis=1).astype(np.float64)
    return spread_points(candidates, int(np.argmax(depth[rows, cols])), count)


def peak_points(mask: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` (x, y) points of an HxW bool mask at separate peaks of its inside distance (Kx2 float).

    Unlike :func:`interior_points` each point is a local centre of the shape (the deepest pixel left after
    clearing a disc of twice the depth around each earlier pick), so a mask made of several parts (a rider
    and a bike, two legs) gets a point in each part deep enough: at least 1 pixel and 0.3 x the deepest.
    """
    distance = distance_inside(mask)
    points: list[tuple[float, float]] = []
    deepest = float(distance.max())
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        radius = float(distance[y, x])
        if radius < 1 or radius < 0.3 * deepest:
            break
        points.append((float(x), float(y)))
        cv2.circle(distance, (int(x), int(y)), int(max(2 * radius, 3)), 0, -1)
    return np.array(points, dtype=np.float64).reshape(-1, 2)
