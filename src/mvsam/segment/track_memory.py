"""Appearance memory of a tracked object: banks of SAM feature cells on the object and on its background.

A region is judged by what it looks like *relative to the background seen so far*, not by an absolute
similarity: every 64x64 embedding cell is labelled object-like when its best match among remembered object
cells beats its best match among remembered background cells (a 1-nearest-neighbour vote, cosine
similarity) and matches some object cell well in absolute terms. A static structure next to the object
was background on the prompt frame, so it cannot take over the track however similar to the object it
looks on its own. The prompt frame's cells are kept for
good; the cells of later confident frames roll through a bounded window, so memory stays flat.

Masks are given on the 1024x1024 *canvas* of an embedding (the padded encoder input, or a tracking
mosaic); ``region`` marks the canvas pixels that belong to the frame in question (one tile of a mosaic).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from mvsam.sam.model import IMAGE_SIZE
from mvsam.sam.predictor import ImageEmbedding

FEATURE_GRID = 64  # SAM's embedding is 64x64 cells over the padded 1024x1024 input
INSIDE = 0.5  # a cell whose area is at least this share inside a mask is an object cell
BACKGROUND_RING = 1  # cells this close to the mask are neither object nor background (mixed)


def canvas_of(mask: np.ndarray, embedding: ImageEmbedding) -> np.ndarray:
    """HxW bool mask of the encoded image (its original size) -> 1024x1024 bool canvas mask."""
    height, width = embedding.input_size
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    canvas[:height, :width] = (
        cv2.resize(np.asarray(mask, np.float32), (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
    )
    return canvas


def cell_fractions(canvas: np.ndarray) -> np.ndarray:
    """1024x1024 bool canvas mask -> 64x64 float32 share of each embedding cell inside it."""
    return cv2.resize(canvas.astype(np.float32), (FEATURE_GRID, FEATURE_GRID), interpolation=cv2.INTER_AREA)


def unit_cells(embedding: ImageEmbedding) -> np.ndarray:
    """4096x256 float32: the embedding's cells as unit vectors, row-major over the 64x64 grid."""
    features = embedding.features[0].numpy().reshape(256, -1).T
    return features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-8)


@dataclass
class AppearanceMemory:
    """Object and background cell banks (unit 256-d rows); the first ``permanent_*`` rows are kept."""

    floor: float = 0.7  # an object-like cell matches some object cell at least this well (cosine)
    per_frame: int = 160  # cells of each kind sampled from one frame
    frames: int = 6  # confident frames kept besides the prompt frame
    target: np.ndarray = field(default_factory=lambda: np.zeros((0, 256), np.float32))
    background: np.ndarray = field(default_factory=lambda: np.zeros((0, 256), np.float32))
    permanent_target: int = 0
    permanent_background: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def _sample(self, cells: np.ndarray) -> np.ndarray:
        if len(cells) <= self.per_frame:
            return cells
        return cells[np.sort(self.rng.choice(len(cells), self.per_frame, replace=False))]

    def add(
        self, embedding: ImageEmbedding, mask: np.ndarray, region: np.ndarray, permanent: bool = False
    ) -> bool:
        """Remember the cells of one frame: object cells inside ``mask``, background cells of ``region``
        away from it (both 1024x1024 bool canvases). False when the mask covers no whole cell."""
        inside = cell_fractions(mask).reshape(-1) >= INSIDE
        if not inside.any():
            return False
        near = cv2.dilate(cell_fractions(mask) > 0, np.ones((2 * BACKGROUND_RING + 1,) * 2, np.uint8))
        outside = (cell_fractions(region) >= 0.99) & (near == 0)
        cells = unit_cells(embedding)
        target = self._sample(cells[inside])
        background = self._sample(cells[outside.reshape(-1)])
        self.target = self._keep(np.concatenate([self.target, target]), self.permanent_target)
        self.background = self._keep(np.concatenate([self.background, background]), self.permanent_background)
        if permanent:  # only before any rolling frame, so the permanent rows stay first
            self.permanent_target, self.permanent_background = len(self.target), len(self.background)
        return True

    def _keep(self, bank: np.ndarray, permanent: int) -> np.ndarray:
        """The permanent rows and the newest ``frames x per_frame`` others."""
        rolling = self.frames * self.per_frame
        return (
            bank if len(bank) <= permanent + rolling else np.concatenate([bank[:permanent], bank[-rolling:]])
        )

    def margin(self, embedding: ImageEmbedding, region: np.ndarray) -> np.ndarray:
        """64x64 float32: best object match minus the larger of the best background match and ``floor``,
        for each cell of ``region`` (positive = object-like); NaN outside the region. The floor keeps a
        scene the memory never saw (no background there to lose against) from looking like the object."""
        cells = cell_fractions(region).reshape(-1) >= INSIDE
        out = np.full(FEATURE_GRID * FEATURE_GRID, np.nan, np.float32)
        if cells.any() and len(self.target):
            features = unit_cells(embedding)[cells]
            to_target = (features @ self.target.T).max(axis=1)
            to_background = (features @ self.background.T).max(axis=1) if len(self.background) else -1.0
            out[cells] = to_target - np.maximum(to_background, self.floor)
        return out.reshape(FEATURE_GRID, FEATURE_GRID)

    @staticmethod
    def share(margin: np.ndarray, mask: np.ndarray) -> float:
        """Share (by area) of a 1024x1024 bool canvas mask lying on object-like cells; 0 when empty."""
        weights = cell_fractions(mask)
        weights = np.where(np.isnan(margin), 0, weights)
        total = float(weights.sum())
        return float((weights * (margin > 0)).sum() / total) if total > 0 else 0.0

    @staticmethod
    def cell_iou(margin: np.ndarray, mask: np.ndarray) -> float:
        """Soft IoU between a canvas mask's cell shares and the object-like cells (over known cells)."""
        known = ~np.isnan(margin)
        weights = cell_fractions(mask)[known]
        objectlike = (margin[known] > 0).astype(np.float32)
        union = float(np.maximum(weights, objectlike).sum())
        return float(np.minimum(weights, objectlike).sum() / union) if union > 0 else 0.0
