"""LLFF layout: ``poses_bounds.npy`` + ``images_N/`` (or ``images/``).

Each row is 17 numbers: a 3x5 [R | t | hwf] camera-to-world with axis columns [down, right, back] (see
``conventions.llff_to_world_from_cam``) and the (near, far) depth bounds, which become ``depth_range``.
hwf describe the full-resolution originals; the focal is scaled to the images actually loaded.

Image folder: ``image_subdir`` when given, else ``images_4`` when present (the resolution LLFF scenes are
usually evaluated at), else the first ``images_*`` in natural order, else ``images``. Rows match the
images in name order, so the folder must hold exactly one image per row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvsam.errors import InputError
from mvsam.io.conventions import llff_hwf_to_K, llff_to_world_from_cam
from mvsam.io.images import list_images, natural_key
from mvsam.io.loaders.common import (
    LoadOptions,
    Notes,
    make_camera,
    probe_images,
    require_file,
    require_single_size,
    require_views,
)
from mvsam.scene import Scene, View

POSES_FILE = "poses_bounds.npy"


def detect(root: Path) -> bool:
    return (root / POSES_FILE).is_file()


def image_folder(root: Path, image_subdir: str | None) -> Path:
    """The folder chosen as described in the module docstring."""
    if image_subdir is not None:
        folder = root / image_subdir
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}")
        return folder
    if (root / "images_4").is_dir():
        return root / "images_4"
    downscaled = sorted((p for p in root.glob("images_*") if p.is_dir()), key=natural_key)
    if downscaled:
        return downscaled[0]
    if (root / "images").is_dir():
        return root / "images"
    raise FileNotFoundError(f"{root}: no image folder (looked for images_4/, images_*/ and images/)")


def load(root: Path, options: LoadOptions) -> Scene:
    poses_path = require_file(root / POSES_FILE, "LLFF poses file")
    try:
        rows = np.asarray(np.load(poses_path, allow_pickle=False), dtype=np.float64)
    except (ValueError, OSError, EOFError):  # numpy's own words suggest allow_pickle, which is no fix
        with open(poses_path, "rb") as handle:
            head = handle.read(6)
        why = "truncated or damaged" if head == b"\x93NUMPY" else "not a .npy file (text? pickle?)"
        raise InputError(
            f"{poses_path} is {why}; it must be an N x 17 float array saved with numpy.save "
            "(regenerate it with LLFF's imgs2poses.py)"
        ) from None
    if rows.ndim != 2 or rows.shape[1] != 17:
        raise InputError(f"{poses_path}: expected an N x 17 array, got shape {rows.shape}")
    folder = image_folder(root, options.image_subdir)
    paths = list_images(folder)
    if len(paths) != len(rows):
        raise ValueError(f"{poses_path} has {len(rows)} poses but {folder} has {len(paths)} images")
    notes = Notes()
    sizes = probe_images(paths, notes)
    if not sizes:
        require_views(0, root)
    width, height = require_single_size(sizes, "LLFF scales one focal length to all of them")
    views = []
    for index, (path, row) in enumerate(zip(paths, rows, strict=True)):
        if path not in sizes:
            continue
        world_from_cam, (h, w, focal) = llff_to_world_from_cam(row[:15].reshape(3, 5))
        try:
            K = llff_hwf_to_K(h, w, focal, width, height)
        except ValueError as error:
            notes.warn(f"skipped view {path.name}: {error}")
            continue
        camera = make_camera(path.name, K, world_from_cam, (width, height), notes)
        if camera is None:
            continue
        near, far = float(row[15]), float(row[16])
        depth_range = (near, far) if 0 < near < far else None
        if depth_range is None:
            notes.warn(
                f"{poses_path.name} row {index} ({path.name}): near/far ({near:g}, {far:g}) is not "
                "0 < near < far; its depth range is ignored (depth search uses the sparse points)"
            )
        views.append(View(path.name, path, width, height, camera=camera, depth_range=depth_range))
    require_views(len(views), root)
    return Scene(root, views, "llff", options.cache_dir, notes=notes.lines)
