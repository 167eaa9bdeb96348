"""A plain folder of images (or of extracted video frames): views without cameras, SfM adds them later."""

from __future__ import annotations

from pathlib import Path

from mvsam.io.images import IMAGE_SUFFIXES, list_images
from mvsam.io.loaders.common import LoadOptions, Notes, probe_images, require_views
from mvsam.scene import Scene, View


def image_folder(root: Path, image_subdir: str | None) -> Path | None:
    """Where the images are: ``image_subdir`` if given, else ``root`` itself, else ``root/images``."""
    if image_subdir is not None:
        folder = root / image_subdir
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}")
        return folder
    for folder in (root, root / "images"):
        if folder.is_dir() and list_images(folder):
            return folder
    return None


def detect(root: Path) -> bool:
    return root.is_dir() and image_folder(root, None) is not None


def views_from_files(paths: list[Path], notes: Notes) -> list[View]:
    """Camera-less views of the readable images among ``paths`` (unreadable ones skipped with a warning)."""
    sizes = probe_images(paths, notes)
    return [View(name=p.name, image_path=p, width=w, height=h) for p, (w, h) in sizes.items()]


def load(root: Path, options: LoadOptions) -> Scene:
    """Images of different sizes are allowed: SfM gives each its own camera."""
    folder = image_folder(root, options.image_subdir)
    if folder is None:
        raise ValueError(f"{root}: no image files ({' '.join(IMAGE_SUFFIXES)}) in it or in images/")
    notes = Notes()
    views = views_from_files(list_images(folder), notes)
    require_views(len(views), root, "images")
    return Scene(
        root=root, views=views, source_format="images", cache_dir=options.cache_dir, notes=notes.lines
    )
