"""A mask or a projected 3D footprint -> SAM prompts: a box with a margin, interior positive points,
negative points on nearby background, and low-res mask logits.

Footprints live on the *working raster*: SAM's 256x256 low-res logit grid cropped to the image (e.g.
256x192 for a 4:3 image), so a footprint and SAM's logits are compared pixel for pixel. Prompts come out in
full-resolution (x, y) pixels of the image, as :class:`~mvsam.sam.predictor.Prompt` expects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mvsam.sam.model import IMAGE_SIZE, LOW_RES_MASK_SIZE
from mvsam.sam.predictor import Prompt, resized_size
from mvsam.segment.masks import interior_points, scale_points, spread_points

# Magnitude of the low-res logits made from a binary mask: sure, but not saturating the decoder.
MASK_PROMPT_LOGIT = 8.0


@dataclass(frozen=True)
class PromptSettings:
    """How a footprint becomes a prompt; every prompt made with one setting has the same structure
    (box + ``positive_points`` + ``negative_points``), so many views and objects share a decoder pass."""

    positive_points: int = 3
    negative_points: int = 2
    box_margin: float = 0.03  # the box grows by this share of its size on each side
    negative_reach: float = 0.15  # negatives lie up to this x the box diagonal outside the object
    min_pixels: int = 12  # a footprint with fewer working pixels gives no prompt

    def __post_init__(self) -> None:
        if self.positive_points < 1 or self.negative_points < 0:
            raise ValueError("need positive_points >= 1 and negative_points >= 0")
        if self.box_margin < 0 or self.negative_reach <= 0 or self.min_pixels < 1:
            raise ValueError("box_margin must be >= 0, negative_reach > 0 and min_pixels >= 1")


def working_size(original_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the working raster of an image of ``original_size`` = (height, width)."""
    scale = LOW_RES_MASK_SIZE / IMAGE_SIZE
    height, width = resized_size(original_size)
    return math.ceil(width * scale), math.ceil(height * scale)


def mask_to_low_res_logits(mask: np.ndarray, magnitude: float = MASK_PROMPT_LOGIT) -> np.ndarray:
    """h x w bool mask on the working raster -> 256x256 float32 logits (+/- magnitude), padded like SAM."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape[0] > LOW_RES_MASK_SIZE or mask.shape[1] > LOW_RES_MASK_SIZE:
        raise ValueError(f"mask {mask.shape} is larger than the {LOW_RES_MASK_SIZE}^2 working raster")
    logits = np.full((LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), -magnitude, dtype=np.float32)
    logits[: mask.shape[0], : mask.shape[1]][mask] = magnitude
    return logits


def image_mask_to_low_res_logits(
    mask: np.ndarray, input_size: tuple[int, int], magnitude: float = MASK_PROMPT_LOGIT
) -> np.ndarray:
    """HxW bool mask of an encoded image -> 256x256 float32 logits laid out like SAM's own low-res output.

    ``input_size`` = (height, width) of the image resized for the encoder (``ImageEmbedding.input_size``).
    Unlike :func:`mask_to_low_res_logits` (a mask already on the working raster) the mask is area-averaged
    down, so edge cells get logits between -magnitude and +magnitude.
    """
    height, width = input_size
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    canvas[:height, :width] = cv2.resize(
        np.asarray(mask, np.float32), (width, height), interpolation=cv2.INTER_AREA
    )
    low = cv2.resize(canvas, (LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), interpolation=cv2.INTER_AREA)
    return (low * 2 - 1) * magnitude


def box_with_margin(mask: np.ndarray, margin: float, full_size: tuple[int, int]) -> np.ndarray:
    """(x0, y0, x1, y1) full-resolution pixel-edge box of a working-raster mask, grown by ``margin`` x its
    size on each side and clipped to the image; ``full_size`` = (width, height)."""
    rows, cols = np.nonzero(mask)
    work = (mask.shape[1], mask.shape[0])
    x0, x1 = cols.min() - 0.5, cols.max() + 0.5
    y0, y1 = rows.min() - 0.5, rows.max() + 0.5
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    scale = np.array([full_size[0] / work[0], full_size[1] / work[1]])
    corners = (np.array([[x0 - dx, y0 - dy], [x1 + dx, y1 + dy]]) + 0.5) * scale - 0.5
    limit = np.array([full_size[0] - 1, full_size[1] - 1, full_size[0] - 1, full_size[1] - 1])
    return np.clip(corners.reshape(4), 0, limit)


def negative_points(foreground: np.ndarray, background: np.ndarray, count: int, reach: float) -> np.ndarray:
    """Up to ``count`` (x, y) background points near the object: in a band from 3 pixels to ``reach`` x
    its box diagonal outside it, the first half-way out, the rest spread apart (Kx2, working raster)."""
    if count == 0 or not background.any() or not foreground.any():
        return np.zeros((0, 2))
    rows, cols = np.nonzero(foreground)
    far = max(6.0, reach * float(np.hypot(np.ptp(rows) + 1, np.ptp(cols) + 1)))
    outside = cv2.distanceTransform((~foreground).astype(np.uint8), cv2.DIST_L2, 5)
    band = background & (outside >= 3) & (outside <= far)
    if not band.any():
        return np.zeros((0, 2))
    rows, cols = np.nonzero(band)
    candidates = np.stack([cols, rows], axis=1).astype(np.float64)
    first = int(np.argmin(np.abs(outside[rows, cols] - 0.5 * far)))
    return spread_points(candidates, first, count)


def footprint_prompt(
    foreground: np.ndarray,
    background: np.ndarray,
    full_size: tuple[int, int],
    settings: PromptSettings = PromptSettings(),
    with_mask: bool = False,
) -> Prompt | None:
    """A SAM prompt for the object whose working-raster footprint is ``foreground`` (h x w bool), with
    ``background`` the pixels known not to be it; None when the footprint is below ``min_pixels``.

    Missing positives repeat the first and missing negatives become extra positives at the first, so the
    structure is fixed. ``with_mask`` adds the footprint as low-res logits.
    """
    if np.count_nonzero(foreground) < settings.min_pixels:
        return None
    work = (foreground.shape[1], foreground.shape[0])
    positives = interior_points(foreground, settings.positive_points)
    positives = np.concatenate(
        [positives, np.repeat(positives[:1], settings.positive_points - len(positives), axis=0)]
    )
    negatives = negative_points(foreground, background, settings.negative_points, settings.negative_reach)
    missing = settings.negative_points - len(negatives)
    points = np.concatenate([positives, negatives.reshape(-1, 2), np.repeat(positives[:1], missing, axis=0)])
    labels = np.array([1] * len(positives) + [0] * len(negatives) + [1] * missing, dtype=np.int64)
    points = np.clip(scale_points(points, work, full_size), 0, [full_size[0] - 1, full_size[1] - 1])
    box = box_with_margin(foreground, settings.box_margin, full_size)
    return Prompt(
        points=points,
        labels=labels,
        box=box,
        mask_logits=mask_to_low_res_logits(foreground) if with_mask else None,
    )
