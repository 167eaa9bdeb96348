"""Deterministic prompts derived from ground truth, so anyone can reproduce a benchmark's clicks.

- :func:`protocol_clicks`: the multi-view protocol's clicks (``shared/data/README.md``): positive clicks at
  the interior points of the mask farthest from its boundary, one per component in order of size first,
  then the next-farthest points (also away from the clicks already placed), plus negative clicks in the
  background near the object.
- :func:`correction_click`: a simulated user's next click, at the heart of the largest error region
  (positive on missed object, negative on false foreground), as in interactive-segmentation evaluation.
Ties are broken by row-major pixel order (``np.argmax``), so the same mask always gives the same clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class ProtocolClicks:
    """Clicks on one view: Nx2 float64 (x, y) pixels and N int64 labels (1 object, 0 background)."""

    points: np.ndarray
    labels: np.ndarray


def _check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be an HxW array, got shape {mask.shape}")
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"{name} must be bool or integer (non-zero = object), got dtype {mask.dtype}")
        mask = mask != 0
    return mask


def _inside_distance(mask: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Distance of each mask pixel to the nearest non-mask or blocked pixel (the image edge is outside)."""
    free = np.pad((mask & ~blocked).astype(np.uint8), 1)
    return cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def protocol_clicks(
    mask: np.ndarray,
    positives: int = 3,
    negatives: int = 1,
    min_component: float = 0.05,
    negative_offset: float = 0.05,
) -> ProtocolClicks:
    """The multi-view protocol's clicks for an HxW ground-truth mask.

    Positive click k goes into the k-th largest component while there are components of at least
    ``min_component`` x the mask's area, else anywhere in the mask; it is the pixel farthest from the
    boundary and from the clicks placed before. Negative clicks lie in the background at a distance of
    ``negative_offset`` x the mask's box diagonal (at least 5 px) from the object, the first nearest the
    first positive click and the next farthest from the negatives before.
    """
    mask = _check_mask(mask)
    if positives < 1 or negatives < 0:
        raise ValueError(f"need positives >= 1 and negatives >= 0, got {positives} and {negatives}")
    if not mask.any():
        raise ValueError("the mask is empty: there is no object to click on")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = [1 + int(i) for i in np.argsort(-areas, kind="stable") if areas[i] >= min_component * areas.sum()]
    blocked = np.zeros_like(mask)
    points = []
    for k in range(positives):
        region = labels == order[k] if k < len(order) else mask
        distance = _inside_distance(region, blocked)
        if distance.max() <= 0:
            distance = _inside_distance(mask, blocked)
            if distance.max() <= 0:
                break  # the mask is full of clicks already (tiny masks)
        row, col = np.unravel_index(int(np.argmax(distance)), mask.shape)
        points.append((float(col), float(row)))
        blocked[row, col] = True
    negatives_xy = _negative_clicks(mask, points[0], negatives, negative_offset)
    all_points = np.array(points + negatives_xy, dtype=np.float64).reshape(-1, 2)
    all_labels = np.array([1] * len(points) + [0] * len(negatives_xy), dtype=np.int64)
    return ProtocolClicks(all_points, all_labels)


def _negative_clicks(
    mask: np.ndarray, anchor: tuple[float, float], count: int, offset: float
) -> list[tuple[float, float]]:
    if count == 0 or mask.all():
        return []
    rows, cols = np.nonzero(mask)
    diagonal = float(np.hypot(cols.max() - cols.min() + 1, rows.max() - rows.min() + 1))
    wanted = max(5.0, offset * diagonal)
    outside = cv2.distanceTransform(np.pad((~mask).astype(np.uint8), 1, constant_values=1), cv2.DIST_L2, 5)
    outside = outside[1:-1, 1:-1]
    ring = (~mask) & (np.abs(outside - wanted) <= 1.0)
    if not ring.any():  # the image edge is too close: take the farthest background pixels instead
        ring = (~mask) & (outside >= outside.max() - 1.0)
    ring_rows, ring_cols = np.nonzero(ring)
    candidates = np.stack([ring_cols, ring_rows], axis=1).astype(np.float64)
    distance = np.linalg.norm(candidates - np.asarray(anchor), axis=1)
    chosen = [int(np.argmin(distance))]
    spread = np.linalg.norm(candidates - candidates[chosen[0]], axis=1)
    while len(chosen) < min(count, len(candidates)):
        chosen.append(int(np.argmax(spread)))
        spread = np.minimum(spread, np.linalg.norm(candidates - candidates[chosen[-1]], axis=1))
    return [(float(x), float(y)) for x, y in candidates[chosen]]


@dataclass
class CorrectionClick:
    """A simulated user's click: (x, y) pixels and whether it marks missed object (positive)."""

    x: float
    y: float
    positive: bool
    error_pixels: int  # size of the error region it was placed in


def correction_click(pred: np.ndarray, gt: np.ndarray) -> CorrectionClick | None:
    """The click a user would make next: deepest pixel of the largest error region, or None if perfect.

    Missed object (gt and not pred) gives a positive click, false foreground a negative one.
    """
    pred, gt = _check_mask(pred, "pred"), _check_mask(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")
    best: CorrectionClick | None = None
    for error, positive in ((gt & ~pred, True), (pred & ~gt, False)):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(error.astype(np.uint8), connectivity=8)
        if count <= 1:
            continue
        largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[largest, cv2.CC_STAT_AREA])
        if best is not None and area <= best.error_pixels:
            continue
        distance = _inside_distance(labels == largest, np.zeros_like(error))
        row, col = np.unravel_index(int(np.argmax(distance)), error.shape)
        best = CorrectionClick(float(col), float(row), positive, area)
    return best


def scribble_clicks(
    positive: np.ndarray, negative: np.ndarray | None = None, count: int = 5
) -> ProtocolClicks:
    """Clicks from scribbles (NVOS): up to ``count`` points spread along each HxW scribble mask.

    The first point of a scribble is its pixel nearest the scribble's centroid, the rest follow by
    farthest-point sampling, so long strokes are covered end to end.
    """
    positive = _check_mask(positive, "positive scribble")
    if not positive.any():
        raise ValueError("the positive scribble is empty: nothing marks the object")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    points, labels = [], []
    for scribble, label in ((positive, 1), (negative, 0)):
        if scribble is None:
            continue
        scribble = _check_mask(scribble, "scribble")
        if scribble.shape != positive.shape:
            raise ValueError(f"scribble shapes differ: {positive.shape} and {scribble.shape}")
        rows, cols = np.nonzero(scribble)
        if len(rows) == 0:
            continue
        pixels = np.stack([cols, rows], axis=1).astype(np.float64)
        chosen = [int(np.argmin(np.linalg.norm(pixels - pixels.mean(0), axis=1)))]
        spread = np.linalg.norm(pixels - pixels[chosen[0]], axis=1)
        while len(chosen) < min(count, len(pixels)) and spread.max() > 0:
            chosen.append(int(np.argmax(spread)))
            spread = np.minimum(spread, np.linalg.norm(pixels - pixels[chosen[-1]], axis=1))
        points.extend(pixels[chosen].tolist())
        labels.extend([label] * len(chosen))
    return ProtocolClicks(np.array(points, dtype=np.float64), np.array(labels, dtype=np.int64))
