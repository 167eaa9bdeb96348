"""SAM's automatic mask generator: masks for "everything" in an image, prompted by a point grid.

The method is the one published with SAM: a regular grid of single positive points (per crop),
three candidate masks per point, filtering by predicted IoU and stability score, box NMS within
each crop, masks cut by an inner crop edge dropped, NMS across crops preferring smaller crops,
and optional removal of small islands and holes followed by one more NMS.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from tqdm import tqdm

from mvsam.sam.masks import (
    box_nms,
    decode_rle,
    encode_rle,
    mask_boxes,
    remove_small_regions,
    rle_area,
    stability_scores,
    upscale_low_res_logits,
)
from mvsam.sam.model import LOW_RES_MASK_SIZE
from mvsam.sam.predictor import ImageEmbedding, Prompt, SamPredictor, validate_image

OutputMode = Literal["binary_mask", "coco_rle"]
OUTPUT_MODES = ("binary_mask", "coco_rle")

# Masks whose box lies within this many pixels of an inner crop edge are treated as cut by it.
CROP_EDGE_TOLERANCE = 20
# Candidate masks upscaled to full resolution at once (bounds memory: 16 x H x W float32).
UPSCALE_CHUNK = 16
# Candidates are first filtered by stability on the low-res logits with this much slack below the
# threshold; only survivors are upscaled and checked exactly. Measured with benchmarks/bench_automatic.py:
# no candidate that passes at full resolution scores more than this below it at low resolution.
LOW_RES_STABILITY_SLACK = 0.05
# A grid point inside an earlier point's finest mask is skipped only when its SAM feature matches the mask's
# mean feature this well (cosine); see _Explained.
SKIP_SIMILARITY = 0.8
# Grid rounds when skip_covered is on: every 4th, then every 2nd, then every point of the grid.
COVER_STRIDES = (4, 2, 1)


@dataclass
class AutoMask:
    """One automatic mask in full-image pixels."""

    segmentation: np.ndarray | dict  # HxW bool, or COCO RLE {"size": [h, w], "counts": str}
    area: int  # pixels in the mask
    bbox: tuple[int, int, int, int]  # (x, y, w, h): first column/row and pixel extents (COCO)
    predicted_iou: float  # SAM's own quality estimate
    stability_score: float  # IoU of the mask thresholded at +/- stability_score_offset
    point_coords: tuple[float, float]  # (x, y) of the prompt point that produced it
    crop_box: tuple[int, int, int, int]  # (x, y, w, h) of the crop it was found in


@dataclass
class AmgTimings:
    """Seconds spent in the last :meth:`AutomaticMaskGenerator.generate` call."""

    encode_s: float = 0.0  # image encoder (or embedding cache reads)
    decode_s: float = 0.0  # mask decoder passes
    postprocess_s: float = 0.0  # upscaling, filtering, NMS, RLE, small-region clean-up
    points: int = 0  # grid points decoded (fewer than the grid with skip_covered)


@dataclass
class _Candidates:
    """Masks that survived filtering so far, as parallel arrays (RLEs in full-image pixels)."""

    rles: list[dict] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.int64))  # Nx4 XYXY
    iou: np.ndarray = field(default_factory=lambda: np.zeros(0))  # N predicted IoU
    stability: np.ndarray = field(default_factory=lambda: np.zeros(0))  # N
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # Nx2 (x, y)
    crops: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.int64))  # Nx4 XYXY

    def __len__(self) -> int:
        return len(self.rles)

    def select(self, indices: np.ndarray) -> _Candidates:
        return _Candidates(
            [self.rles[i] for i in indices],
            self.boxes[indices],
            self.iou[indices],
            self.stability[indices],
            self.points[indices],
            self.crops[indices],
        )

    @staticmethod
    def concat(parts: list[_Candidates]) -> _Candidates:
        parts = [p for p in parts if len(p)] or [_Candidates()]
        return _Candidates(
            [rle for p in parts for rle in p.rles],
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.iou for p in parts]),
            np.concatenate([p.stability for p in parts]),
            np.concatenate([p.points for p in parts]),
            np.concatenate([p.crops for p in parts]),
        )


def point_grid(points_per_side: int, width: int, height: int) -> np.ndarray:
    """Centres of an n x n grid of equal cells over a width x height image -> (n*n)x2 (x, y) pixels.

    Pixel (0, 0) is the centre of the top-left pixel, so the image spans [-0.5, size - 0.5].
    """
    if points_per_side < 1:
        raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
    fractions = (np.arange(points_per_side) + 0.5) / points_per_side
    xs = fractions * width - 0.5
    ys = fractions * height - 0.5
    grid_x, grid_y = np.meshgrid(xs, ys)
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)


def crop_boxes(height: int, width: int, n_layers: int, overlap_ratio: float) -> list[tuple[int, np.ndarray]]:
    """(layer, XYXY box) for the full image (layer 0) and 2^i x 2^i overlapping crops per layer i.

    Neighbouring crops of layer i overlap by ``overlap_ratio * min(height, width) * 2 / 2^i`` pixels.
    """
    boxes = [(0, np.array([0, 0, width, height], dtype=np.int64))]
    short_side = min(height, width)
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * 2 / per_side)
        crop_w = math.ceil((overlap * (per_side - 1) + width) / per_side)
        crop_h = math.ceil((overlap * (per_side - 1) + height) / per_side)
        for row in range(per_side):
            y0 = int((crop_h - overlap) * row)
            for col in range(per_side):
                x0 = int((crop_w - overlap) * col)
                boxes.append((layer, np.array([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])))
    return boxes


def _cut_by_crop_edge(boxes: np.ndarray, crop: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nx4 XYXY boxes in full-image pixels -> N bool: box touches a crop edge that is not an image edge."""
    image = np.array([0, 0, width, height])
    near_crop = np.abs(boxes - crop) <= CROP_EDGE_TOLERANCE
    near_image = np.abs(boxes - image) <= CROP_EDGE_TOLERANCE
    return (near_crop & ~near_image).any(axis=1)


