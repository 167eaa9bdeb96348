"""Metrics on tiny hand-made masks with hand-computed answers, and consistency on a synthetic scene."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.evaluate.metrics import (
    boundary_f,
    boundary_map,
    boundary_tolerance,
    davis_j_and_f,
    f1,
    iou,
    multiview_consistency,
    pixel_accuracy,
    pos_iou,
    precision,
    recall,
    suc_iou,
)
from mvsam.lift.synthetic import Box, look_at_camera, render_depth


def _mask(shape, *boxes):
    """A bool mask with the given (row0, row1, col0, col1) half-open boxes set."""
    mask = np.zeros(shape, dtype=bool)
    for r0, r1, c0, c1 in boxes:
        mask[r0:r1, c0:c1] = True
    return mask


def test_region_scores_by_hand():
    pred = _mask((4, 4), (0, 2, 0, 2))  # 4 pixels
    gt = _mask((4, 4), (0, 3, 1, 3))  # 6 pixels
    # Shared: (0,1), (1,1) -> 2. Union: 4 + 6 - 2 = 8.
    assert iou(pred, gt) == pytest.approx(2 / 8)
    assert precision(pred, gt) == pytest.approx(2 / 4)
    assert recall(pred, gt) == pytest.approx(2 / 6)
    assert f1(pred, gt) == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))  # = 0.4
    assert f1(pred, gt) == pytest.approx(0.4)
    # Wrong: 2 predicted-only + 4 missed = 6 of 16.
    assert pixel_accuracy(pred, gt) == pytest.approx(10 / 16)
    # Integer masks (non-zero = foreground) score the same.
    assert iou(pred.astype(np.uint8) * 255, gt.astype(np.int32)) == pytest.approx(0.25)


def test_empty_mask_conventions():
    empty, full = np.zeros((3, 3), bool), np.ones((3, 3), bool)
    assert iou(empty, empty) == 1.0 and f1(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert precision(empty, full) == 1.0 and recall(empty, full) == 0.0 and f1(empty, full) == 0.0
    assert precision(full, empty) == 0.0 and recall(full, empty) == 1.0 and iou(full, empty) == 0.0
    assert pixel_accuracy(full, empty) == 0.0


def test_boundary_tolerance_follows_davis():
    assert boundary_tolerance(480, 854) == 8  # ceil(0.008 * 979.7)
    assert boundary_tolerance(1200, 1600) == 16  # ceil(0.008 * 2000)


def test_boundary_map_is_the_inner_outline():
    mask = _mask((10, 10), (2, 7, 2, 7))
    outline = boundary_map(mask)
    assert outline.sum() == 16  # perimeter of a 5x5 square
    assert not outline[3:6, 3:6].any()
    # The image edge is no boundary: a full mask has none.
    assert not boundary_map(np.ones((5, 5), bool)).any()


def test_boundary_f_by_hand():
    gt = _mask((10, 10), (2, 7, 2, 7))
    pred = _mask((10, 10), (2, 7, 4, 9))  # shifted right by 2
    # Exact matches: rows 2 and 6 at columns 4..6 -> 6 of the 16 outline pixels each way.
    assert boundary_f(pred, gt, tolerance_px=0) == pytest.approx(6 / 16)
    assert boundary_f(pred, gt, tolerance_px=2) == 1.0
    assert boundary_f(gt, gt, tolerance_px=0) == 1.0
    assert boundary_f(np.zeros_like(gt), gt) == 0.0
    assert boundary_f(gt, np.zeros_like(gt)) == 0.0


def test_davis_j_and_f_averages_frames():
    gt = _mask((10, 10), (2, 7, 2, 7))
    shifted = _mask((10, 10), (2, 7, 4, 9))
    score = davis_j_and_f([gt, shifted], [gt, gt])
    # Frame 2: J = 15 / 35; F at the default tolerance ceil(0.008 * 14.1) = 1 px.
    f_shifted = boundary_f(shifted, gt, tolerance_px=1)
    assert 6 / 16 < f_shifted < 1
    np.testing.assert_allclose(score.frame_j, [1.0, 15 / 35])
    np.testing.assert_allclose(score.frame_f, [1.0, f_shifted])
    assert score.j == pytest.approx((1 + 15 / 35) / 2)
    assert score.jf == pytest.approx((score.j + score.f) / 2)


def test_pos_and_suc_iou():
    empty = np.zeros((4, 4), bool)
    gt = _mask((4, 4), (0, 2, 0, 2))
    half = _mask((4, 4), (0, 2, 0, 1))  # IoU 0.5 with gt
    preds, gts = [empty, half, gt, gt], [empty, gt, gt, empty]  # IoU: 1 (absent), 0.5, 1, 0
    assert pos_iou(preds, gts) == pytest.approx(0.75)  # frames 2 and 3 only
    assert suc_iou(preds, gts) == pytest.approx(2 / 4)  # 0.5 is not above 0.5
    assert suc_iou(preds, gts, threshold=0.4) == pytest.approx(3 / 4)
    assert np.isnan(pos_iou([empty], [empty]))


def test_metrics_refuse_bad_input():
    mask = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="shape"):
        iou(mask, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="dtype"):
        iou(mask, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="HxW"):
        recall(mask[None], mask[None])
    with pytest.raises(ValueError, match="tolerance"):
        boundary_f(mask, mask, tolerance_px=-1)
    with pytest.raises(ValueError, match="frames"):
        davis_j_and_f([mask], [])
    with pytest.raises(ValueError, match="no frames"):
        pos_iou([], [])
    with pytest.raises(ValueError, match="threshold"):
        suc_iou([mask], [mask], threshold=1.5)


SHAPES = [Box([-1.5, -1.5, -0.1], [1.5, 1.5, 0.0]), Box([-0.4, -0.4, 0.0], [0.4, 0.4, 0.8])]


@pytest.fixture(scope="module")
def three_views():
    cameras, depths, ids = [], [], []
    for angle in np.radians([0, 40, 80]):
        camera = look_at_camera([3 * np.cos(angle), 3 * np.sin(angle), 2.0], [0, 0, 0.3], 120, 90)
        depth, shape_ids = render_depth(camera, SHAPES)
        cameras.append(camera)
        depths.append(depth)
        ids.append(shape_ids)
    return cameras, depths, ids


def test_consistency_of_true_masks_is_near_one(three_views):
    cameras, depths, ids = three_views
    result = multiview_consistency(cameras, depths, [i == 1 for i in ids])
    assert len(result.pairs) == 6 and np.all(result.pair_counts > 1000)
    assert result.score > 0.99
    # A constant labelling is perfectly consistent (and useless).
    constant = multiview_consistency(cameras, depths, [np.zeros_like(i, dtype=bool) for i in ids])
    assert constant.score == 1.0


def test_consistency_drops_where_one_view_disagrees(three_views):
    cameras, depths, ids = three_views
    masks = [i == 1 for i in ids]
    masks[1] = ~masks[1]  # view 1 labels everything the other way round
    result = multiview_consistency(cameras, depths, masks, pairs=[(0, 1), (1, 2), (0, 2)])
    assert result.pair_scores[0] < 0.01 and result.pair_scores[1] < 0.01
    assert result.pair_scores[2] > 0.99
    assert result.score == pytest.approx(result.pair_scores.mean())


def test_consistency_of_instance_ids_needs_the_same_global_id(three_views):
    cameras, depths, ids = three_views
    labels = [(i + 1).astype(np.int32) for i in ids]  # 0 = background, 1 = floor, 2 = cube
    assert multiview_consistency(cameras, depths, labels, stride=2).score > 0.99
    renamed = [label.copy() for label in labels]
    renamed[1][labels[1] == 2] = 7  # the cube gets a different ID in view 1
    result = multiview_consistency(cameras, depths, renamed, pairs=[(0, 1)], stride=2)
    # Agreement drops by the share of shared pixels that are the cube in view 0.
    points_on_cube = np.count_nonzero(ids[0] == 1) / np.count_nonzero(depths[0] > 0)
    assert result.pair_scores[0] < 1 - 0.5 * points_on_cube


def test_consistency_refuses_bad_input(three_views):
    cameras, depths, ids = three_views
    masks = [i == 1 for i in ids]
    with pytest.raises(ValueError, match="cameras"):
        multiview_consistency(cameras, depths[:2], masks)
    with pytest.raises(ValueError, match="two views"):
        multiview_consistency(cameras[:1], depths[:1], masks[:1])
    with pytest.raises(ValueError, match="pair"):
        multiview_consistency(cameras, depths, masks, pairs=[(0, 0)])
    with pytest.raises(ValueError, match="dtype"):
        multiview_consistency(cameras, depths, [m.astype(np.float32) for m in masks])
    with pytest.raises(ValueError, match="shape"):
        multiview_consistency(cameras, depths, [m[::2] for m in masks])


def test_consistency_of_the_demo_scene_ground_truth(tmp_path):
    from mvsam.demo.run import ground_truth_instances, load_demo_scene

    scene = load_demo_scene(tmp_path)
    cameras = [view.camera for view in scene.views]
    depths = [view.depth for view in scene.views]
    instances = [ground_truth_instances(index) for index in range(len(scene))]
    exact = multiview_consistency(cameras, depths, instances, stride=4)
    assert exact.score > 0.995 and np.all(exact.pair_counts > 1000)
    swapped = [instance.copy() for instance in instances]
    swapped[3][instances[3] == 1], swapped[3][instances[3] == 2] = 2, 1  # two objects trade IDs in view 3
    assert multiview_consistency(cameras, depths, swapped, stride=4).score < exact.score - 0.01
