"""YOLO segmentation labels: one polygon line per object and view, normalised, plus ``data.yaml``.

A line is ``<class> x1 y1 x2 y2 ...`` with x / W and y / H of boundary pixel centres (so x = value * W maps
back to the pixel). An object in several pieces is written as one polygon: the pieces' outer contours
joined by zero-width bridges, the way YOLO's own converters merge segments. Holes are not kept.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mvsam.export.result import Result


def mask_polygon(mask: np.ndarray) -> np.ndarray:
    """Kx2 float64 (x, y) pixel polygon tracing the outer boundary of every piece of an HxW bool mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    pieces = [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= 1]
    if not pieces:
        return np.zeros((0, 2))
    pieces.sort(key=lambda p: -cv2.contourArea(p.astype(np.float32)) if len(p) > 2 else 0.0)
    polygon = pieces[0]
    for piece in pieces[1:]:
        # Bridge from the polygon's point nearest the piece, around the piece, and back.
        distance = np.linalg.norm(polygon[:, None, :] - piece[None, :, :], axis=2)
        at, start = np.unravel_index(int(np.argmin(distance)), distance.shape)
        loop = np.concatenate([piece[start:], piece[: start + 1]])
        polygon = np.concatenate([polygon[: at + 1], loop, polygon[at:]])
    return polygon


def rasterize_polygon(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """HxW bool: the pixels a Kx2 (x, y) polygon covers (boundary included), as YOLO tools draw it."""
    out = np.zeros((height, width), dtype=np.uint8)
    if len(polygon):
        cv2.fillPoly(out, [np.rint(polygon).astype(np.int32)], 1)
    return out.astype(bool)


def export_yolo(result: Result, object_ids: list[int], out: Path) -> list[Path]:
    """``out/labels/<stem>.txt`` (class = index of the object id in ``object_ids``) and ``out/data.yaml``."""
    written = []
    labels = out / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    for stem in result.views:
        lines = []
        for index, object_id in enumerate(object_ids):
            mask = result.mask(object_id, stem)
            polygon = mask_polygon(mask)
            if len(polygon) < 3:
                continue
            height, width = mask.shape
            normalised = polygon / np.array([width, height])
            lines.append(f"{index} " + " ".join(f"{v:.6f}" for v in normalised.reshape(-1)))
        path = labels / f"{stem}.txt"
        path.write_text("".join(line + "\n" for line in lines))
        written.append(path)
    names = "".join(f"  {index}: object {object_id}\n" for index, object_id in enumerate(object_ids))
    data = out / "data.yaml"
    data.write_text(
        f"# mvsam export of {result.root}; class k is object id object_ids[k].\n"
        f"# Put (or link) the scene's images in images/ beside labels/ to train.\n"
        f"path: .\ntrain: images\nval: images\nnc: {len(object_ids)}\nnames:\n{names}"
        f"object_ids: [{', '.join(map(str, object_ids))}]\n"
    )
    return [*written, data]