def _in_unit_interval(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


class AutomaticMaskGenerator:
    """Masks for every object in an image with SAM's published defaults (see module docstring).

    ``generate(image)`` returns :class:`AutoMask` items ordered by NMS priority (best first);
    ``last_timings`` holds the seconds the last call spent encoding, decoding and post-processing.
    """

    def __init__(
        self,
        predictor: SamPredictor,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        min_mask_region_area: int = 0,
        output_mode: OutputMode = "binary_mask",
        skip_covered: bool = False,  # decode the grid coarse to fine, skipping points already explained
        decode_chunk: int = 4,
        working_raster: bool = False,  # masks on SAM's low-res raster cropped to the image, never upscaled
    ) -> None:
        if int(points_per_side) < 1:
            raise ValueError(f"points_per_side must be >= 1, got {points_per_side}")
        if int(points_per_batch) < 1:
            raise ValueError(f"points_per_batch must be >= 1, got {points_per_batch}")
        if int(crop_n_layers) < 0:
            raise ValueError(f"crop_n_layers must be >= 0, got {crop_n_layers}")
        if int(crop_n_points_downscale_factor) < 1:
            raise ValueError(
                f"crop_n_points_downscale_factor must be >= 1, got {crop_n_points_downscale_factor}"
            )
        deepest = int(points_per_side) // int(crop_n_points_downscale_factor) ** int(crop_n_layers)
        if deepest < 1:
            raise ValueError(
                f"points_per_side={points_per_side} leaves no points in crop layer {crop_n_layers} after "
                f"downscaling by {crop_n_points_downscale_factor} per layer; use more points or fewer layers"
            )
        if stability_score_offset < 0:
            raise ValueError(f"stability_score_offset must be >= 0, got {stability_score_offset}")
        if min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area must be >= 0, got {min_mask_region_area}")
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}, got {output_mode!r}")
        if working_raster and (crop_n_layers > 0 or min_mask_region_area > 0):
            raise ValueError("working_raster masks need crop_n_layers=0 and min_mask_region_area=0")
        self.predictor = predictor
        self.points_per_side = int(points_per_side)
        self.points_per_batch = int(points_per_batch)
        self.pred_iou_thresh = _in_unit_interval("pred_iou_thresh", pred_iou_thresh)
        self.stability_score_thresh = _in_unit_interval("stability_score_thresh", stability_score_thresh)
        self.stability_score_offset = float(stability_score_offset)
        self.box_nms_thresh = _in_unit_interval("box_nms_thresh", box_nms_thresh)
        self.crop_n_layers = int(crop_n_layers)
        self.crop_nms_thresh = _in_unit_interval("crop_nms_thresh", crop_nms_thresh)
        self.crop_overlap_ratio = _in_unit_interval("crop_overlap_ratio", crop_overlap_ratio)
        self.crop_n_points_downscale_factor = int(crop_n_points_downscale_factor)
        self.min_mask_region_area = int(min_mask_region_area)
        self.output_mode = output_mode
        if int(decode_chunk) < 1:
            raise ValueError(f"decode_chunk must be >= 1, got {decode_chunk}")
        self.skip_covered = bool(skip_covered)
        self.decode_chunk = int(decode_chunk)
        self.working_raster = bool(working_raster)
        self.last_timings = AmgTimings()

    def generate(self, image: np.ndarray) -> list[AutoMask]:
        """Automatic masks for one HxWx3 uint8 RGB image.

        With ``working_raster`` the segmentations (and areas) are h x w on SAM's working raster (the
        256x256 low-res logits cropped to the image: 256x192 for 4:3), filtered by stability there and
        never upscaled (for callers that work on that raster: automatic mode); boxes, points and crops
        stay in full-image pixels."""
        image = validate_image(image)
        height, width = image.shape[:2]
        self.last_timings = AmgTimings()
        crops = crop_boxes(height, width, self.crop_n_layers, self.crop_overlap_ratio)
        found = _Candidates.concat([self._process_crop(image, box, layer) for layer, box in crops])

        start = time.perf_counter()
        if len(crops) > 1 and len(found):
            crop_areas = (found.crops[:, 2] - found.crops[:, 0]) * (found.crops[:, 3] - found.crops[:, 1])
            keep = box_nms(found.boxes, 1.0 / crop_areas, self.crop_nms_thresh, tiebreak=found.iou)
            found = found.select(keep)
        if self.min_mask_region_area > 0 and len(found):
            found = self._remove_small_regions(found)
        masks = [self._to_auto_mask(found, i) for i in range(len(found))]
        self.last_timings.postprocess_s += time.perf_counter() - start
        return masks

    # --- one crop -------------------------------------------------------------------------------

    def _process_crop(self, image: np.ndarray, crop: np.ndarray, layer: int) -> _Candidates:
        """Candidates from the point grid of one crop (XYXY), already NMS-ed within the crop."""
        height, width = image.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in crop)
        start = time.perf_counter()
        embedding = self.predictor.encode(np.ascontiguousarray(image[y0:y1, x0:x1]))
        self.last_timings.encode_s += time.perf_counter() - start

        per_side = self.points_per_side // self.crop_n_points_downscale_factor**layer
        points = point_grid(per_side, x1 - x0, y1 - y0)
        rounds = [np.arange(len(points))]
        if self.skip_covered:
            rounds = _grid_rounds(per_side)
        scale = np.array(embedding.input_size[::-1]) / np.array(embedding.original_size[::-1]) / 4
        cells = np.clip(np.floor((points + 0.5) * scale).astype(int), 0, LOW_RES_MASK_SIZE - 1)  # (col, row)
        explained = _Explained(embedding)
        parts = []
        for chosen in rounds:
            if self.skip_covered:
                chosen = chosen[~explained.covers(cells[chosen])]
            batches = range(0, len(chosen), self.points_per_batch)
            desc = f"automatic masks, crop {x0},{y0},{x1},{y1}"
            for s in tqdm(batches, desc=desc, leave=False, disable=None):
                batch = points[chosen[s : s + self.points_per_batch]]
                part, finest = self._process_batch(embedding, batch, crop, (height, width))
                if self.skip_covered:
                    explained.add(finest)
                parts.append(part)
        found = _Candidates.concat(parts)

        start = time.perf_counter()
        if len(found):
            found = found.select(box_nms(found.boxes, found.iou, self.box_nms_thresh))
        if len(found) and (x0, y0, x1, y1) != (0, 0, width, height):
            found.rles = [_uncrop_rle(rle, crop, height, width) for rle in found.rles]
        self.last_timings.postprocess_s += time.perf_counter() - start
        return found

    def _process_batch(
        self, embedding: ImageEmbedding, points: np.ndarray, crop: np.ndarray, image_size: tuple[int, int]
    ) -> tuple[_Candidates, np.ndarray]:
        """Decode one batch of grid points (Bx2, crop pixels) against the crop's embedding and keep the
        masks that pass every filter; boxes and points come back in full-image pixels (height, width).
        Also returns each point's smallest candidate on the low-res raster (Bx256x256 bool), which
        explains later grid points (see :class:`_Explained`)."""
        start = time.perf_counter()
        requests = [(embedding, Prompt(points=p[None], labels=np.ones(1, dtype=np.int64))) for p in points]
        predictions = self.predictor.predict_batch(
            requests, multimask=True, return_masks=False, chunk_size=self.decode_chunk
        )
        self.last_timings.decode_s += time.perf_counter() - start
        self.last_timings.points += len(points)

        start = time.perf_counter()
        scores = np.concatenate([p.scores for p in predictions])  # (B*K)
        per_point = len(predictions[0].scores)
        logits = np.concatenate([p.low_res_logits for p in predictions])  # (B*K)x256x256
        positive = logits > 0
        areas = positive.reshape(len(predictions), per_point, -1).sum(axis=2)
        finest = positive.reshape(len(predictions), per_point, *positive.shape[1:])[
            np.arange(len(predictions)), np.argmin(areas, axis=1)
        ]
        valid = (math.ceil(embedding.input_size[0] / 4), math.ceil(embedding.input_size[1] / 4))
        low_res_stability = stability_scores(logits[:, : valid[0], : valid[1]], self.stability_score_offset)
        if self.working_raster:
            found = self._working_candidates(
                points, scores, logits[:, : valid[0], : valid[1]], low_res_stability, crop, image_size
            )
            self.last_timings.postprocess_s += time.perf_counter() - start
            return found, finest
        keep = np.flatnonzero(
            (scores > self.pred_iou_thresh)
            & (low_res_stability >= self.stability_score_thresh - LOW_RES_STABILITY_SLACK)
        )
        logits = logits[keep]
        point_of = np.repeat(points, per_point, axis=0)[keep]
        scores = scores[keep]

        offset = np.array([crop[0], crop[1], crop[0], crop[1]])
        parts = []
        for s in range(0, len(keep), UPSCALE_CHUNK):
            upscaled = upscale_low_res_logits(
                logits[s : s + UPSCALE_CHUNK], embedding.input_size, embedding.original_size
            )
            stability = stability_scores(upscaled, self.stability_score_offset)
            masks = upscaled > 0.0
            del upscaled
            boxes = mask_boxes(masks) + offset
            good = (stability >= self.stability_score_thresh) & masks.any(axis=(1, 2))
            good &= ~_cut_by_crop_edge(boxes, crop, image_size[1], image_size[0])
            chosen = np.flatnonzero(good)
            parts.append(
                _Candidates(
                    [encode_rle(masks[i]) for i in chosen],
                    boxes[chosen],
                    scores[s : s + UPSCALE_CHUNK][chosen].astype(np.float64),
                    stability[chosen],
                    point_of[s : s + UPSCALE_CHUNK][chosen] + offset[:2],
                    np.repeat(crop[None], len(chosen), axis=0),
                )
            )
        self.last_timings.postprocess_s += time.perf_counter() - start
        return _Candidates.concat(parts), finest

    def _working_candidates(
        self,
        points: np.ndarray,
        scores: np.ndarray,
        logits: np.ndarray,
        stability: np.ndarray,
        crop: np.ndarray,
        image_size: tuple[int, int],
    ) -> _Candidates:
        """Candidates of one batch kept on the working raster: (B*K) scores, (B*K) x h x w logits and
        their stability; boxes scaled to full-image pixels (the whole image is the only crop)."""
        masks = logits > 0.0
        keep = np.flatnonzero(
            (scores > self.pred_iou_thresh)
            & (stability >= self.stability_score_thresh)
            & masks.any(axis=(1, 2))
        )
        scale = np.array([image_size[1], image_size[0]] * 2) / np.array(
            [logits.shape[2], logits.shape[1]] * 2
        )
        boxes = np.round(mask_boxes(masks[keep]) * scale).astype(np.int64)
        point_of = np.repeat(points, len(scores) // len(points), axis=0)[keep]
        return _Candidates(
            [encode_rle(masks[i]) for i in keep],
            boxes,
            scores[keep].astype(np.float64),
            stability[keep],
            point_of,
            np.repeat(crop[None], len(keep), axis=0),
        )

    # --- whole image ----------------------------------------------------------------------------

    def _remove_small_regions(self, found: _Candidates) -> _Candidates:
        """Fill small holes and drop small islands, then NMS again preferring masks left unchanged."""
        area = self.min_mask_region_area
        unchanged = np.ones(len(found))
        rles, boxes = list(found.rles), found.boxes.copy()
        for i in tqdm(range(len(found)), desc="removing small regions", leave=False, disable=None):
            mask = decode_rle(found.rles[i])
            mask, filled = remove_small_regions(mask, area, "holes")
            mask, trimmed = remove_small_regions(mask, area, "islands")
            if filled or trimmed:
                unchanged[i] = 0.0
                rles[i] = encode_rle(mask)
                boxes[i] = mask_boxes(mask[None])[0]
        cleaned = _Candidates(rles, boxes, found.iou, found.stability, found.points, found.crops)
        return cleaned.select(box_nms(boxes, unchanged, self.box_nms_thresh, tiebreak=found.iou))

    def _to_auto_mask(self, found: _Candidates, index: int) -> AutoMask:
        rle = found.rles[index]
        x0, y0, x1, y1 = (int(v) for v in found.boxes[index])
        cx0, cy0, cx1, cy1 = (int(v) for v in found.crops[index])
        segmentation = rle if self.output_mode == "coco_rle" else decode_rle(rle)
        return AutoMask(
            segmentation=segmentation,
            area=rle_area(rle),
            bbox=(x0, y0, x1 - x0, y1 - y0),
            predicted_iou=float(found.iou[index]),
            stability_score=float(found.stability[index]),
            point_coords=(float(found.points[index, 0]), float(found.points[index, 1])),
            crop_box=(cx0, cy0, cx1 - cx0, cy1 - cy0),
        )


class _Explained:
    """Grid points already explained by an earlier point's finest candidate (coarse-to-fine decoding).

    A point is explained when it lies in such a mask *and* its SAM feature matches the mask's mean feature
    (cosine >= ``SKIP_SIMILARITY``): the finest level at a point can still take in an object lying on a
    surface (a car on the road), and that object's points must be decoded."""

    def __init__(self, embedding: ImageEmbedding) -> None:
        features = embedding.features[0].float().numpy()  # 256 x 64 x 64
        self.features = features.reshape(features.shape[0], -1)
        self.features = self.features / np.maximum(np.linalg.norm(self.features, axis=0), 1e-9)
        self.masks = np.zeros((0, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), dtype=bool)
        self.means = np.zeros((0, self.features.shape[0]), dtype=np.float32)

    def add(self, masks: np.ndarray) -> None:
        """Bx256x256 bool low-res masks."""
        side = self.features.shape[1] ** 0.5
        factor = LOW_RES_MASK_SIZE // int(side)
        weights = masks.reshape(len(masks), int(side), factor, int(side), factor).mean(axis=(2, 4))
        weights = weights.reshape(len(masks), -1)
        means = weights @ self.features.T / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-9)
        self.masks = np.concatenate([self.masks, masks])
        self.means = np.concatenate([self.means, means.astype(np.float32)])

    def covers(self, cells: np.ndarray) -> np.ndarray:
        """Nx2 (col, row) low-res cells -> N bool: explained already."""
        if not len(self.masks) or not len(cells):
            return np.zeros(len(cells), dtype=bool)
        inside = self.masks[:, cells[:, 1], cells[:, 0]]  # M x N
        side = int(self.features.shape[1] ** 0.5)
        factor = LOW_RES_MASK_SIZE // side
        own = self.features[:, (cells[:, 1] // factor) * side + cells[:, 0] // factor]  # 256 x N
        similarity = self.means @ own  # M x N
        return (inside & (similarity >= SKIP_SIMILARITY)).any(axis=0)


def _grid_rounds(per_side: int) -> list[np.ndarray]:
    """Indices into an n x n point grid (row-major) for coarse-to-fine rounds, each point once."""
    rows, cols = np.divmod(np.arange(per_side * per_side), per_side)
    seen = np.zeros(per_side * per_side, dtype=bool)
    rounds = []
    for stride in COVER_STRIDES:
        offset = stride // 2
        on_grid = ((rows - offset) % stride == 0) & ((cols - offset) % stride == 0) & ~seen
        rounds.append(np.flatnonzero(on_grid))
        seen |= on_grid
    return rounds


def _uncrop_rle(rle: dict, crop: np.ndarray, height: int, width: int) -> dict:
    """RLE of a mask inside an XYXY crop -> RLE of the same mask placed in the full height x width image."""
    full = np.zeros((height, width), dtype=bool)
    full[crop[1] : crop[3], crop[0] : crop[2]] = decode_rle(rle)
    return encode_rle(full)
