"""Pictures for people: masks drawn over images."""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def palette(count: int, seed: int = 0) -> np.ndarray:
    """``count`` well-separated RGB colours, Nx3 uint8 (golden-ratio hues)."""
    hues = (seed * 0.37 + np.arange(count) * 0.618034) % 1.0
    return np.array([[round(c * 255) for c in colorsys.hsv_to_rgb(h, 0.85, 0.95)] for h in hues], np.uint8)


def overlay_masks(
    image: np.ndarray, masks: list[np.ndarray], colors: np.ndarray | None = None, alpha: float = 0.5
) -> np.ndarray:
    """HxWx3 uint8 image with each HxW bool mask tinted and outlined in its colour."""
    colors = palette(len(masks)) if colors is None else np.asarray(colors, np.uint8)
    out = image.astype(np.float32)
    for mask, color in zip(masks, colors, strict=True):
        out[mask] = (1 - alpha) * out[mask] + alpha * color
    out = out.astype(np.uint8)
    for mask, color in zip(masks, colors, strict=True):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), 2)
    return out


def draw_points(image: np.ndarray, points: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mark Nx2 (x, y) clicks: green for foreground (label 1), red for background (0)."""
    out = image.copy()
    for (x, y), label in zip(np.asarray(points), np.asarray(labels), strict=True):
        color = (40, 220, 40) if label == 1 else (230, 30, 30)
        center = (round(float(x)), round(float(y)))
        cv2.circle(out, center, 7, (255, 255, 255), -1)
        cv2.circle(out, center, 5, color, -1)
    return out
