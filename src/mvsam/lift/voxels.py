"""A sparse voxel hash: world points to int64 keys, and a sorted-key table for fast lookups.

Keys pack the integer voxel coordinates (i, j, k), each in [-2^20, 2^20), into one int64, so sets of voxels
are plain sorted int64 arrays: building one is an ``np.unique`` and looking millions of points up is an
``np.searchsorted``, with no Python dict in the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mvsam.lift.project import check_depth, check_points, resize_camera
from mvsam.scene import Camera

_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_FIELD = (1 << _BITS) - 1


@dataclass(frozen=True)
class VoxelGrid:
    """A regular grid of cubes of side ``voxel_size`` (world units) with a corner at ``origin``.

    Voxel (i, j, k) covers origin + [i, i+1) x [j, j+1) x [k, k+1) times voxel_size; its key is an int64.
    Coordinates must lie within 2^20 voxels of the origin (over a million voxels per axis).
    """

    voxel_size: float
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) float64

    def __post_init__(self) -> None:
        if not np.isfinite(self.voxel_size) or self.voxel_size <= 0:
            raise ValueError(f"voxel_size must be a positive number, got {self.voxel_size}")
        origin = np.asarray(self.origin, dtype=np.float64)
        if origin.shape != (3,) or not np.all(np.isfinite(origin)):
            raise ValueError(f"origin must be 3 finite numbers, got {self.origin!r}")
        object.__setattr__(self, "origin", origin)

    def coords(self, points: np.ndarray) -> np.ndarray:
        """Nx3 int64 voxel coordinates (i, j, k) of Nx3 world points."""
        points = check_points(points)
        if not np.all(np.isfinite(points)):
            raise ValueError("points contain NaN or infinity; drop pixels with unknown depth first")
        ijk = np.floor((points - self.origin) / self.voxel_size)
        if len(ijk) and (ijk.min() < -_OFFSET or ijk.max() >= _OFFSET):
            raise ValueError(
                f"points lie over 2^20 voxels from the grid origin; use a larger voxel_size than "
                f"{self.voxel_size} or an origin nearer the scene"
            )
        return ijk.astype(np.int64)

    def keys(self, points: np.ndarray) -> np.ndarray:
        """N int64 keys of the voxels that contain Nx3 world points."""
        return pack_coords(self.coords(points))

    def centers(self, keys: np.ndarray) -> np.ndarray:
        """Nx3 float64 world centres of the voxels with the given N int64 keys."""
        return self.origin + (unpack_keys(keys) + 0.5) * self.voxel_size


def pack_coords(ijk: np.ndarray) -> np.ndarray:
    """Nx3 int64 voxel coordinates, each in [-2^20, 2^20), to N int64 keys (order: i, then j, then k)."""
    ijk = np.asarray(ijk, dtype=np.int64) + _OFFSET
    return (ijk[:, 0] << (2 * _BITS)) | (ijk[:, 1] << _BITS) | ijk[:, 2]


def unpack_keys(keys: np.ndarray) -> np.ndarray:
    """N int64 keys back to Nx3 int64 voxel coordinates."""
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    ijk = np.stack([keys >> (2 * _BITS), (keys >> _BITS) & _FIELD, keys & _FIELD], axis=1)
    return ijk - _OFFSET


def unique_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U sorted unique int64 keys, N int64 index of each input key among them).

    ``np.unique``: ``torch.unique`` is three times faster on one thread but ten times slower with two
    threads on a busy machine.
    """
    unique, inverse = np.unique(np.asarray(keys, dtype=np.int64).reshape(-1), return_inverse=True)
    return unique, inverse.astype(np.int64, copy=False)


def lookup_sorted(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Like :func:`lookup` for ``keys`` that are already sorted and unique (a cache-friendly search)."""
    if len(table) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    rows = np.searchsorted(table, keys)
    rows[rows == len(table)] = 0
    return np.where(table[rows] == keys, rows, -1)


def lookup(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Row of each of N ``keys`` in ``table`` (sorted unique int64), as N int64; -1 where absent.

    The distinct keys are searched once and in order, which keeps the binary search in cache: on a table
    of a million voxels that is several times faster than searching N keys in pixel order.
    """
    table = np.asarray(table, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    if len(table) == 0 or len(keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    distinct, inverse = unique_keys(keys)
    return lookup_sorted(table, distinct)[inverse]


def default_voxel_size(cameras: Sequence[Camera], depths: Sequence[np.ndarray], factor: float = 2.0) -> float:
    """A voxel size matched to the pixels: ``factor`` x the median footprint of one depth pixel.

    One pixel at depth z spans z / f world units (f: focal length in pixels at the depth map's
    resolution); the median over every known depth pixel of every view keeps a few pixels per voxel face.
    """
    if len(cameras) != len(depths) or not cameras:
        raise ValueError(
            f"need one depth map per camera, got {len(cameras)} cameras and {len(depths)} depths"
        )
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    footprints = []
    for camera, depth in zip(cameras, depths, strict=True):
        depth = check_depth(depth)
        scaled = resize_camera(camera, depth.shape[1], depth.shape[0])
        focal = float(np.sqrt(scaled.K[0, 0] * scaled.K[1, 1]))
        known = depth[np.isfinite(depth) & (depth > 0)]
        footprints.append(known[:: max(1, len(known) // 20000)] / focal)  # a subsample keeps this fast
    footprints = np.concatenate(footprints)
    if len(footprints) == 0:
        raise ValueError("no view has any known depth; cannot choose a voxel size")
    return float(factor * np.median(footprints))
