"""COLMAP sparse model (``sparse/0/`` or ``sparse/`` with cameras/images/points3D as .bin or .txt) +
``images/``.

COLMAP already uses OpenCV camera axes and stores cam_from_world; its principal point is measured from
the top-left pixel corner and is shifted by half a pixel here. Lens distortion (SIMPLE_RADIAL, RADIAL,
OPENCV, FULL_OPENCV) is removed by writing undistorted images to the cache (see ``undistort``), and track
observations are undistorted the same way, so cameras are plain pinholes. Fisheye and other models raise
ValueError: run COLMAP's ``image_undistorter`` first. Only registered images become views.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

import numpy as np
import pycolmap
from tqdm import tqdm

from mvsam.errors import InputError
from mvsam.io.conventions import K_pixel_corner_to_centre, invert_rigid
from mvsam.io.loaders.common import LoadOptions, Notes, make_camera, probe_image, require_views
from mvsam.io.loaders.undistort import has_distortion, undistort_points, undistorted_image
from mvsam.scene import Scene, SparsePoints, View

MODEL_FILES = ("cameras", "images", "points3D")


def _model_files(folder: Path) -> list[str]:
    """Which of cameras / images / points3D (.bin or .txt) the folder holds."""
    return [
        name
        for name in MODEL_FILES
        if any((folder / f"{name}{suffix}").is_file() for suffix in (".bin", ".txt"))
    ]


def _candidates(root: Path) -> tuple[Path, ...]:
    return (root / "sparse" / "0", root / "sparse", root)


def model_folder(root: Path) -> Path | None:
    """``sparse/0``, else ``sparse``, else the folder itself, whichever holds a complete model."""
    for folder in _candidates(root):
        if folder.is_dir() and len(_model_files(folder)) == len(MODEL_FILES):
            return folder
    return None


def partial_model_folder(root: Path) -> Path | None:
    """A ``sparse/0`` or ``sparse`` folder holding some but not all model files (a broken COLMAP export)."""
    for folder in _candidates(root)[:2]:
        if folder.is_dir() and 0 < len(_model_files(folder)) < len(MODEL_FILES):
            return folder
    return None


def detect(root: Path) -> bool:
    """A complete model, or an incomplete one: ``load`` then refuses it rather than silently running SfM."""
    return root.is_dir() and (model_folder(root) is not None or partial_model_folder(root) is not None)


# Parameter count per COLMAP camera model id (pycolmap.CameraModelId), for checking cameras.bin.
_CAMERA_PARAMS = {0: 3, 1: 4, 2: 4, 3: 5, 4: 8, 5: 8, 6: 12, 7: 5, 8: 4, 9: 5, 10: 12, 11: 16, 12: 4, 13: 5}
_CAMERA_PARAMS |= {14: 3, 15: 4, 16: 6, 17: 2}


class _Truncated(Exception):
    """A binary model file ends before the records it declares."""


def _walk_records(data: memoryview, record) -> None:
    """Walk ``count`` records with ``record(data, offset) -> next offset``, checking every size first."""
    if len(data) < 8:
        raise _Truncated(f"{len(data)} bytes, too short for the record count")
    (count,) = struct.unpack_from("<Q", data, 0)
    offset = 8
    for index in range(count):
        offset = record(data, offset)
        if offset > len(data):
            raise _Truncated(
                f"record {index + 1} of {count} ends at byte {offset} past the end ({len(data)})"
            )
    if offset != len(data):
        raise _Truncated(f"{len(data) - offset} unexpected bytes after the {count} declared records")


def _camera_record(data: memoryview, offset: int) -> int:
    if offset + 24 > len(data):
        return offset + 24
    (model_id,) = struct.unpack_from("<i", data, offset + 4)
    if model_id not in _CAMERA_PARAMS:
        raise _Truncated(f"unknown camera model id {model_id} at byte {offset + 4}")
    return offset + 24 + 8 * _CAMERA_PARAMS[model_id]


def _image_record(data: memoryview, offset: int) -> int:
    end = bytes(data[offset + 64 : offset + 64 + 4096]).find(b"\0")
    if offset + 64 > len(data) or end < 0:
        return len(data) + 1
    offset += 64 + end + 1
    if offset + 8 > len(data):
        return offset + 8
    (points,) = struct.unpack_from("<Q", data, offset)
    return offset + 8 + 24 * points


def _point_record(data: memoryview, offset: int) -> int:
    if offset + 51 > len(data):
        return offset + 51
    (track,) = struct.unpack_from("<Q", data, offset + 43)
    return offset + 51 + 8 * track


def check_binary_model(folder: Path) -> None:
    """InputError naming the file when a ``.bin`` model file is truncated or malformed.

    COLMAP trusts the counts in these files and allocates for them, so a truncated ``points3D.bin`` makes
    it climb past gigabytes before failing; walking the records against the file size first costs ~1 s
    per million points and allocates nothing.
    """
    for name, record in (("cameras", _camera_record), ("images", _image_record), ("points3D", _point_record)):
        path = folder / f"{name}.bin"
        if not path.is_file() or (folder / f"{name}.txt").is_file():
            continue
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise InputError(f"{path} is empty; export the COLMAP model again")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    _walk_records(view, record)
                except _Truncated as error:
                    raise InputError(
                        f"{path} is truncated or not a COLMAP {name}.bin ({error}); export the model again"
                    ) from None
                finally:
                    view.release()


def intrinsics_from_colmap(camera: pycolmap.Camera) -> tuple[np.ndarray, np.ndarray | None]:
    """(3x3 K in COLMAP's corner convention, OpenCV distortion coefficients or None) of a COLMAP camera."""
    model, p = camera.model_name, np.asarray(camera.params, dtype=np.float64)
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
        distortion = {
            "SIMPLE_PINHOLE": None,
            "SIMPLE_RADIAL": np.array([p[3], 0.0, 0.0, 0.0]) if len(p) > 3 else None,
            "RADIAL": np.array([p[3], p[4], 0.0, 0.0]) if len(p) > 4 else None,
        }[model]
    elif model in ("PINHOLE", "OPENCV", "FULL_OPENCV"):
        fx, fy, cx, cy = p[:4]
        distortion = p[4:].copy() if model != "PINHOLE" else None
    else:
        raise ValueError(
            f"COLMAP camera model {model} is not supported (pinhole, radial and OpenCV models are); "
            "undistort the model with `colmap image_undistorter` first"
        )
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, distortion


def _image_folder(root: Path, model: Path, image_subdir: str | None) -> Path:
    if image_subdir is not None:
        candidates = [root / image_subdir]
    else:
        candidates = [root / "images", model.parent.parent / "images", model.parent / "images"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"{root}: image folder not found (looked in {', '.join(map(str, candidates))})")


def load(root: Path, options: LoadOptions) -> Scene:
    model = model_folder(root)
    if model is None:
        partial = partial_model_folder(root)
        if partial is not None:
            have = _model_files(partial)
            lacking = [f"{name}.bin/.txt" for name in MODEL_FILES if name not in have]
            raise InputError(
                f"{partial} holds an incomplete COLMAP model ({', '.join(have)} but no "
                f"{', '.join(lacking)}); "
                "restore the missing files to use its cameras, or pass --format images to ignore it and "
                "estimate cameras by SfM"
            )
        raise FileNotFoundError(
            f"{root}: no COLMAP model (cameras, images, points3D .bin/.txt) in sparse/0/, sparse/ or itself"
        )
    folder = _image_folder(root, model, options.image_subdir)
    check_binary_model(model)
    try:
        reconstruction = pycolmap.Reconstruction(str(model))
    except Exception as error:  # pycolmap raises RuntimeError/ValueError from C++ checks, with no file name
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise InputError(f"{model}: cannot read the COLMAP model: {first_line}") from None
    notes = Notes()
    views: list[View] = []
    view_of_image: dict[int, int] = {}
    distortion_of_view: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    images = sorted(reconstruction.images.values(), key=lambda image: image.name)
    for image in tqdm(images, desc="reading COLMAP views", unit="img", disable=len(images) < 50, leave=False):
        if not image.has_pose:
            continue
        path = folder / image.name
        colmap_camera = reconstruction.cameras[image.camera_id]
        try:
            size = probe_image(path)
        except ValueError as error:
            notes.warn(f"skipped view {image.name}: {error}")
            continue
        expected = (colmap_camera.width, colmap_camera.height)
        if size != expected:
            raise ValueError(
                f"{path} is {size[0]}x{size[1]} but its COLMAP camera {image.camera_id} is "
                f"{expected[0]}x{expected[1]}; point image_subdir at the images the model was made from"
            )
        K_corner, distortion = intrinsics_from_colmap(colmap_camera)
        K = K_pixel_corner_to_centre(K_corner)
        world_from_cam = invert_rigid(image.cam_from_world().matrix())
        camera = make_camera(image.name, K, world_from_cam, size, notes)
        if camera is None:
            continue
        image_path = path
        if has_distortion(distortion):
            image_path = undistorted_image(path, K, distortion, options.cache_dir)
            distortion_of_view[len(views)] = (K, distortion)
        view_of_image[image.image_id] = len(views)
        views.append(View(image.name, image_path, size[0], size[1], camera=camera))
    require_views(len(views), root, "registered images")
    sparse = _sparse_points(reconstruction, view_of_image, distortion_of_view)
    return Scene(root, views, "colmap", options.cache_dir, sparse=sparse, notes=notes.lines)


def _sparse_points(
    reconstruction: pycolmap.Reconstruction,
    view_of_image: dict[int, int],
    distortion_of_view: dict[int, tuple[np.ndarray, np.ndarray]],
) -> SparsePoints:
    """All 3D points with their observations in the loaded views, pixels in mvsam's convention."""
    xyz, rgb, track_point, track_view, track_xy = [], [], [], [], []
    for point_id in sorted(reconstruction.points3D):
        point = reconstruction.points3D[point_id]
        index = len(xyz)
        xyz.append(point.xyz)
        rgb.append(point.color)
        for element in point.track.elements:
            view = view_of_image.get(element.image_id)
            if view is None:
                continue
            image = reconstruction.images[element.image_id]
            track_point.append(index)
            track_view.append(view)
            track_xy.append(np.asarray(image.points2D[element.point2D_idx].xy) - 0.5)
    track_view_array = np.asarray(track_view, dtype=np.int64)
    track_xy_array = np.asarray(track_xy, dtype=np.float64).reshape(-1, 2)
    for view, (K, distortion) in distortion_of_view.items():
        rows = track_view_array == view
        track_xy_array[rows] = undistort_points(track_xy_array[rows], K, distortion)
    return SparsePoints(
        xyz=np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
        rgb=np.asarray(rgb, dtype=np.uint8).reshape(-1, 3),
        track_point=np.asarray(track_point, dtype=np.int64),
        track_view=track_view_array,
        track_xy=track_xy_array,
    )
