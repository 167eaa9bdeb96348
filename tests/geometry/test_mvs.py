"""Plane-sweep MVS: exact depth on a synthetic plane, mask transfer on real DTU views, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.geometry.metrics import masked_iou, warp_mask
from mvsam.geometry.mvs import (
    MvsSettings,
    compute_mvs_depth,
    depth_range,
    load_working_view,
    plane_sweep,
    select_neighbors,
    upsample_depth,
)
from mvsam.io.images import read_mask_png
from mvsam.io.loaders import load_scene
from mvsam.scene import Scene

FAST = MvsSettings(num_planes=48, num_neighbors=3, best_k=2, min_consistent=2)


def test_plane_sweep_recovers_plane_depth(plane_scene):
    settings = MvsSettings(num_planes=64)
    views = [load_working_view(v.load_image(), v.camera, settings.resolution) for v in plane_scene.views]
    depth, cost = plane_sweep(views[0], views[1:], 2.0, 12.0, settings)
    valid = depth > 0
    assert valid.mean() > 0.8
    assert np.median(np.abs(depth[valid] - 5.0)) < 0.05  # 1% of the depth, planes are ~2.5% apart here
    assert np.median(cost[valid]) < 0.2


def test_compute_mvs_depth_consistent_on_plane(plane_scene):
    results = compute_mvs_depth(plane_scene, FAST, progress=False)
    for result in results:
        valid = result.depth > 0
        assert valid.mean() > 0.6
        assert np.percentile(np.abs(result.depth[valid] - 5.0), 95) < 0.1
        assert 0 < result.confidence[valid].min() and result.confidence.max() <= 1.0
        assert np.all(result.confidence[~valid] == 0)
        assert len(result.neighbors) == 3


def test_dtu_mask_transfer_through_depth(data_dir, tmp_path):
    root = data_dir / "dtu_scan24"
    full = load_scene(root, cache_dir=tmp_path)
    views = [full.views[i] for i in (21, 22, 23, 24)]
    scene = Scene(root=root, views=views, source_format="neus", cache_dir=tmp_path)
    settings = MvsSettings(resolution=320, num_planes=64, num_neighbors=3)
    results = compute_mvs_depth(scene, settings, progress=False)
    masks = [read_mask_png(root / "mask" / f"{int(v.stem):03d}.png") for v in views]
    ious, shares = [], []
    for target in (1, 2):
        view = views[target]
        depth, confidence = upsample_depth(
            results[target].depth, results[target].confidence, view.width, view.height
        )
        assert depth.shape == (view.height, view.width) and depth.dtype == np.float32
        assert np.all(confidence[depth == 0] == 0)
        shares.append(np.mean(depth > 0))
        for source in (target - 1, target + 1):
            warped, valid = warp_mask(masks[source], views[source].camera, view.camera, depth)
            ious.append(masked_iou(warped, masks[target], valid))
    assert min(shares) > 0.2
    assert np.mean(ious) > 0.9, ious


def test_upsample_keeps_edges_and_holes():
    depth = np.array([[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]], np.float32)
    confidence = np.where(depth > 0, 0.5, 0.0).astype(np.float32)
    up, up_confidence = upsample_depth(depth, confidence, 16, 12)
    assert up.shape == (12, 16)
    values = np.unique(up)
    assert set(np.round(values, 5)) <= {0.0, 1.0, 2.0}  # no blend across the 1 | 2 step or into holes
    assert np.all(up[-4:, :8] == 0) and np.all(up_confidence[up == 0] == 0)


def test_select_neighbors_and_range(plane_scene):
    neighbors = select_neighbors(plane_scene, 0, 2)
    assert len(neighbors) == 2 and 0 not in neighbors
    assert depth_range(plane_scene, 0, neighbors) == (2.0, 12.0)
    for view in plane_scene.views:
        view.depth_range = None
    with pytest.raises(ValueError, match="cannot bound the depth"):
        depth_range(plane_scene, 0, neighbors)  # parallel optical axes, no sparse points


@pytest.mark.parametrize(
    "overrides",
    [
        {"window": 4},
        {"best_k": 5},
        {"num_planes": 2},
        {"resolution": 8},
        {"min_consistent": 9},
        {"cost_smoothing": 2},
    ],
)
def test_bad_settings(plane_scene, overrides):
    with pytest.raises(ValueError, match="MvsSettings"):
        compute_mvs_depth(plane_scene, MvsSettings(**overrides), progress=False)


def test_needs_two_posed_views(plane_scene):
    for view in plane_scene.views[1:]:
        view.camera = None
    with pytest.raises(ValueError, match="at least 2 views with cameras"):
        compute_mvs_depth(plane_scene, FAST, progress=False)


def test_parallel_views_give_the_same_depth_as_one_at_a_time(plane_scene):
    settings = MvsSettings(resolution=160, num_planes=24, num_neighbors=2, min_consistent=1)
    alone = compute_mvs_depth(plane_scene, settings, progress=False, workers=1)
    threaded = compute_mvs_depth(plane_scene, settings, progress=False, workers=3)
    for one, other in zip(alone, threaded, strict=True):
        np.testing.assert_array_equal(one.depth, other.depth)
        np.testing.assert_array_equal(one.confidence, other.confidence)
        assert one.neighbors == other.neighbors
