"""Instance outputs of automatic mode: id maps as PNG, COCO instances with RLE, and overlays.

Id maps are HxW integers, 0 = no object, ids from 1. With at most 255 objects they are written as 8-bit
indexed PNGs with the DAVIS palette (id k drawn in DAVIS's colour k, so the files open in DAVIS tools);
with more, as 16-bit grayscale PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mvsam.export.overlay import overlay_masks
from mvsam.sam.masks import encode_rle, mask_boxes, rle_area


def davis_palette() -> np.ndarray:
    """256x3 uint8: the PASCAL VOC / DAVIS colour map (bits of the index spread over r, g, b)."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colours[index] = (r, g, b)
    return colours


def write_id_png(path: str | Path, id_map: np.ndarray, max_id: int) -> None:
    """HxW integer ids -> 8-bit palette PNG when ``max_id`` <= 255, else 16-bit grayscale PNG."""
    id_map = np.asarray(id_map)
    if id_map.ndim != 2 or not np.issubdtype(id_map.dtype, np.integer):
        raise ValueError(f"id map must be an HxW integer array, got {id_map.dtype} {id_map.shape}")
    if id_map.size and (id_map.min() < 0 or id_map.max() > max(max_id, 0) or max_id > 65535):
        raise ValueError(f"ids must lie in 0..{max_id} (at most 65535), got {id_map.min()}..{id_map.max()}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if max_id <= 255:
        image = Image.fromarray(id_map.astype(np.uint8), mode="P")
        image.putpalette(davis_palette().reshape(-1).tolist())
    else:
        image = Image.fromarray(id_map.astype(np.uint16))
    image.save(path)


def read_id_png(path: str | Path) -> np.ndarray:
    """An id map written by :func:`write_id_png` (or a DAVIS annotation) -> HxW int32."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"id map not found: {path}")
    with Image.open(path) as image:
        if image.mode not in ("P", "L", "I;16", "I"):
            raise ValueError(f"{path}: not an id map (mode {image.mode}); expected a palette or 16-bit PNG")
        return np.asarray(image).astype(np.int32)


def id_colours(max_id: int) -> np.ndarray:
    """(max_id + 1)x3 uint8 colour of each id, the same in every view (DAVIS colours up to 255)."""
    base = davis_palette()
    if max_id <= 255:
        return base[: max_id + 1]
    rng = np.random.default_rng(0)
    extra = rng.integers(40, 256, size=(max_id - 255, 3), dtype=np.uint8)
    return np.concatenate([base, extra])


def overlay_ids(image: np.ndarray, id_map: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """HxWx3 uint8 image with every id tinted and outlined in its colour (``colours`` from id_colours)."""
    ids = [int(k) for k in np.unique(id_map) if k > 0]
    return overlay_masks(image, [id_map == k for k in ids], colours[ids], alpha)


def coco_annotations(
    id_map: np.ndarray, image_id: int, scores: dict[int, float], first_annotation_id: int
) -> list[dict]:
    """COCO annotations (RLE ``segmentation``, ``bbox`` x,y,w,h, ``area``, ``score``, ``object_id``) of
    one view's id map, one per id present; ``category_id`` is 1 (class-agnostic "object")."""
    annotations = []
    for k in (int(v) for v in np.unique(id_map) if v > 0):
        mask = id_map == k
        rle = encode_rle(mask)
        x0, y0, x1, y1 = (int(v) for v in mask_boxes(mask[None])[0])
        annotations.append(
            {
                "id": first_annotation_id + len(annotations),
                "image_id": image_id,
                "category_id": 1,
                "object_id": k,
                "segmentation": rle,
                "area": rle_area(rle),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "iscrowd": 0,
                "score": float(scores.get(k, 0.0)),
            }
        )
    return annotations


def write_auto_outputs(
    result, out_dir: str | Path, consistency: float | None, extra: dict | None = None
) -> dict:
    """Write an :class:`~mvsam.segment.auto.AutoResult`: ``ids/<stem>.png``, ``overlays/<stem>.jpg``,
    ``instances.json`` (COCO), ``instances.ply`` (when there are 3D points) and ``report.json``.

    Returns the report (also written). ``consistency`` is MastSAM's score of the id maps, or None.
    """
    import json
    from dataclasses import asdict

    from mvsam.cache import atomic_write_bytes
    from mvsam.export.ply import write_ply

    out = Path(out_dir)
    scene = result.scene
    max_id = max((o.id for o in result.objects), default=0)
    colours = id_colours(max_id)
    scores = {o.id: o.score for o in result.objects}
    images, annotations = [], []
    for index, view in enumerate(scene.views):
        id_map = result.id_map(index)
        write_id_png(out / "ids" / f"{view.stem}.png", id_map, max_id)
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        overlay = overlay_ids(view.load_image(), id_map, colours)
        Image.fromarray(overlay).save(out / "overlays" / f"{view.stem}.jpg", quality=90)
        images.append({"id": index + 1, "file_name": view.name, "width": view.width, "height": view.height})
        annotations += coco_annotations(id_map, index + 1, scores, len(annotations) + 1)
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object"}],
    }
    atomic_write_bytes(out / "instances.json", json.dumps(coco).encode())
    notes = list(result.notes)
    clouds = [(o.id, *result.object_points(o.id)) for o in result.objects if o.centroid is not None]
    if clouds:
        xyz = np.concatenate([c[1] for c in clouds])
        rgb = np.concatenate([c[2] for c in clouds])
        instance = np.concatenate([np.full(len(c[1]), c[0], dtype=np.int32) for c in clouds])
        write_ply(out / "instances.ply", xyz, rgb, properties={"instance": instance})
    else:
        notes.append("no camera geometry: instances.ply not written")
    report = {
        "scene": str(scene.root),
        "objects": [asdict(o) for o in result.objects],
        "keyframes": [scene.views[k].name for k in result.keyframes],
        "coverage": result.coverage,
        "consistency": None if consistency is None or np.isnan(consistency) else float(consistency),
        "seconds": asdict(result.seconds),
        "notes": notes,
    } | (extra or {})
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=1, allow_nan=False).encode())
    return report
