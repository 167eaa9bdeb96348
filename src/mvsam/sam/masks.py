"""Mask utilities shared by SAM's consumers: boxes, greedy NMS, stability, clean-up, COCO RLE.

Boxes are XYXY pixel-edge boxes: a mask whose pixels span columns c0..c1 and rows r0..r1 has the
box (c0, r0, c1 + 1, r1 + 1), so box area equals the pixel area of a full rectangle. This is the
same extent pycocotools reports as (x, y, w, h).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from pycocotools import mask as coco_mask
from scipy import sparse

from mvsam.sam.model import IMAGE_SIZE, LOW_RES_MASK_SIZE

# cv2.resize is fastest with at most 4 channels per call.
_RESIZE_CHANNELS = 4


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of Nx4 and Mx4 XYXY boxes -> NxM float64 (0 where both boxes are empty)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    union = area_a[:, None] + area_b[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def box_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, tiebreak: np.ndarray | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression: indices of kept boxes, best score first.

    boxes Nx4 XYXY, scores N (higher is better; ``tiebreak`` N orders equal scores). A box is
    dropped when its IoU with an already kept box is greater than ``iou_threshold``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"box_nms needs one score per box, got {len(scores)} scores for {len(boxes)} boxes")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    keys = (-scores,) if tiebreak is None else (-np.asarray(tiebreak, dtype=np.float64), -scores)
    order = np.lexsort(keys)
    iou = box_iou(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        kept.append(order[rank])
        suppressed |= iou[rank] > iou_threshold
    return np.asarray(kept, dtype=np.int64)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """KxHxW bool masks -> Kx4 int64 XYXY pixel-edge boxes (all zeros for an empty mask)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be KxHxW, got shape {masks.shape}")
    boxes = np.zeros((len(masks), 4), dtype=np.int64)
    if masks.size == 0:
        return boxes
    columns = masks.any(axis=1)  # KxW
    rows = masks.any(axis=2)  # KxH
    present = columns.any(axis=1)
    width, height = masks.shape[2], masks.shape[1]
    boxes[:, 0] = columns.argmax(axis=1)
    boxes[:, 1] = rows.argmax(axis=1)
    boxes[:, 2] = width - columns[:, ::-1].argmax(axis=1)
    boxes[:, 3] = height - rows[:, ::-1].argmax(axis=1)
    boxes[~present] = 0
    return boxes


def stability_scores(logits: np.ndarray, offset: float, threshold: float = 0.0) -> np.ndarray:
    """KxHxW logits -> K float: IoU of the masks thresholded at ``threshold`` +/- ``offset``.

    The +offset mask lies inside the -offset mask, so the IoU is a ratio of pixel counts;
    a mask that is empty at -offset scores 0.
    """
    logits = np.asarray(logits)
    inner = (logits > threshold + offset).sum(axis=(-2, -1), dtype=np.int64)
    outer = (logits > threshold - offset).sum(axis=(-2, -1), dtype=np.int64)
    return np.divide(inner, outer, out=np.zeros(inner.shape, dtype=np.float64), where=outer > 0)


def upscale_low_res_logits(
    low_res_logits: np.ndarray, input_size: tuple[int, int], original_size: tuple[int, int]
) -> np.ndarray:
    """Kx256x256 float32 decoder logits -> KxHxW float32 at ``original_size`` (height, width).

    The same steps as :func:`mvsam.sam.predictor.upscale_logits` (bilinear to 1024, drop the pad,
    bilinear to the image size) done with cv2, which is several times faster on CPU; results agree
    with the torch version to about 1e-4 of the logit range.
    """
    logits = np.asarray(low_res_logits, dtype=np.float32)
    if logits.ndim != 3:
        raise ValueError(f"low_res_logits must be Kx256x256, got shape {logits.shape}")
    height, width = original_size
    out = np.empty((len(logits), height, width), dtype=np.float32)
    channels_last = np.ascontiguousarray(logits.transpose(1, 2, 0))
    for start in range(0, len(logits), _RESIZE_CHANNELS):
        chunk = channels_last[..., start : start + _RESIZE_CHANNELS]
        square = cv2.resize(chunk, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)
        unpadded = np.ascontiguousarray(square[: input_size[0], : input_size[1]])
        full = cv2.resize(unpadded, (width, height), interpolation=cv2.INTER_LINEAR)
        out[start : start + _RESIZE_CHANNELS] = full.reshape(height, width, -1).transpose(2, 0, 1)
    return out


def upscale_matrices(
    input_size: tuple[int, int], original_size: tuple[int, int]
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Sparse float32 matrices ``rows`` (H x 256) and ``cols`` (W x 256) with ``rows @ L @ cols.T`` equal to
    :func:`upscale_low_res_logits` of one 256x256 ``L`` (to float rounding, 4e-6 of the logit): bilinear
    resizing is linear and separable, so the two resizes fold into one matrix per axis, 2-3 weights a line
    (3x faster than cv2 for a whole image). Weights are >= 0, so a full-resolution pixel whose weights touch
    no positive cell is negative: callers can upscale only the part of the image an object can reach."""

    def axis(inner: int, outer: int) -> sparse.csr_matrix:
        low = np.eye(LOW_RES_MASK_SIZE, dtype=np.float32)
        padded = cv2.resize(low, (LOW_RES_MASK_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR)[:inner]
        resized = cv2.resize(np.eye(inner, dtype=np.float32), (inner, outer), interpolation=cv2.INTER_LINEAR)
        return sparse.csr_matrix(resized @ padded)

    return axis(input_size[0], original_size[0]), axis(input_size[1], original_size[1])


def remove_small_regions(
    mask: np.ndarray, area_threshold: int, mode: Literal["holes", "islands"]
) -> tuple[np.ndarray, bool]:
    """Fill holes or drop islands smaller than ``area_threshold`` pixels (8-connected).

    mask HxW bool -> (cleaned HxW bool, whether anything changed). In "islands" mode a mask made
    only of small islands keeps its largest one, so a mask never becomes empty here.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {mask.shape}")
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    fill_holes = mode == "holes"
    working = (~mask if fill_holes else mask).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(working, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(sizes < area_threshold) + 1
    if len(small) == 0:
        return mask, False
    if fill_holes:
        return mask | np.isin(labels, small), True
    large = np.setdiff1d(np.arange(1, n_labels), small)
    if len(large) == 0:
        large = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(labels, large), True


def encode_rle(mask: np.ndarray) -> dict:
    """HxW bool mask -> COCO RLE ``{"size": [h, w], "counts": str}`` (JSON-ready)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _coco_object(rle: dict) -> dict:
    """Our JSON-ready RLE -> the bytes-counts dict pycocotools' C functions take."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError("RLE must be a dict with 'size' [h, w] and 'counts'")
    counts = rle["counts"]
    if isinstance(counts, list):
        raise ValueError("uncompressed RLE (counts as a list) is not supported; use pycocotools.frPyObjects")
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [int(v) for v in rle["size"]], "counts": counts}


def decode_rle(rle: dict) -> np.ndarray:
    """COCO RLE ``{"size": [h, w], "counts": str | bytes}`` -> HxW bool mask."""
    return coco_mask.decode(_coco_object(rle)).astype(bool)


def rle_area(rle: dict) -> int:
    """Pixels inside a COCO RLE mask, without decoding it."""
    return int(coco_mask.area(_coco_object(rle)))
