"""Analytic scenes with exact depth: look-at cameras and ray-cast planes, spheres and boxes.

They give geometry code known answers to be tested against (a unprojected depth pixel lies exactly on the
surface it came from) and need no data files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mvsam.scene import Camera


def look_at(
    eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """4x4 float64 ``world_from_cam`` of a camera at ``eye`` looking at ``target`` (OpenCV axes, y down)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    if np.linalg.norm(forward) == 0:
        raise ValueError("eye and target coincide")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("the viewing direction is parallel to up; pass another up vector")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    world_from_cam = np.eye(4)
    world_from_cam[:3, :3] = np.stack([right, down, forward], axis=1)
    world_from_cam[:3, 3] = eye
    return world_from_cam


def look_at_camera(
    eye: Sequence[float],
    target: Sequence[float],
    width: int,
    height: int,
    fov_x_deg: float = 60.0,
    up: Sequence[float] = (0.0, 0.0, 1.0),
) -> Camera:
    """A pinhole camera with square pixels, the principal point at the image centre, looking at target."""
    focal = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return Camera(K=K, world_from_cam=look_at(eye, target, up), width=width, height=height)


@dataclass
class Plane:
    """The infinite plane through ``point`` with normal ``normal``."""

    point: Sequence[float]
    normal: Sequence[float]

    def intersect(self, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """N ray parameters t > 0 of the hits of rays origin + t * direction (Nx3); inf on a miss."""
        normal = np.asarray(self.normal, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (normal @ (np.asarray(self.point, dtype=np.float64) - origin)) / (directions @ normal)
        return np.where(np.isfinite(t) & (t > 0), t, np.inf)


@dataclass
class Sphere:
    center: Sequence[float]
    radius: float

    def intersect(self, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """N ray parameters t > 0 of the nearest hits (Nx3 directions); inf on a miss."""
        offset = origin - np.asarray(self.center, dtype=np.float64)
        a = np.einsum("ij,ij->i", directions, directions)
        b = 2 * directions @ offset
        c = offset @ offset - self.radius**2
        disc = b**2 - 4 * a * c
        root = np.sqrt(np.maximum(disc, 0))
        near, far = (-b - root) / (2 * a), (-b + root) / (2 * a)
        t = np.where(near > 0, near, far)
        return np.where((disc >= 0) & (t > 0), t, np.inf)


@dataclass
class Box:
    """The axis-aligned box [lo, hi] (each a 3-vector)."""

    lo: Sequence[float]
    hi: Sequence[float]

    def intersect(self, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """N ray parameters t > 0 of the nearest hits (Nx3 directions, slab method); inf on a miss."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (np.asarray(self.lo, dtype=np.float64) - origin) / directions
            t2 = (np.asarray(self.hi, dtype=np.float64) - origin) / directions
        t_near = np.nanmax(np.fmin(t1, t2), axis=1)
        t_far = np.nanmin(np.fmax(t1, t2), axis=1)
        t = np.where(t_near > 0, t_near, t_far)
        return np.where((t_near <= t_far) & (t > 0), t, np.inf)


def render_depth(camera: Camera, shapes: Sequence[Plane | Sphere | Box]) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast shapes into the camera's raster.

    Returns (HxW float32 depth, camera z, 0 where no shape is hit; HxW int32 index of the visible shape,
    -1 where none). Rays are scaled to camera z = 1, so the ray parameter of a hit is its depth.
    """
    rows, cols = np.indices((camera.height, camera.width))
    pixels = np.stack([cols.reshape(-1), rows.reshape(-1), np.ones(cols.size)], axis=1)
    rays_cam = np.einsum("ij,nj->ni", np.linalg.inv(camera.K), pixels)
    rays_cam /= rays_cam[:, 2:3]
    directions = np.einsum("ij,nj->ni", camera.world_from_cam[:3, :3], rays_cam)
    origin = camera.center
    hits = np.stack([shape.intersect(origin, directions) for shape in shapes], axis=1)
    nearest = np.argmin(hits, axis=1)
    depth = hits[np.arange(len(hits)), nearest]
    ids = np.where(np.isfinite(depth), nearest, -1).astype(np.int32)
    depth = np.where(np.isfinite(depth), depth, 0).astype(np.float32)
    return depth.reshape(camera.height, camera.width), ids.reshape(camera.height, camera.width)
