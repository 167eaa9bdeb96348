"""Per-voxel votes of many views' masks: how often each voxel was seen, and seen inside the mask.

Views with depth vote exactly: each known depth pixel is unprojected to the voxel of the surface it sees, so
a view votes only for the voxels it sees (occluded ones get no vote) and needs no depth tolerance. Each view
gives every voxel it sees ``weight`` of ``seen`` and ``weight`` x (share of that voxel's pixels inside the
mask) of ``inside``, so a voxel on the mask boundary gets a fractional vote.
Views without depth see the voxels already known, z-buffered by :func:`~mvsam.lift.project.splat_points`.

Finding a view's voxels is most of the cost, and a view's depth does not change while its masks do, so an
iterative segmenter calls :meth:`VoxelVotes.locate` once per view and then :meth:`~VoxelVotes.vote` and
:meth:`~VoxelVotes.footprint` every round. A located view remembers its rows in the table (valid while the
table's key array is the same object: inserting keys replaces it, never edits it) and its pixel count per
voxel, so a round of votes searches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mvsam.lift.project import check_depth, splat_points, unproject_pixels
from mvsam.lift.voxels import VoxelGrid, lookup_sorted, unique_keys
from mvsam.scene import Camera


def _mask_values(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """HxW float64 in [0, 1] from a bool mask or a soft float mask of the given shape."""
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} differs from the view's raster {shape}; resize it first")
    if mask.dtype == bool:
        return mask.astype(np.float64)
    if not np.issubdtype(mask.dtype, np.floating):
        raise ValueError(f"mask must be bool or float in [0, 1], got dtype {mask.dtype}")
    if not (np.all(np.isfinite(mask)) and mask.min() >= 0 and mask.max() <= 1):
        raise ValueError("a float mask must hold values in [0, 1]")
    return mask.astype(np.float64)


@dataclass
class ViewVoxels:
    """Which voxel each pixel of one view sees.

    ``hit``: HxW bool, the pixels that see a voxel. ``keys``: U sorted unique int64 voxel keys.
    ``inverse``: N int64, for each hit pixel in row-major order, its voxel's position in ``keys``.
    """

    hit: np.ndarray
    keys: np.ndarray
    inverse: np.ndarray
    # (the table's key array, U rows of this view's keys in it, -1 absent): see VoxelVotes.rows
    _rows: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.hit.shape

    @cached_property
    def pixel_counts(self) -> np.ndarray:
        """U int64: how many of the view's pixels see each of its voxels."""
        return np.bincount(self.inverse, minlength=len(self.keys))


