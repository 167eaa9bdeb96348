"""COCO instances with RLE masks (pycocotools), one category and one annotation per object and view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util

from mvsam.export.result import Result


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of an HxW bool mask, with ``counts`` as an ASCII string (JSON-ready)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_instances(result: Result, object_ids: list[int], view_names: dict[str, str]) -> dict:
    """The COCO dict: images (``file_name`` = the scene's image name), one category per object id,
    annotations with RLE ``segmentation``, ``bbox`` [x, y, w, h], ``area``, ``score`` and ``object_id``.

    Empty masks get no annotation. ``iscrowd`` is 0: these are instances, stored as RLE.
    """
    images, annotations = [], []
    for image_id, stem in enumerate(result.views, start=1):
        masks = {object_id: result.mask(object_id, stem) for object_id in object_ids}
        height, width = next(iter(masks.values())).shape
        images.append(
            {
                "id": image_id,
                "file_name": view_names.get(stem, f"{stem}.png"),
                "width": width,
                "height": height,
            }
        )
        for object_id, mask in masks.items():
            if not mask.any():
                continue
            rle = mask_to_rle(mask)
            compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": object_id,
                    "object_id": object_id,
                    "segmentation": rle,
                    "area": int(mask_util.area(compressed)),
                    "bbox": [float(v) for v in mask_util.toBbox(compressed)],
                    "iscrowd": 0,
                    "score": result.scores.get((object_id, stem), 1.0),
                }
            )
    categories = [
        {"id": object_id, "name": f"object {object_id}", "supercategory": "object"}
        for object_id in object_ids
    ]
    return {
        "info": {"description": f"mvsam export of {result.root}"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def export_coco(result: Result, object_ids: list[int], view_names: dict[str, str], out: Path) -> list[Path]:
    """``out/instances.json``."""
    path = out / "instances.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco_instances(result, object_ids, view_names)))
    return [path]
