"""nerfstudio / instant-ngp / Blender-synthetic ``transforms.json``.

Intrinsics: ``fl_x``/``fl_y``/``cx``/``cy``/``w``/``h`` at the top level, each overridable per frame; or
``camera_angle_x`` (and ``camera_angle_y``), Blender-style, with the principal point at the image centre.
Principal points are measured from the top-left pixel corner there and are shifted by half a pixel.
Poses: per-frame ``transform_matrix``, camera-to-world in the NeRF/OpenGL convention (x right, y up,
z back), converted to OpenCV axes. Distortion (``k1 k2 p1 p2`` and optional ``k3``, OpenCV model) is
removed by writing undistorted images to the cache (see ``undistort``): cameras come out as pinholes.
Fisheye and equirectangular cameras raise ValueError. Views are sorted by file name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.errors import InputError
from mvsam.io.conventions import K_pixel_corner_to_centre, opengl_c2w_to_world_from_cam
from mvsam.io.images import natural_key
from mvsam.io.loaders.common import (
    LoadOptions,
    Notes,
    make_camera,
    probe_images,
    require_file,
    require_single_size,
    require_views,
)
from mvsam.io.loaders.undistort import has_distortion, undistorted_image
from mvsam.scene import Scene, View

TRANSFORMS_FILE = "transforms.json"
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "p1", "p2", "camera_angle_x")


def detect(root: Path) -> bool:
    return (root / TRANSFORMS_FILE).is_file()


def _frame_path(root: Path, file_path: str) -> Path:
    """The image of a frame; Blender sets omit the extension (``./train/r_0``)."""
    path = root / file_path
    if path.suffix == "" and not path.is_file():
        for suffix in (".png", ".jpg", ".jpeg"):
            if path.with_suffix(suffix).is_file():
                return path.with_suffix(suffix)
    return path


def _intrinsics(params: dict, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 K in mvsam's pixel-centre convention, OpenCV distortion k1 k2 p1 p2 k3) for one frame."""
    width, height = size
    if "w" in params and "h" in params and (round(params["w"]), round(params["h"])) != size:
        raise ValueError(
            f"transforms.json says {params['w']:g}x{params['h']:g} but the image is {width}x{height}"
        )
    if "fl_x" in params:
        fx = float(params["fl_x"])
        fy = float(params.get("fl_y", fx))
    elif "camera_angle_x" in params:
        fx = 0.5 * width / math.tan(0.5 * float(params["camera_angle_x"]))
        fy = (
            0.5 * height / math.tan(0.5 * float(params["camera_angle_y"]))
            if "camera_angle_y" in params
            else fx
        )
    else:
        raise ValueError("transforms.json has no focal length (fl_x or camera_angle_x)")
    cx = float(params.get("cx", width / 2.0))
    cy = float(params.get("cy", height / 2.0))
    K = K_pixel_corner_to_centre(np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]))
    distortion = np.array([float(params.get(key, 0.0)) for key in ("k1", "k2", "p1", "p2", "k3")])
    return K, distortion


def load(root: Path, options: LoadOptions) -> Scene:
    transforms_path = require_file(root / TRANSFORMS_FILE, "transforms file")
    try:
        meta = json.loads(transforms_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{transforms_path}: not valid JSON: {error}") from None
    if not isinstance(meta, dict):
        raise InputError(
            f'{transforms_path}: expected a JSON object with a "frames" list, got a {type(meta).__name__}'
        )
    model = meta.get("camera_model", "OPENCV")
    if model not in ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE"):
        raise ValueError(f"{transforms_path}: camera_model {model} is not supported (OPENCV/pinhole only)")
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{transforms_path}: no frames")
    if not all(isinstance(frame, dict) for frame in frames):
        raise InputError(f'{transforms_path}: every entry of "frames" must be an object')
    frames = sorted(frames, key=lambda frame: natural_key(str(frame.get("file_path", ""))))
    shared = {key: meta[key] for key in INTRINSIC_KEYS if key in meta}
    for frame in frames:
        if "file_path" not in frame or "transform_matrix" not in frame:
            raise ValueError(f"{transforms_path}: every frame needs file_path and transform_matrix")
    paths = [_frame_path(root, frame["file_path"]) for frame in frames]
    notes = Notes()
    missing = [path for path in paths if not path.is_file()]
    if len(missing) == len(paths):
        require_file(missing[0], "image listed in transforms.json")
    if missing:
        # instant-ngp skips listed frames whose image is absent (its fox scene lists 67 and ships 50)
        notes.warn(
            f"{transforms_path}: skipped {len(missing)} of {len(paths)} frames whose image is missing, "
            f"e.g. {missing[0]}"
        )
        frames = [frame for frame, path in zip(frames, paths, strict=True) if path.is_file()]
        paths = [path for path in paths if path.is_file()]
    sizes = probe_images(paths, notes)
    if not any(key in frame for frame in frames for key in INTRINSIC_KEYS) and sizes:
        require_single_size(sizes, "transforms.json gives one camera for all frames")
    views = []
    for frame, path in tqdm(
        list(zip(frames, paths, strict=True)),
        desc="reading frames",
        unit="img",
        disable=len(frames) < 50,
        leave=False,
    ):
        if path not in sizes:
            continue
        params = shared | {key: frame[key] for key in INTRINSIC_KEYS if key in frame}
        try:
            K, distortion = _intrinsics(params, sizes[path])
        except ValueError as error:
            raise ValueError(f"{transforms_path}, frame {path.name}: {error}") from error
        try:
            world_from_cam = opengl_c2w_to_world_from_cam(
                np.asarray(frame["transform_matrix"], dtype=np.float64)
            )
        except ValueError as error:
            notes.warn(f"skipped view {path.name}: {error}")
            continue
        camera = make_camera(path.name, K, world_from_cam, sizes[path], notes)
        if camera is None:
            continue
        image_path = (
            undistorted_image(path, K, distortion, options.cache_dir) if has_distortion(distortion) else path
        )
        views.append(View(path.name, image_path, *sizes[path], camera=camera))
    require_views(len(views), root)
    return Scene(root, views, "nerfstudio", options.cache_dir, notes=notes.lines)
