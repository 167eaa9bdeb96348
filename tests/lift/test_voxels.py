"""Voxel keys, the sorted-key lookup and the default voxel size."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.lift.synthetic import Plane, look_at_camera, render_depth
from mvsam.lift.voxels import (
    VoxelGrid,
    default_voxel_size,
    lookup,
    lookup_sorted,
    pack_coords,
    unique_keys,
    unpack_keys,
)


def test_keys_round_trip_and_match_integer_coordinates():
    rng = np.random.default_rng(1)
    ijk = rng.integers(-(1 << 20), 1 << 20, size=(1000, 3))
    ijk[0] = [-(1 << 20), -(1 << 20), -(1 << 20)]
    ijk[1] = [(1 << 20) - 1] * 3
    keys = pack_coords(ijk)
    np.testing.assert_array_equal(unpack_keys(keys), ijk)
    assert np.all(keys >= 0)
    # Distinct coordinates give distinct keys, and key order is lexicographic (i, j, k) order.
    assert len(np.unique(keys)) == len(np.unique(ijk, axis=0))
    np.testing.assert_array_equal(np.argsort(keys, kind="stable"), np.lexsort(ijk.T[::-1]))


def test_points_map_to_the_voxel_that_contains_them():
    grid = VoxelGrid(0.25, origin=np.array([1.0, -2.0, 0.5]))
    points = np.array([[1.0, -2.0, 0.5], [1.2499, -1.76, 0.74], [0.99, -2.0, 0.5], [2.1, -3.3, 10.0]])
    np.testing.assert_array_equal(grid.coords(points), [[0, 0, 0], [0, 0, 0], [-1, 0, 0], [4, -6, 38]])
    keys = grid.keys(points)
    assert keys[0] == keys[1] != keys[2]
    np.testing.assert_allclose(grid.centers(keys[:1]), [[1.125, -1.875, 0.625]])
    centers = grid.centers(keys)
    assert np.all(np.abs(centers - points) <= 0.125 + 1e-12)


def test_lookup_finds_rows_and_flags_absent_keys():
    table = np.array([3, 10, 42, 99], dtype=np.int64)
    rows = lookup(table, np.array([42, 3, 5, 100, 99, 0]))
    np.testing.assert_array_equal(rows, [2, 0, -1, -1, 3, -1])
    np.testing.assert_array_equal(lookup(np.zeros(0, dtype=np.int64), np.array([1, 2])), [-1, -1])
    np.testing.assert_array_equal(lookup_sorted(table, np.array([0, 3, 50, 99, 120])), [-1, 0, -1, 3, -1])
    distinct, inverse = unique_keys(np.array([7, 3, 7, 7, 1]))
    np.testing.assert_array_equal(distinct, [1, 3, 7])
    np.testing.assert_array_equal(inverse, [2, 1, 2, 2, 0])


def test_default_voxel_size_is_twice_the_pixel_footprint():
    camera = look_at_camera([0, 0, 4.0], [0, 0, 0], 160, 120, up=(0, 1, 0))
    depth, _ = render_depth(camera, [Plane([0, 0, 0], [0, 0, 1])])
    focal = camera.K[0, 0]
    assert default_voxel_size([camera], [depth]) == pytest.approx(2 * 4.0 / focal, rel=1e-6)
    # At half resolution a pixel spans twice as much.
    half = depth[::2, ::2]
    assert default_voxel_size([camera], [half], factor=1.0) == pytest.approx(2 * 4.0 / focal, rel=1e-2)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="voxel_size"):
        VoxelGrid(0.0)
    with pytest.raises(ValueError, match="origin"):
        VoxelGrid(0.1, origin=np.zeros(2))
    grid = VoxelGrid(1e-6)
    with pytest.raises(ValueError, match="2\\^20"):
        grid.keys(np.array([[5.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN"):
        VoxelGrid(0.1).keys(np.array([[np.nan, 0.0, 0.0]]))
    camera = look_at_camera([0, 0, 4.0], [0, 0, 0], 16, 12, up=(0, 1, 0))
    with pytest.raises(ValueError, match="no view has any known depth"):
        default_voxel_size([camera], [np.zeros((12, 16), dtype=np.float32)])
    with pytest.raises(ValueError, match="one depth map per camera"):
        default_voxel_size([camera], [])
