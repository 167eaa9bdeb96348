"""Segmenting a view that has no camera through feature correspondences alone (MastSAM's idea).

XFeat matches between the view and views already segmented carry each source view's mask across: a
target keypoint matched to a source keypoint inside the source's mask is a positive point, one matched
outside it a negative point. Matches must agree with the pair's fundamental matrix (RANSAC on the
distinctive matches), and a keypoint that several sources label takes their majority. SAM is then
prompted with a few of those points, spread apart, and the candidate that agrees with most of ALL
transferred points wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from mvsam.geometry.features import Features, match_mutual_nn
from mvsam.segment.masks import spread_points

MIN_INLIERS = 12  # per source view: fewer fundamental-matrix inliers are not trusted


@dataclass
class TransferredPoints:
    """Labelled points in the target view: ``xy`` Nx2 (x, y) full-resolution pixels, ``labels`` N int
    (1 inside the object, 0 outside), ``sources`` the number of source views that contributed."""

    xy: np.ndarray
    labels: np.ndarray
    sources: int


def _epipolar_distance(F: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Distance (pixels) of each ``second`` point to the epipolar line of its ``first`` point (Nx2 each),
    for the fundamental matrix with x2^T F x1 = 0."""
    lines = np.concatenate([first, np.ones((len(first), 1))], axis=1) @ F.T
    points = np.concatenate([second, np.ones((len(second), 1))], axis=1)
    return np.abs(np.sum(lines * points, axis=1)) / np.maximum(np.hypot(lines[:, 0], lines[:, 1]), 1e-12)


def verified_matches(
    target: Features, source: Features, min_cosine: float, max_ratio: float, max_error: float = 3.0
) -> np.ndarray | None:
    """Mx2 int64 (target, source) keypoint indices of the mutual matches within ``max_error`` pixels of
    their epipolar line; None when the pair's distinctive matches (ratio test ``max_ratio``) do not fix a
    fundamental matrix, so views that share nothing (e.g. noise) give none. Independent of any mask, so
    a segmenter keeps them across clicks."""
    strict = match_mutual_nn(target, source, min_cosine, max_ratio)
    if len(strict) < MIN_INLIERS:
        return None
    F, inliers = cv2.findFundamentalMat(
        target.xy[strict[:, 0]], source.xy[strict[:, 1]], cv2.FM_RANSAC, max_error, 0.999
    )
    if F is None or F.shape != (3, 3) or int(inliers.sum()) < MIN_INLIERS:
        return None
    pairs = match_mutual_nn(target, source, min_cosine)
    error = _epipolar_distance(F, target.xy[pairs[:, 0]].astype(np.float64), source.xy[pairs[:, 1]])
    return pairs[error < max_error]


def labels_from_matches(
    target: Features, sources: list[tuple[Features, np.ndarray | None, np.ndarray]]
) -> TransferredPoints:
    """Labels of the target's keypoints from (features, :func:`verified_matches` or None, HxW bool
    full-resolution mask) of source views; a keypoint that several sources label takes their majority."""
    keypoints, inside, used = [], [], 0
    for features, pairs, mask in sources:
        if pairs is None:
            continue
        height, width = mask.shape
        xy = np.rint(features.xy[pairs[:, 1]]).astype(np.int64)
        inside.append(mask[np.clip(xy[:, 1], 0, height - 1), np.clip(xy[:, 0], 0, width - 1)])
        keypoints.append(pairs[:, 0])
        used += 1
    if not keypoints:
        return TransferredPoints(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), 0)
    keys, inverse = np.unique(np.concatenate(keypoints), return_inverse=True)
    share = np.bincount(inverse, weights=np.concatenate(inside)) / np.bincount(inverse)
    labels = (share > 0.5).astype(np.int64)
    return TransferredPoints(target.xy[keys].astype(np.float64).reshape(-1, 2), labels, used)


@dataclass
class MatchCache:
    """XFeat features per image and :func:`verified_matches` per (target, source) image pair, keyed by
    image path. Neither depends on a mask and entries are only ever added, so a segmenter keeps them
    across clicks and its copies share one instead of copying ~1 MB of descriptors per view."""

    features: dict[str, Features] = field(default_factory=dict)
    matches: dict[tuple[str, str], np.ndarray | None] = field(default_factory=dict)

    def verified(
        self,
        keys: tuple[str, str],
        target: Features,
        source: Features,
        min_cosine: float,
        max_ratio: float,
    ) -> np.ndarray | None:
        """:func:`verified_matches` of (target, source), computed once per ``keys`` (their image paths)."""
        if keys not in self.matches:
            self.matches[keys] = verified_matches(target, source, min_cosine, max_ratio)
        return self.matches[keys]


def spread(points: np.ndarray, count: int, towards: np.ndarray | None = None) -> np.ndarray:
    """Up to ``count`` rows of Nx2 ``points`` spread apart, starting from the point nearest ``towards``
    (default: the points' median)."""
    if len(points) == 0 or count <= 0:
        return np.zeros((0, 2))
    centre = np.median(points, axis=0) if towards is None else towards
    return spread_points(points, int(np.argmin(np.linalg.norm(points - centre, axis=1))), count)


def agreement(candidate: np.ndarray, points: TransferredPoints) -> float:
    """Share of the transferred points an HxW bool candidate mask puts on their side."""
    if len(points.xy) == 0:
        return 0.0
    height, width = candidate.shape
    xy = np.rint(points.xy).astype(np.int64)
    inside = candidate[np.clip(xy[:, 1], 0, height - 1), np.clip(xy[:, 0], 0, width - 1)]
    return float(np.mean(inside == (points.labels == 1)))
