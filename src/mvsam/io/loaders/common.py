"""Pieces every scene loader shares: options, warnings that are never silent, image probing, cameras."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mvsam.cache import hash_bytes, mvsam_home
from mvsam.errors import InputError
from mvsam.io.images import exif_orientation, open_image
from mvsam.scene import Camera

MIN_VIEWS = 2  # a multi-view scene needs at least two views


@dataclass
class LoadOptions:
    """Settings shared by all loaders (see ``load_scene``)."""

    cache_dir: Path
    video_stride: int = 1
    video_max_frames: int | None = None
    image_subdir: str | None = None


@dataclass
class Notes:
    """Warnings raised while loading: kept for ``Scene.notes`` and also sent to ``warnings.warn``."""

    lines: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.lines.append(message)
        warnings.warn(message, stacklevel=3)


def _writable(folder: Path) -> bool:
    """Writable by us *and* not marked read-only: root passes ``os.access`` even on r-x shared data."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def default_cache_dir(path: Path) -> Path:
    """``<scene folder>/.mvsam_cache`` when writable, else ``mvsam_home()/scenes/<hash of the path>``.

    A scene given as a file (video, pointmap .npz) gets ``<its folder>/.mvsam_cache/<file name>`` so two
    videos side by side never share frames.
    """
    path = path.resolve()
    folder = path.parent if path.is_file() else path
    local = folder / ".mvsam_cache"
    if path.is_file():
        local = local / path.name
    if _writable(folder) and (not local.parent.exists() or _writable(local.parent)):
        return local
    return mvsam_home() / "scenes" / hash_bytes(str(path))[:16]


def probe_image(path: Path) -> tuple[int, int]:
    """(width, height) of an image after decoding it (reduced-size for JPEG) so truncated files are caught.

    Raises FileNotFoundError when missing and ValueError when the file cannot be decoded.
    """
    with open_image(path) as image:
        size = image.size
        try:
            image.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise InputError(f"cannot read image {path}: {error}") from None
        return size


def probe_images(paths: list[Path], notes: Notes) -> dict[Path, tuple[int, int]]:
    """Sizes of the readable images; unreadable ones are left out with a warning (missing ones raise)."""
    sizes: dict[Path, tuple[int, int]] = {}
    for path in tqdm(paths, desc="checking images", unit="img", disable=len(paths) < 50, leave=False):
        try:
            sizes[path] = probe_image(path)
        except ValueError as error:
            notes.warn(f"skipped view {path.name}: {error}")
    rotated = [path.name for path in sizes if _orientation(path) != 1]
    if rotated:
        notes.warn(
            f"{len(rotated)} images carry an EXIF rotation tag (e.g. {', '.join(rotated[:3])}); mvsam uses "
            "the pixels as stored, like COLMAP, so masks come out in the stored orientation"
        )
    return sizes


def _orientation(path: Path) -> int:
    with Image.open(path) as image:
        return exif_orientation(image)


def require_single_size(sizes: dict[Path, tuple[int, int]], why: str) -> tuple[int, int]:
    """The one (width, height) shared by all images; ValueError naming an odd one out otherwise."""
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        counts = {size: sum(1 for s in sizes.values() if s == size) for size in distinct}
        odd = next(p for p, s in sizes.items() if counts[s] == min(counts.values()))
        summary = ", ".join(f"{w}x{h} ({n} images)" for (w, h), n in counts.items())
        raise ValueError(
            f"images have mixed sizes ({summary}), but {why}; e.g. {odd} is {sizes[odd][0]}x{sizes[odd][1]}"
        )
    return distinct[0]


def make_camera(
    name: str,
    K: np.ndarray,
    world_from_cam: np.ndarray,
    size: tuple[int, int],
    notes: Notes,
) -> Camera | None:
    """A Camera, or None with a warning when the pose/intrinsics are degenerate (NaN, not a rotation)."""
    try:
        return Camera(K=K, world_from_cam=world_from_cam, width=size[0], height=size[1])
    except ValueError as error:
        notes.warn(f"skipped view {name}: {error}")
        return None


def require_views(count: int, root: Path, what: str = "views") -> None:
    """ValueError when fewer than MIN_VIEWS usable views remain."""
    if count < MIN_VIEWS:
        raise ValueError(f"{root}: found {count} usable {what}; a scene needs at least {MIN_VIEWS}")


def require_file(path: Path, what: str) -> Path:
    """FileNotFoundError naming the file and what it is for."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path
