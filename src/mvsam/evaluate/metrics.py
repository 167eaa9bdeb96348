"""Mask metrics: region scores, DAVIS's boundary F and J&F, 3AM's Pos/Suc IoU, MastSAM's consistency.

Masks are HxW bool arrays, or integer arrays where non-zero is foreground; float masks are refused so a
probability map is never silently thresholded. Empty-set conventions follow DAVIS: when both masks are
empty every score is 1; an empty prediction has precision 1 (it claims nothing wrong), an empty ground truth
has recall 1, and F is 0 whenever precision or recall is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from mvsam.lift.project import check_depth, unproject_pixels, visible_mask
from mvsam.scene import Camera


def _binary(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be an HxW mask, got shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if np.issubdtype(mask.dtype, np.integer):
        return mask != 0
    raise ValueError(f"{name} must be bool or integer (non-zero = foreground), got dtype {mask.dtype}")


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _binary(pred, "pred"), _binary(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} differs from gt shape {gt.shape}")
    return pred, gt


def _ratio(numerator: int, denominator: int, empty: float) -> float:
    return empty if denominator == 0 else numerator / denominator


def _f_measure(precision_value: float, recall_value: float) -> float:
    total = precision_value + recall_value
    return 0.0 if total == 0 else 2 * precision_value * recall_value / total


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union (DAVIS's J); 1 when both masks are empty."""
    pred, gt = _pair(pred, gt)
    return _ratio(int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt)), empty=1.0)


def pixel_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """Share of pixels labelled correctly (foreground and background alike)."""
    pred, gt = _pair(pred, gt)
    return float(np.count_nonzero(pred == gt)) / pred.size


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    """Share of predicted foreground that is true foreground; 1 for an empty prediction."""
    pred, gt = _pair(pred, gt)
    return _ratio(int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred)), empty=1.0)


def recall(pred: np.ndarray, gt: np.ndarray) -> float:
    """Share of true foreground that is predicted; 1 for an empty ground truth."""
    pred, gt = _pair(pred, gt)
    return _ratio(int(np.count_nonzero(pred & gt)), int(np.count_nonzero(gt)), empty=1.0)


def f1(pred: np.ndarray, gt: np.ndarray) -> float:
    """Harmonic mean of precision and recall (the Dice coefficient when both are non-empty)."""
    return _f_measure(precision(pred, gt), recall(pred, gt))


def boundary_tolerance(height: int, width: int, fraction: float = 0.008) -> int:
    """DAVIS's boundary match tolerance: ceil(fraction x image diagonal) pixels (8 px at 854x480)."""
    return math.ceil(fraction * math.hypot(height, width))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """HxW bool one-pixel inner boundary: the mask minus its 3x3 erosion (the image edge is no boundary)."""
    mask = _binary(mask, "mask")
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return mask & ~eroded.astype(bool)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance_px: int | None = None) -> float:
    """DAVIS's boundary F-measure (F): how well the mask outlines match, within ``tolerance_px``.

    Boundary precision is the share of the prediction's boundary pixels within ``tolerance_px`` of the
    ground truth's boundary (a dilation by a disk of that radius), recall the converse; F = 2PR / (P + R).
    The default tolerance is :func:`boundary_tolerance` of the image size.
    """
    pred, gt = _pair(pred, gt)
    if tolerance_px is None:
        tolerance_px = boundary_tolerance(*gt.shape)
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    pred_boundary, gt_boundary = boundary_map(pred), boundary_map(gt)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1, 2 * tolerance_px + 1))
    near_gt = cv2.dilate(gt_boundary.astype(np.uint8), disk).astype(bool)
    near_pred = cv2.dilate(pred_boundary.astype(np.uint8), disk).astype(bool)
    n_pred, n_gt = int(np.count_nonzero(pred_boundary)), int(np.count_nonzero(gt_boundary))
    if n_pred == 0 and n_gt == 0:
        return 1.0
    boundary_precision = _ratio(int(np.count_nonzero(pred_boundary & near_gt)), n_pred, empty=1.0)
    boundary_recall = _ratio(int(np.count_nonzero(gt_boundary & near_pred)), n_gt, empty=1.0)
    return _f_measure(boundary_precision, boundary_recall)