@dataclass
class VoxelVotes:
    """Vote counts of the voxels seen so far, in a sorted-key table.

    ``keys``: V int64 sorted voxel keys of ``grid``; ``seen``, ``inside``: V float64 weighted counts.
    """

    grid: VoxelGrid
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inside: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.keys)

    def locate(
        self,
        camera: Camera,
        depth: np.ndarray | None,
        width: int | None = None,
        height: int | None = None,
        splat_radius: int = 1,
    ) -> ViewVoxels:
        """The voxels a view sees, at the raster of its HxW float depth map.

        With depth, each known pixel sees the voxel holding its unprojected depth (the raster is the depth
        map's; ``width``/``height``, if given, must match it). With ``depth=None``, the voxels known now are
        z-buffer splatted into a ``width x height`` raster with ``splat_radius``.
        """
        if depth is None:
            if width is None or height is None:
                raise ValueError("a view without depth needs width and height")
            splat = splat_points(camera, self.centers(), width, height, splat_radius)
            hit = splat.index >= 0
            rows, inverse = unique_keys(splat.index[hit])
            return ViewVoxels(hit=hit, keys=self.keys[rows], inverse=inverse)
        depth = check_depth(depth)
        if (width, height) not in ((None, None), (depth.shape[1], depth.shape[0])):
            raise ValueError(
                f"width x height {width}x{height} differs from the depth map {depth.shape[::-1]}"
            )
        hit = np.isfinite(depth) & (depth > 0)
        keys, inverse = unique_keys(self.grid.keys(unproject_pixels(camera, depth, hit)))
        return ViewVoxels(hit=hit, keys=keys, inverse=inverse)

    @staticmethod
    def shares(view: ViewVoxels, mask: np.ndarray) -> np.ndarray:
        """U float64: for each of a located view's voxels, the share of its pixels inside the mask (HxW
        bool, or float in [0, 1], at the view's raster): what :meth:`vote` adds per unit of weight."""
        values = _mask_values(mask, view.shape)[view.hit]
        inside = np.bincount(view.inverse, weights=values, minlength=len(view.keys))
        return inside / np.maximum(view.pixel_counts, 1)

    def vote(
        self, view: ViewVoxels, mask: np.ndarray, weight: float = 1.0, share: np.ndarray | None = None
    ) -> None:
        """Vote with a located view's mask: HxW bool, or float in [0, 1], at the view's raster.

        ``share``: the mask's :meth:`shares`, when the caller kept them from an earlier round.
        """
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"weight must be a non-negative number, got {weight}")
        if share is None:
            share = self.shares(view, mask)
        voxels = self.rows(view)
        if np.any(voxels < 0):
            voxels = self._insert(view.keys)
        self.seen[voxels] += weight
        self.inside[voxels] += weight * share

    def footprint(self, view: ViewVoxels) -> np.ndarray:
        """HxW float32: the probability of the voxel each pixel sees; NaN where the pixel sees no voxel
        or its voxel was never seen by a vote."""
        rows = self.rows(view)
        per_voxel = np.full(len(rows), np.nan, dtype=np.float32)
        found = rows >= 0
        seen, inside = self.seen[rows[found]], self.inside[rows[found]]
        with np.errstate(divide="ignore", invalid="ignore"):
            per_voxel[found] = np.where(seen > 0, inside / seen, np.nan)  # only this view's voxels
        footprint = np.full(view.shape, np.nan, dtype=np.float32)
        footprint[view.hit] = per_voxel[view.inverse]
        return footprint

    def add_view(
        self,
        camera: Camera,
        depth: np.ndarray | None,
        mask: np.ndarray,
        weight: float = 1.0,
        splat_radius: int = 1,
    ) -> None:
        """Locate a view and vote with its mask (HxW bool or float in [0, 1]) at the raster of its depth.

        With ``depth=None`` the view sees the voxels already in the table, rendered at the mask's size with
        ``splat_radius``; it adds no voxels.
        """
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"mask must be an HxW array, got shape {mask.shape}")
        height, width = mask.shape
        if depth is not None:
            depth = check_depth(depth)
            height, width = depth.shape
        self.vote(self.locate(camera, depth, width, height, splat_radius), mask, weight)

    def project_to_view(
        self,
        camera: Camera,
        depth: np.ndarray | None,
        width: int | None = None,
        height: int | None = None,
        splat_radius: int = 1,
    ) -> np.ndarray:
        """HxW float32 footprint of the votes in a view; see :meth:`locate` and :meth:`footprint`."""
        return self.footprint(self.locate(camera, depth, width, height, splat_radius))

    def rows(self, view: ViewVoxels) -> np.ndarray:
        """U int64 rows of a located view's voxels in the table (-1 where absent), searched once per table."""
        cached = view._rows
        if cached is not None and cached[0] is self.keys:
            return cached[1]
        rows = lookup_sorted(self.keys, view.keys)
        view._rows = (self.keys, rows)
        return rows

    def copy(self) -> VoxelVotes:
        """An independent copy of the counts that shares the key array (replaced, never edited, on insert),
        so located views keep their remembered rows."""
        return VoxelVotes(self.grid, self.keys, self.seen.copy(), self.inside.copy())

    def _insert(self, keys: np.ndarray) -> np.ndarray:
        """Table rows of U sorted unique int64 keys, adding absent ones with counts 0."""
        rows = lookup_sorted(self.keys, keys)
        missing = rows < 0
        if np.any(missing):
            at = np.searchsorted(self.keys, keys[missing])
            self.keys = np.insert(self.keys, at, keys[missing])
            self.seen = np.insert(self.seen, at, 0.0)
            self.inside = np.insert(self.inside, at, 0.0)
            rows = np.searchsorted(self.keys, keys)
        return rows

    def clear(self) -> None:
        """Zero every count but keep the voxel table, so the next round of votes inserts nothing."""
        self.seen[:] = 0.0
        self.inside[:] = 0.0

    def probability(self, unseen: float = 0.0) -> np.ndarray:
        """V float64 share of a voxel's (weighted) sightings inside the masks; ``unseen`` if never seen."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.seen > 0, self.inside / self.seen, unseen)

    def centers(self) -> np.ndarray:
        """Vx3 float64 world centres of the voxels in the table."""
        return self.grid.centers(self.keys)
