"""Pointmaps saved from an external model (DUSt3R, MASt3R, VGGT...): one ``.npz`` (or a folder with one).

Arrays: ``pts3d`` (V x H x W x 3 world points per pixel), ``conf`` (V x H x W, optional), the images as
``images`` (V x H x W x 3, uint8 or floats in [0, 1]; written as PNG to ``<cache_dir>/images/``) or
``image_paths`` (V strings, relative to the .npz), and optionally ``K`` (3x3 or V x 3 x 3, at the pointmap
resolution) and ``world_from_cam`` (V x 4 x 4, OpenCV axes).

Missing cameras are recovered per view from the pixel grid and its world points: a Hartley-normalised DLT
gives a projection matrix, hence K (skew dropped) and a pose, which ``cv2.solvePnP`` then refines by
minimising reprojection error; with a given K only the PnP step runs. Depth is the camera z of ``pts3d``
(0 where the point is invalid, behind the camera or has conf <= 0); confidence is ``conf`` divided by its
maximum over the whole scene. When the images are larger than the pointmaps, K is scaled and the depth is
resized (nearest) to the image size.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from mvsam.cache import atomic_write_bytes
from mvsam.io.conventions import invert_rigid, projection_to_K_world_from_cam
from mvsam.io.loaders.common import LoadOptions, Notes, make_camera, probe_image, require_views
from mvsam.scene import Scene, View

MIN_POINTS = 12  # DLT needs 6; ask for a few more valid pixels per view
MAX_FIT_POINTS = 20000  # pixels used to fit one camera, evenly subsampled


def _has_pointmaps(path: Path) -> bool:
    try:
        with np.load(path) as data:
            return "pts3d" in data.files
    except (OSError, ValueError):
        return False


def find_npz(path: Path) -> Path | None:
    """The pointmap file: ``path`` itself, or the one .npz with ``pts3d`` inside the folder."""
    if path.is_file():
        return path if path.suffix == ".npz" and _has_pointmaps(path) else None
    if not path.is_dir():
        return None
    found = [p for p in sorted(path.glob("*.npz")) if _has_pointmaps(p)]
    return found[0] if len(found) == 1 else None


def detect(path: Path) -> bool:
    return find_npz(path) is not None


@dataclass
class PointmapFile:
    """Validated contents of a pointmap .npz."""

    pts3d: np.ndarray  # V x H x W x 3 float64 world points
    conf: np.ndarray  # V x H x W float64
    images: np.ndarray | None  # V x H x W x 3 uint8
    image_paths: list[Path] | None
    K: np.ndarray | None  # V x 3 x 3
    world_from_cam: np.ndarray | None  # V x 4 x 4


def read_pointmap_file(path: Path) -> PointmapFile:
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    if "pts3d" not in arrays:
        raise ValueError(f"{path}: no pts3d array")
    pts3d = arrays["pts3d"].astype(np.float64)
    if pts3d.ndim != 4 or pts3d.shape[-1] != 3:
        raise ValueError(f"{path}: pts3d must be V x H x W x 3, got shape {pts3d.shape}")
    count, height, width = pts3d.shape[:3]
    conf = arrays.get("conf", np.ones(pts3d.shape[:3])).astype(np.float64)
    if conf.shape != pts3d.shape[:3]:
        raise ValueError(f"{path}: conf must be {count} x {height} x {width}, got shape {conf.shape}")
    images = arrays.get("images")
    if images is not None:
        if images.shape[:1] != (count,) or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{path}: images must be {count} x H x W x 3, got shape {images.shape}")
        if images.dtype != np.uint8:
            images = np.clip(np.round(images.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    image_paths = None
    if "image_paths" in arrays:
        image_paths = [path.parent / str(p) for p in arrays["image_paths"].reshape(-1)]
        if len(image_paths) != count:
            raise ValueError(f"{path}: {len(image_paths)} image_paths for {count} pointmaps")
    if images is None and image_paths is None:
        raise ValueError(f"{path}: needs an images array or image_paths")
    K = arrays.get("K")
    if K is not None:
        K = (
            np.broadcast_to(K.astype(np.float64), (count, 3, 3)).copy()
            if K.shape in ((3, 3), (count, 3, 3))
            else None
        )
        if K is None:
            raise ValueError(f"{path}: K must be 3x3 or {count} x 3 x 3, got shape {arrays['K'].shape}")
    world_from_cam = arrays.get("world_from_cam")
    if world_from_cam is not None and world_from_cam.shape != (count, 4, 4):
        raise ValueError(f"{path}: world_from_cam must be {count} x 4 x 4, got shape {world_from_cam.shape}")
    return PointmapFile(
        pts3d,
        conf,
        images,
        image_paths,
        K,
        None if world_from_cam is None else world_from_cam.astype(np.float64),
    )


def _dlt(points: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """3x4 projection matrix fitting Nx3 world points to Nx2 pixels (Hartley-normalised DLT)."""

    def similarity(x: np.ndarray) -> np.ndarray:
        centre = x.mean(axis=0)
        scale = np.sqrt(x.shape[1]) / max(np.linalg.norm(x - centre, axis=1).mean(), 1e-12)
        transform = np.eye(x.shape[1] + 1) * scale
        transform[:-1, -1] = -scale * centre
        transform[-1, -1] = 1.0
        return transform

    T_world, T_image = similarity(points), similarity(pixels)
    X = np.c_[points, np.ones(len(points))] @ T_world.T
    x = np.c_[pixels, np.ones(len(pixels))] @ T_image.T
    zeros = np.zeros_like(X)
    rows_u = np.hstack([X, zeros, -x[:, :1] * X])
    rows_v = np.hstack([zeros, X, -x[:, 1:2] * X])
    _, _, vt = np.linalg.svd(np.vstack([rows_u, rows_v]), full_matrices=False)
    normalised = vt[-1].reshape(3, 4)
    return np.linalg.inv(T_image) @ normalised @ T_world


def recover_camera(
    pts3d: np.ndarray, valid: np.ndarray, K: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 K, 4x4 world_from_cam) that best project one HxWx3 pointmap onto its own pixel grid.

    ``valid`` (HxW bool) selects the pixels to trust. Raises ValueError when too few are valid.
    """
    ys, xs = np.nonzero(valid)
    if len(xs) < MIN_POINTS:
        raise ValueError(f"only {len(xs)} valid points, need {MIN_POINTS} to recover a camera")
    step = max(1, len(xs) // MAX_FIT_POINTS)
    pixels = np.stack([xs[::step], ys[::step]], axis=1).astype(np.float64)
    points = pts3d[ys[::step], xs[::step]]
    rvec = tvec = None
    if K is None:
        K_dlt, world_from_cam = projection_to_K_world_from_cam(_dlt(points, pixels))
        K = np.array([[K_dlt[0, 0], 0.0, K_dlt[0, 2]], [0.0, K_dlt[1, 1], K_dlt[1, 2]], [0.0, 0.0, 1.0]])
        cam_from_world = invert_rigid(world_from_cam)
        rvec, tvec = cv2.Rodrigues(cam_from_world[:3, :3])[0], cam_from_world[:3, 3].reshape(3, 1)
    ok, rvec, tvec = cv2.solvePnP(
        points,
        pixels,
        K,
        None,
        rvec=rvec,
        tvec=tvec,
        useExtrinsicGuess=rvec is not None,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise ValueError("solvePnP found no pose")
    cam_from_world = np.eye(4)
    cam_from_world[:3, :3] = cv2.Rodrigues(rvec)[0]
    cam_from_world[:3, 3] = tvec.reshape(3)
    return K, invert_rigid(cam_from_world)


def _write_images(images: np.ndarray, npz: Path, folder: Path) -> list[Path]:
    """PNG files of an images array (rewritten only when the .npz changed)."""
    stat = npz.stat()
    stamp = {"npz": str(npz.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    paths = [folder / f"{index:06d}.png" for index in range(len(images))]
    stamp_path = folder / "source.json"
    if (
        stamp_path.is_file()
        and json.loads(stamp_path.read_text()) == stamp
        and all(p.is_file() for p in paths)
    ):
        return paths
    for path, image in zip(paths, tqdm(images, desc="writing images", unit="img", leave=False), strict=True):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        atomic_write_bytes(path, buffer.getvalue())
    atomic_write_bytes(stamp_path, json.dumps(stamp).encode())
    return paths


def _to_image_size(
    K: np.ndarray, depth: np.ndarray, confidence: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K, depth and confidence of a pointmap grid carried over to an image of ``size`` (width, height)."""
    height, width = depth.shape
    if (width, height) == size:
        return K, depth, confidence
    sx, sy = size[0] / width, size[1] / height
    # pixel centres: x_image = (x_grid + 0.5) * sx - 0.5
    scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    depth, confidence = (cv2.resize(m, size, interpolation=cv2.INTER_NEAREST) for m in (depth, confidence))
    return scale @ K, depth, confidence


def load(path: Path, options: LoadOptions) -> Scene:
    npz = find_npz(path)
    if npz is None:
        if path.is_file() and path.suffix == ".npz":
            raise ValueError(f"{path}: no pts3d array")
        raise FileNotFoundError(f"{path}: no pointmap .npz (with a pts3d array) found")
    data = read_pointmap_file(npz)
    notes = Notes()
    if data.images is not None:
        image_paths = _write_images(data.images, npz, options.cache_dir / "images")
    else:
        image_paths = data.image_paths
    valid_conf = data.conf[np.isfinite(data.conf)]
    top = float(valid_conf.max()) if valid_conf.size and valid_conf.max() > 0 else 1.0
    views = []
    for index in tqdm(range(len(data.pts3d)), desc="pointmap cameras", unit="view", leave=False):
        image_path = image_paths[index]
        try:
            size = probe_image(image_path)
        except ValueError as error:
            notes.warn(f"skipped view {image_path.name}: {error}")
            continue
        pts3d = data.pts3d[index]
        valid = np.all(np.isfinite(pts3d), axis=-1) & (data.conf[index] > 0)
        if data.world_from_cam is not None and data.K is not None:
            K, world_from_cam = data.K[index], data.world_from_cam[index]
        else:
            try:
                K, world_from_cam = recover_camera(pts3d, valid, None if data.K is None else data.K[index])
            except ValueError as error:
                notes.warn(f"skipped view {image_path.name}: {error}")
                continue
        cam_from_world = invert_rigid(world_from_cam)
        with np.errstate(invalid="ignore"):
            z = np.nan_to_num(pts3d) @ cam_from_world[2, :3] + cam_from_world[2, 3]
            valid &= z > 0
        depth = np.where(valid, z, 0.0).astype(np.float32)
        confidence = np.where(valid, np.clip(data.conf[index] / top, 0.0, 1.0), 0.0).astype(np.float32)
        K, depth, confidence = _to_image_size(K, depth, confidence, size)
        camera = make_camera(image_path.name, K, world_from_cam, size, notes)
        if camera is None:
            continue
        views.append(
            View(image_path.name, image_path, *size, camera=camera, depth=depth, depth_confidence=confidence)
        )
    require_views(len(views), path)
    return Scene(path, views, "pointmaps", options.cache_dir, notes=notes.lines)
