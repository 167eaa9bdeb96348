"""The web app's download: one zip with every object's masks, COCO RLE JSON, overlays and 3D points.

Kept in one function (:func:`export_zip`) so it can switch to ``mvsam.export``'s writers when they cover
these formats; it already reuses the project's PNG, RLE, overlay and PLY code.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mvsam.export.overlay import overlay_masks
from mvsam.export.ply import write_ply
from mvsam.sam.masks import encode_rle, mask_boxes, rle_area
from mvsam.scene import Scene


@dataclass
class ExportObject:
    id: int
    name: str
    color: tuple[int, int, int]
    masks: list[np.ndarray]  # one HxW bool mask per view, at the image size
    xyz: np.ndarray  # Nx3 float64 object points
    rgb: np.ndarray  # Nx3 uint8


def ply_bytes(xyz: np.ndarray, rgb: np.ndarray) -> bytes:
    """A binary PLY of coloured points, written by :func:`mvsam.export.ply.write_ply`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "points.ply"
        write_ply(path, xyz, rgb)
        return path.read_bytes()


def _png(mask: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    return data.tobytes()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:40] or "object"


def export_zip(scene: Scene, objects: list[ExportObject]) -> bytes:
    """Zip bytes holding, for objects ``o`` and views ``v``:

    - ``masks/<id>_<name>/<view stem>.png``: uint8 0/255 at the image size;
    - ``coco.json``: images, one category per object, one RLE annotation per non-empty mask
      (``object_id`` = the app's stable object id);
    - ``overlays/<view stem>.jpg``: every object's mask drawn over the image in its colour;
    - ``points/<id>_<name>.ply``: the object's 3D points;
    - ``objects.json``: ids, names, colours.
    """
    buffer = io.BytesIO()
    images, annotations = [], []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for obj in objects:
            folder = f"{obj.id}_{_slug(obj.name)}"
            for index, mask in enumerate(obj.masks):
                archive.writestr(f"masks/{folder}/{scene.views[index].stem}.png", _png(mask))
                if mask.any():
                    rle = encode_rle(mask)
                    x0, y0, x1, y1 = (int(v) for v in mask_boxes(mask[None])[0])
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": index,
                            "category_id": obj.id,
                            "object_id": obj.id,
                            "segmentation": rle,
                            "area": rle_area(rle),
                            "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "iscrowd": 0,
                        }
                    )
            archive.writestr(f"points/{folder}.ply", ply_bytes(obj.xyz, obj.rgb))
        for index, view in enumerate(scene.views):
            images.append({"id": index, "file_name": view.name, "width": view.width, "height": view.height})
            masks = [obj.masks[index] for obj in objects]
            colors = np.array([obj.color for obj in objects], np.uint8).reshape(-1, 3)
            picture = overlay_masks(view.load_image(), masks, colors)
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
            )
            archive.writestr(f"overlays/{view.stem}.jpg", data.tobytes())
        categories = [{"id": obj.id, "name": obj.name} for obj in objects]
        coco = {"images": images, "categories": categories, "annotations": annotations}
        archive.writestr("coco.json", json.dumps(coco))
        listing = [{"id": o.id, "name": o.name, "color": list(o.color)} for o in objects]
        archive.writestr("objects.json", json.dumps(listing, indent=1))
    return buffer.getvalue()
