"""Choosing among SAM's multimask candidates by agreement with what is already known about the object."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CandidateWeights:
    """Score of a candidate = ``agreement`` x IoU with the target over known pixels + ``score`` x SAM's
    predicted IoU; the predicted IoU only breaks near-ties between candidates that agree alike."""

    agreement: float = 1.0
    score: float = 0.05


def known_iou(candidates: np.ndarray, target: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """IoU of K candidate masks (Kxhxw bool) with one target (hxw bool) over the known pixels -> K floats.

    Empty vs empty over the known pixels scores 1 (:data:`mvsam.segment.masks.EMPTY_IOU`).
    """
    candidates = np.asarray(candidates, dtype=bool)
    target = np.asarray(target, dtype=bool)
    if known is not None:
        candidates = candidates & known
        target = target & known
    inter = np.count_nonzero(candidates & target, axis=(1, 2))
    union = np.count_nonzero(candidates | target, axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def choose_candidate(
    low_res_logits: np.ndarray,
    scores: np.ndarray,
    target: np.ndarray,
    known: np.ndarray | None = None,
    weights: CandidateWeights = CandidateWeights(),
) -> tuple[int, float]:
    """(index of the best candidate, its IoU with the target) among Kx256x256 low-res logits with K
    predicted IoUs; ``target`` and ``known`` are h x w bool on the working raster (the logits' top-left)."""
    height, width = target.shape
    masks = np.asarray(low_res_logits)[:, :height, :width] > 0
    agreement = known_iou(masks, target, known)
    total = weights.agreement * agreement + weights.score * np.asarray(scores, dtype=np.float64)
    best = int(np.argmax(total))
    return best, float(agreement[best])
