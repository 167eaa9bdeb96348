"""Camera files for training on the object alone: nerfstudio ``transforms.json`` and a COLMAP text model.

Both write masks beside the cameras: nerfstudio's ``mask_path`` (single channel, 0 = ignore the pixel,
255 = use it) and COLMAP's mask folder (``<image name>.png``, as ``--ImageReader.mask_path`` expects: features
are extracted only where the mask is non-zero). Conversions go through :mod:`mvsam.io.conventions`.
"""

from __future__ import annotations

import json
from pathlib import Path

from mvsam.errors import InputError
from mvsam.export.masks import binary_image, union_mask, write_png
from mvsam.export.result import Result, scene_view
from mvsam.io.conventions import (
    K_pixel_centre_to_corner,
    world_from_cam_to_colmap,
    world_from_cam_to_opengl_c2w,
)
from mvsam.scene import Scene, View

DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def _numbers(*values) -> str:
    return " ".join(repr(float(v)) for v in values)


def _views(result: Result, scene: Scene) -> list[tuple[str, View]]:
    pairs = []
    for stem in result.views:
        view = scene.views[scene_view(scene, stem)]
        if view.camera is None:
            raise InputError(f"view {view.name} of {scene.root} has no camera; cannot write camera files")
        pairs.append((stem, view))
    return pairs


def nerfstudio_frame(view: View) -> dict:
    """One nerfstudio frame of an mvsam view: OpenGL camera-to-world, corner-based principal point."""
    K = K_pixel_centre_to_corner(view.camera.K)
    return {
        "file_path": str(view.image_path.absolute()),
        "transform_matrix": world_from_cam_to_opengl_c2w(view.camera.world_from_cam).tolist(),
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "w": view.width,
        "h": view.height,
    }


def export_nerfstudio(result: Result, object_ids: list[int], scene: Scene, out: Path) -> list[Path]:
    """``out/transforms.json`` + ``out/masks/<stem>.png``.

    A scene loaded from ``transforms.json`` keeps every original field (top level and per frame); only
    ``file_path`` becomes absolute so it resolves from ``out``, and ``mask_path`` is added. When mvsam
    undistorted the images (the masks are on those), ``file_path`` names the undistorted copy and the
    distortion coefficients are set to 0. Other scenes get
    per-frame pinhole intrinsics and OpenGL camera-to-world matrices from the scene's cameras.
    """
    pairs = _views(result, scene)
    written = [
        write_png(out / "masks" / f"{stem}.png", binary_image(union_mask(result, object_ids, stem)))
        for stem, _ in pairs
    ]
    original = scene.root / "transforms.json"
    if scene.source_format == "nerfstudio" and original.is_file():
        meta = json.loads(original.read_text())
        by_name = {}
        for frame in meta.get("frames", []):
            by_name.setdefault(Path(frame.get("file_path", "")).name, frame)
        frames = []
        for stem, view in pairs:
            frame = dict(by_name.get(view.name) or by_name.get(Path(view.name).name) or {})
            if not frame:
                raise InputError(f"{original} has no frame for {view.name}")
            frame["file_path"] = str(view.image_path.absolute())
            frame["mask_path"] = f"masks/{stem}.png"
            frames.append(frame)
        meta["frames"] = frames
        if any(view.image_path.is_relative_to(scene.cache_dir) for _, view in pairs):
            for record in [meta, *frames]:
                record.update({key: 0.0 for key in DISTORTION_KEYS if key in record})
    else:
        frames = [nerfstudio_frame(view) | {"mask_path": f"masks/{stem}.png"} for stem, view in pairs]
        meta = {"camera_model": "OPENCV", "frames": frames}
    path = out / "transforms.json"
    path.write_text(json.dumps(meta, indent=2))
    return [*written, path]


def export_colmap(result: Result, object_ids: list[int], scene: Scene | None, out: Path) -> list[Path]:
    """``out/colmap/masks/<image name>.png`` and, when every view has a camera, ``out/colmap/sparse/0/``
    ``cameras.txt images.txt points3D.txt`` (one PINHOLE camera per view; no 3D points)."""
    root = out / "colmap"
    written = []
    names = {}
    for stem in result.views:
        index = None if scene is None else scene_view(scene, stem)
        name = scene.views[index].name if index is not None else f"{stem}.png"
        names[stem] = name
        written.append(
            write_png(root / "masks" / f"{name}.png", binary_image(union_mask(result, object_ids, stem)))
        )
    if scene is None or not scene.has_cameras:
        return written
    cameras, images = (
        ["# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"],
        ["# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n# POINTS2D[] as (X, Y, POINT3D_ID)\n"],
    )
    for number, (stem, view) in enumerate(_views(result, scene), start=1):
        K = K_pixel_centre_to_corner(view.camera.K)
        cameras.append(
            f"{number} PINHOLE {view.width} {view.height} {_numbers(K[0, 0], K[1, 1], K[0, 2], K[1, 2])}\n"
        )
        qvec, tvec = world_from_cam_to_colmap(view.camera.world_from_cam)
        images.append(f"{number} {_numbers(*qvec, *tvec)} {number} {names[stem]}\n\n")
    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    for name, lines in (
        ("cameras.txt", cameras),
        ("images.txt", images),
        ("points3D.txt", ["# no points\n"]),
    ):
        (sparse / name).write_text("".join(lines))
        written.append(sparse / name)
    return written
