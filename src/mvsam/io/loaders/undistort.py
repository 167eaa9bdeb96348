"""Undistortion into the cache, so every Camera downstream is a plain pinhole (``distortion`` None).

Geometry, projection and SAM all assume undistorted images, so loaders of formats that carry lens
distortion (COLMAP, nerfstudio) write undistorted copies under ``<cache_dir>/undistorted/`` with the same K
and point their views there. Copies are keyed by the source file's identity and the camera parameters.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mvsam.cache import atomic_write_bytes, hash_bytes


def has_distortion(distortion: np.ndarray | None) -> bool:
    return distortion is not None and bool(np.any(np.asarray(distortion) != 0))


def undistorted_image(path: Path, K: np.ndarray, distortion: np.ndarray, cache_dir: Path) -> Path:
    """Path of an undistorted copy of ``path`` (made once): same size, same 3x3 K, OpenCV ``distortion``.

    JPEG sources stay JPEG (quality 95); anything else is written as lossless PNG.
    """
    stat = path.stat()
    key = hash_bytes(
        str(path.resolve()),
        str(stat.st_size),
        str(stat.st_mtime_ns),
        np.asarray(K, np.float64).tobytes(),
        np.asarray(distortion, np.float64).tobytes(),
    )[:12]
    suffix = ".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png"
    out = cache_dir / "undistorted" / f"{path.stem}_{key}{suffix}"
    if out.is_file():
        return out
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    undistorted = cv2.undistort(image, K, np.asarray(distortion, np.float64))
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix == ".jpg" else []
    ok, encoded = cv2.imencode(suffix, undistorted, params)
    if not ok:
        raise ValueError(f"cannot encode the undistorted copy of {path}")
    atomic_write_bytes(out, encoded.tobytes())
    return out


def undistort_points(xy: np.ndarray, K: np.ndarray, distortion: np.ndarray) -> np.ndarray:
    """Nx2 (x, y) pixels of the distorted image -> Nx2 pixels of the undistorted one (same K)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 1, 2)
    if len(xy) == 0:
        return xy.reshape(0, 2)
    return cv2.undistortPoints(xy, K, np.asarray(distortion, np.float64), P=K).reshape(-1, 2)