def _frames(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> None:
    if len(preds) != len(gts):
        raise ValueError(f"got {len(preds)} predicted frames and {len(gts)} ground-truth frames")
    if len(gts) == 0:
        raise ValueError("no frames to score")


@dataclass
class DavisScore:
    """DAVIS region (J = IoU) and boundary (F) scores of one sequence; ``jf`` is their mean."""

    j: float
    f: float
    jf: float
    frame_j: np.ndarray  # T float64
    frame_f: np.ndarray  # T float64


def davis_j_and_f(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> DavisScore:
    """J, F and J&F of one sequence, averaged over the frames given.

    Pass only the frames to score: in the semi-supervised protocol the first frame's mask is the prompt
    and is left out.
    """
    _frames(preds, gts)
    frame_j = np.array([iou(p, g) for p, g in zip(preds, gts, strict=True)])
    frame_f = np.array([boundary_f(p, g) for p, g in zip(preds, gts, strict=True)])
    j, f = float(frame_j.mean()), float(frame_f.mean())
    return DavisScore(j=j, f=f, jf=(j + f) / 2, frame_j=frame_j, frame_f=frame_f)


def pos_iou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """3AM's Positive IoU: mean IoU over the frames whose ground truth contains the object.

    Frames where the object is absent are left out, so reporting "absent" everywhere cannot score well.
    NaN when the object is absent from every frame.
    """
    _frames(preds, gts)
    scores = [iou(p, g) for p, g in zip(preds, gts, strict=True) if np.any(_binary(g, "gt"))]
    return float(np.mean(scores)) if scores else float("nan")


def suc_iou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], threshold: float = 0.5) -> float:
    """3AM's Successful IoU: the share of all frames whose IoU is above ``threshold`` (strictly).

    A frame where the object is absent and the prediction is empty has IoU 1, so it counts as a success.
    """
    _frames(preds, gts)
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    return float(np.mean([iou(p, g) > threshold for p, g in zip(preds, gts, strict=True)]))


@dataclass
class ConsistencyScore:
    """MastSAM's multi-view consistency over ordered view pairs (a, b).

    ``pair_scores[i]`` is the share of the pixels of view a, that view b sees too, whose labels agree; NaN
    when the two views share no pixel. ``score`` averages the pairs that share pixels.
    """

    score: float
    pairs: list[tuple[int, int]]
    pair_scores: np.ndarray  # P float64
    pair_counts: np.ndarray  # P int64: pixels compared


def multiview_consistency(
    cameras: Sequence[Camera],
    depths: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    pairs: Sequence[tuple[int, int]] | None = None,
    rel_tol: float = 0.02,
    stride: int = 1,
) -> ConsistencyScore:
    """How often pixels of two views that see the same 3D point carry the same label.

    Each pixel of view a with known depth (every ``stride``-th row and column) is unprojected, projected
    into view b and kept when b's depth there agrees within ``rel_tol`` (z-buffer visibility); then its
    label in a is compared with b's label at that pixel. ``labels`` are HxW bool masks (agreement: both
    inside or both outside) or integer instance-ID maps (agreement: the same global ID, background
    included), at the resolution of ``depths``. ``pairs`` defaults to every ordered pair of views.
    A constant labelling scores 1, so report this beside accuracy, never alone.
    """
    if not len(cameras) == len(depths) == len(labels):
        raise ValueError(f"got {len(cameras)} cameras, {len(depths)} depth maps and {len(labels)} label maps")
    if len(cameras) < 2:
        raise ValueError("consistency needs at least two views")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    depths = [check_depth(depth, f"depth {i}") for i, depth in enumerate(depths)]
    labels = [np.asarray(label) for label in labels]
    for i, (depth, label) in enumerate(zip(depths, labels, strict=True)):
        if label.dtype != bool and not np.issubdtype(label.dtype, np.integer):
            raise ValueError(f"labels {i} must be bool or integer IDs, got dtype {label.dtype}")
        if label.shape != depth.shape:
            raise ValueError(f"labels {i} shape {label.shape} differs from depth shape {depth.shape}")
    if pairs is None:
        pairs = [(a, b) for a in range(len(cameras)) for b in range(len(cameras)) if a != b]
    for a, b in pairs:
        if not (0 <= a < len(cameras) and 0 <= b < len(cameras)) or a == b:
            raise ValueError(f"pair ({a}, {b}) must name two different views in 0..{len(cameras) - 1}")
    scores = np.full(len(pairs), np.nan)
    counts = np.zeros(len(pairs), dtype=np.int64)
    source = -1
    for index, (a, b) in enumerate(tqdm(pairs, desc="consistency", unit="pair", leave=False)):
        if a != source:  # pairs from one view come together by default: unproject it once
            grid = np.zeros(depths[a].shape, dtype=bool)
            grid[::stride, ::stride] = True
            grid &= np.isfinite(depths[a]) & (depths[a] > 0)
            points = unproject_pixels(cameras[a], depths[a], grid)
            labels_a = labels[a][grid]
            source = a
        visibility = visible_mask(cameras[b], depths[b], points, rel_tol=rel_tol)
        seen = visibility.visible
        counts[index] = np.count_nonzero(seen)
        if counts[index]:
            agree = labels_a[seen] == labels[b].reshape(-1)[visibility.pixel[seen]]
            scores[index] = np.count_nonzero(agree) / counts[index]
    shared = ~np.isnan(scores)
    score = float(scores[shared].mean()) if np.any(shared) else float("nan")
    return ConsistencyScore(score=score, pairs=list(pairs), pair_scores=scores, pair_counts=counts)
