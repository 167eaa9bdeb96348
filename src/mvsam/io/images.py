"""Image files in and out, with errors that name the file.

Pixels are used as stored: EXIF orientation tags are not applied (COLMAP, and every dataset's cameras,
ignore them too, so masks stay aligned with the poses); loaders note views that carry such a tag.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mvsam.cache import atomic_write_bytes
from mvsam.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
EXIF_ORIENTATION = 0x0112
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_LABEL_MODES = ("P", "I", "I;16", "I;16L", "I;16B")  # integer ids per pixel


@contextlib.contextmanager
def open_image(path: str | Path, what: str = "image") -> Iterator[Image.Image]:
    """``PIL.Image.open`` with FileNotFoundError / InputError naming the file for anything unreadable.

    Images above PIL's decompression-bomb limit (~179 megapixels) are refused with their size.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with Image.open(path) as image:
            yield image
    except InputError:
        raise  # already says what is wrong, raised by the caller's block
    except Image.DecompressionBombError as error:
        raise InputError(
            f"{path}: the {what} is too large to read safely ({error}); downscale it (e.g. to 4000 px)"
        ) from None
    except _UNREADABLE as error:
        raise InputError(f"cannot read {what} {path}: {error}") from None


def _to_uint8_rgb(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 from any PIL mode; 16-bit and float grayscale are scaled, not clipped to white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I"):
        array = np.asarray(image).astype(np.float64)
        gray = np.clip(np.rint(array / 257.0), 0, 255).astype(np.uint8)  # 65535 -> 255
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0
        gray = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))  # also CMYK (Adobe-inverted JPEGs included), palette, RGBA


def read_rgb(path: str | Path) -> np.ndarray:
    """Read any image file as HxWx3 uint8 RGB (grayscale of any depth, CMYK, palette and RGBA converted)."""
    with open_image(path) as image:
        try:
            image.load()
            return _to_uint8_rgb(image)
        except _UNREADABLE as error:
            raise InputError(f"cannot read image {path}: {error}") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding the pixels."""
    with open_image(path) as image:
        return image.size


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 = as stored, 3/6/8 = rotated, 2/4/5/7 = mirrored), 1 when absent."""
    try:
        return int(image.getexif().get(EXIF_ORIENTATION, 1))
    except (TypeError, ValueError, OSError):
        return 1


def write_mask_png(path: str | Path, mask: np.ndarray) -> None:
    """Write a HxW bool mask as uint8 0/255 PNG (atomically, mode 0644 under the usual umask)."""
    buffer = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def write_image(path: str | Path, image: np.ndarray, quality: int = 90) -> None:
    """Write a HxWx3 uint8 RGB image atomically; the format follows the suffix (.jpg, .png)."""
    path = Path(path)
    buffer = io.BytesIO()
    kind = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.fromarray(image).save(buffer, format=kind, **({"quality": quality} if kind == "JPEG" else {}))
    atomic_write_bytes(path, buffer.getvalue())


def _is_label_image(image: Image.Image, array: np.ndarray) -> bool:
    """Whether pixel values are object ids (palette, integer, or a few small gray levels) not a 0/255 mask.

    A grayscale image is read as ids when it has 2..16 distinct non-zero values all below 255 (e.g. an
    instance map 0..4); an anti-aliased 0/255 mask has 255 and is a plain mask.
    """
    if image.mode in _LABEL_MODES:
        return True
    if image.mode != "L":
        return False
    values = np.unique(array)
    values = values[values != 0]
    return 2 <= len(values) <= 16 and values.max() < 255


def _read_mask_values(path: Path) -> tuple[np.ndarray, bool]:
    """HxW pixel values of a mask image (ids kept for label images, else grey levels) and whether they
    are object ids. InputError when the file cannot be read."""
    with open_image(path, "mask") as image:
        try:
            image.load()
            label = image.mode in _LABEL_MODES or image.mode == "L"
            array = np.asarray(image if label else image.convert("L"))
        except _UNREADABLE as error:
            raise InputError(f"cannot read mask {path}: {error}") from None
        return array, _is_label_image(image, array)


def read_mask_png(path: str | Path, object_id: int | None = None) -> np.ndarray:
    """Read a mask image as HxW bool: any non-zero pixel is foreground.

    A label image (DAVIS/VOC palette PNG, 16-bit ids, a small-valued instance map) with several object ids
    needs ``object_id`` to say which one; ``object_id`` also picks one id from any mask. InputError names
    the file and the ids found.
    """
    path = Path(path)
    array, is_label = _read_mask_values(path)
    ids = [int(v) for v in np.unique(array) if v != 0]
    if object_id is not None:
        if object_id not in ids:
            raise InputError(f"mask {path} has no object {object_id}; its non-zero ids are {ids[:20]}")
        return array == object_id
    if len(ids) > 1 and is_label:
        raise InputError(
            f"mask {path} holds several object ids {ids[:20]}; choose one with object=ID "
            f"(e.g. '...,path={path.name},object={ids[0]}')"
        )
    return array != 0


def label_ids(path: str | Path) -> list[int]:
    """The object ids of a label image (DAVIS/VOC palette PNG, 16-bit ids, a small-valued instance map),
    sorted; [] for a plain binary mask. InputError when the file cannot be read."""
    array, is_label = _read_mask_values(Path(path))
    return [int(v) for v in np.unique(array) if v != 0] if is_label else []


def natural_key(path: Path | str) -> list[int | str]:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (ScanNet, TUM) and is plain name order otherwise."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", Path(path).name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in a folder, hidden files (``.x``, macOS ``._x``) skipped, in natural order."""
    folder = Path(folder)
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=natural_key)


__all__ = [
    "IMAGE_SUFFIXES",
    "exif_orientation",
    "image_size",
    "list_images",
    "natural_key",
    "open_image",
    "read_mask_png",
    "read_rgb",
    "write_image",
    "write_mask_png",
]
