"""Image-shaped exports: per-object 0/255 PNGs, DAVIS indexed PNGs, RGBA cut-outs."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from mvsam.errors import InputError
from mvsam.export.result import Result, scene_view
from mvsam.scene import Scene


def png_bytes(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))
    return path


def binary_image(mask: np.ndarray) -> Image.Image:
    """HxW bool -> 8-bit grayscale 0/255."""
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")


def davis_palette() -> list[int]:
    """The DAVIS / PASCAL VOC 256-colour palette as 768 ints (id 0 black, 1 red, 2 green, ...).

    Colour of index i: bit k of i's (r, g, b) groups of three bits fills bit 7 - k of each channel.
    """
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        code = index
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((code >> channel) & 1) << (7 - bit)
            code >>= 3
        palette += rgb
    return palette


def union_mask(result: Result, object_ids: list[int], stem: str) -> np.ndarray:
    """HxW bool: the pixels of any of the objects."""
    if result.layout == "ids":
        return np.isin(result.ids(stem), object_ids)
    return _union(result, object_ids, stem)


def _union(result: Result, object_ids: list[int], stem: str) -> np.ndarray:
    out = None
    for object_id in object_ids:
        mask = result.mask(object_id, stem)
        out = mask if out is None else out | mask
    return out


def export_png(result: Result, object_ids: list[int], out: Path) -> list[Path]:
    """``out/masks/<object id>/<stem>.png``: uint8 0/255 at image size, one folder per object."""
    return [
        write_png(out / "masks" / str(object_id) / f"{stem}.png", binary_image(result.mask(object_id, stem)))
        for object_id in object_ids
        for stem in result.views
    ]


def export_davis(result: Result, object_ids: list[int], out: Path) -> list[Path]:
    """``out/ids/<stem>.png``: 8-bit palette PNG, pixel value = object id (0 = none), DAVIS palette."""
    if max(object_ids, default=0) > 255:
        raise InputError(f"DAVIS PNGs hold ids up to 255; the result has id {max(object_ids)}")
    written = []
    for stem in result.views:
        ids = result.ids(stem)
        ids = np.where(np.isin(ids, object_ids), ids, 0).astype(np.uint8)
        image = Image.fromarray(ids, mode="P")
        image.putpalette(davis_palette())
        written.append(write_png(out / "ids" / f"{stem}.png", image))
    return written


def export_rgba(result: Result, object_ids: list[int], scene: Scene, out: Path) -> list[Path]:
    """``out/rgba/<stem>.png``: the view's image with alpha = 255 on the objects, 0 elsewhere."""
    written = []
    for stem in result.views:
        view = scene.views[scene_view(scene, stem)]
        image = view.load_image()
        mask = union_mask(result, object_ids, stem)
        if mask.shape != image.shape[:2]:
            raise InputError(f"mask {stem} is {mask.shape[::-1]}, image {view.name} is {image.shape[1::-1]}")
        rgba = np.dstack([image, np.where(mask, 255, 0).astype(np.uint8)])
        written.append(write_png(out / "rgba" / f"{stem}.png", Image.fromarray(rgba, mode="RGBA")))
    return written
