"""3D votes on a synthetic cube on a floor: exact probabilities, footprints in held-out views."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.lift.synthetic import Box, Plane, look_at_camera, render_depth
from mvsam.lift.votes import VoxelVotes
from mvsam.lift.voxels import VoxelGrid, default_voxel_size

CUBE_LO, CUBE_HI = np.array([-0.4, -0.4, 0.0]), np.array([0.4, 0.4, 0.8])
SHAPES = [Box([-1.5, -1.5, -0.1], [1.5, 1.5, 0.0]), Box(CUBE_LO, CUBE_HI)]


def _view(angle_deg: float, height: float = 2.0):
    angle = np.radians(angle_deg)
    camera = look_at_camera([3 * np.cos(angle), 3 * np.sin(angle), height], [0, 0, 0.3], 160, 120)
    depth, ids = render_depth(camera, SHAPES)
    return camera, depth, ids == 1


@pytest.fixture(scope="module")
def cube_votes():
    views = [_view(angle) for angle in (45, 135, 225, 315)]
    size = default_voxel_size([v[0] for v in views], [v[1] for v in views])
    votes = VoxelVotes(VoxelGrid(size))
    for camera, depth, mask in views:
        votes.add_view(camera, depth, mask)
    return votes


def _chebyshev_to_cube(points: np.ndarray) -> np.ndarray:
    return np.max(np.maximum(CUBE_LO - points, 0) + np.maximum(points - CUBE_HI, 0), axis=1)


def test_cube_voxels_are_inside_and_floor_voxels_outside(cube_votes):
    votes = cube_votes
    size = votes.grid.voxel_size
    probability, centers = votes.probability(), votes.centers()
    assert np.all(votes.seen >= 1) and votes.seen.max() <= 4
    on_cube = (_chebyshev_to_cube(centers) < size) & (centers[:, 2] > 2 * size)
    far = _chebyshev_to_cube(centers) > 2 * size
    assert on_cube.sum() > 500 and far.sum() > 5000
    np.testing.assert_array_equal(probability[on_cube], 1.0)
    np.testing.assert_array_equal(probability[far], 0.0)
    # The cube's top is seen by all four views, though an oblique view's pixels skip some of its voxels.
    top = on_cube & (centers[:, 2] > CUBE_HI[2] - size) & (np.abs(centers[:, :2]).max(axis=1) < 0.3)
    assert top.sum() > 50 and votes.seen[top].mean() > 3.0


def test_footprint_in_a_held_out_view(cube_votes):
    camera, depth, mask = _view(80, height=2.5)
    footprint = cube_votes.project_to_view(camera, depth)
    assert footprint.shape == depth.shape and footprint.dtype == np.float32
    known = ~np.isnan(footprint)
    assert np.all(depth[known] > 0)
    assert known[depth > 0].mean() > 0.85  # the rest was never seen by the four voting views
    assert np.mean((footprint[known] > 0.5) == mask[known]) > 0.99
    assert np.mean(footprint[mask & known] > 0.5) > 0.98


def test_footprint_without_depth_splats_voxel_centres(cube_votes):
    camera, depth, mask = _view(170, height=1.5)
    footprint = cube_votes.project_to_view(camera, None, 160, 120, splat_radius=1)
    known = ~np.isnan(footprint)
    assert np.mean(known == (depth > 0)) > 0.95
    assert np.mean((footprint[known] > 0.5) == mask[known]) > 0.95  # splats fatten the silhouette
    assert np.mean(footprint[mask & known] > 0.5) > 0.97


def test_a_view_without_depth_votes_for_known_voxels_only():
    views = [_view(angle) for angle in (0, 120, 240)]
    votes = VoxelVotes(VoxelGrid(0.03))
    for camera, depth, mask in views:
        votes.add_view(camera, depth, mask)
    count, seen = len(votes), votes.seen.copy()
    camera, _, _ = _view(60)
    votes.add_view(camera, None, np.zeros((120, 160), dtype=bool))
    assert len(votes) == count
    voted = votes.seen > seen
    assert voted.sum() > 1000
    np.testing.assert_array_equal(votes.seen[voted], seen[voted] + 1)
    np.testing.assert_array_equal(votes.seen[~voted], seen[~voted])


def test_weights_and_soft_masks_give_exact_shares():
    camera = look_at_camera([0, 0, 3.0], [0, 0, 0], 64, 48, up=(0, 1, 0))
    depth, _ = render_depth(camera, [Plane([0, 0, 0], [0, 0, 1])])
    votes = VoxelVotes(VoxelGrid(0.05))
    votes.add_view(camera, depth, np.ones((48, 64), dtype=bool), weight=3.0)
    votes.add_view(camera, depth, np.zeros((48, 64), dtype=bool), weight=1.0)
    votes.add_view(camera, depth, np.ones((48, 64), dtype=bool), weight=0.0)
    np.testing.assert_allclose(votes.probability(), 0.75)
    np.testing.assert_allclose(votes.seen, 4.0)
    count = len(votes)
    votes.clear()
    assert len(votes) == count and not votes.seen.any() and not votes.inside.any()
    assert np.isnan(votes.project_to_view(camera, depth)).all()  # known voxels, but none seen
    soft = VoxelVotes(VoxelGrid(0.05))
    soft.add_view(camera, depth, np.full((48, 64), 0.5))
    np.testing.assert_allclose(soft.probability(), 0.5)
    np.testing.assert_allclose(soft.project_to_view(camera, depth), 0.5)


def test_a_located_view_is_reused_across_rounds(cube_votes):
    camera, depth, mask = _view(100, height=1.8)
    reference = VoxelVotes(cube_votes.grid)
    reference.add_view(camera, depth, mask)
    reference.add_view(camera, depth, ~mask, weight=0.5)
    votes = VoxelVotes(cube_votes.grid)
    view = votes.locate(camera, depth)
    assert view.hit.sum() == len(view.inverse) and len(view.keys) < len(view.inverse)
    votes.vote(view, mask)
    votes.vote(view, ~mask, weight=0.5)
    np.testing.assert_array_equal(votes.keys, reference.keys)
    np.testing.assert_allclose(votes.inside, reference.inside)
    np.testing.assert_allclose(votes.seen, 1.5)
    footprint = votes.footprint(view)
    # A voxel all inside the mask has (1 + 0.5 * 0) / 1.5 = 2/3, all outside 1/3, mixed ones in between.
    known = depth > 0
    assert np.all((footprint[known] > 1 / 3 - 1e-6) & (footprint[known] < 2 / 3 + 1e-6))
    assert np.mean(np.isclose(footprint[mask], 2 / 3)) > 0.85
    assert np.mean(np.isclose(footprint[known & ~mask], 1 / 3)) > 0.95
    assert np.isnan(footprint[depth == 0]).all()


def test_remembered_rows_follow_the_table_and_copies_keep_their_own_counts(cube_votes):
    views = [_view(angle, height=1.8) for angle in (10, 100, 190)]
    votes = VoxelVotes(cube_votes.grid)
    located = [votes.locate(camera, depth) for camera, depth, _ in views]
    for view, (_, _, mask) in zip(located[:2], views[:2], strict=True):
        votes.vote(view, mask)
    rows = votes.rows(located[0])
    assert votes.rows(located[0]) is rows  # remembered: no second search
    table = votes.keys
    votes.vote(located[2], views[2][2])  # the third view adds voxels: a new key array, rows searched again
    assert votes.keys is not table and len(votes.keys) > len(table)
    assert votes.rows(located[0]) is not rows
    np.testing.assert_array_equal(votes.keys[votes.rows(located[0])], located[0].keys)
    fresh = VoxelVotes(cube_votes.grid)
    for camera, depth, mask in views:
        fresh.add_view(camera, depth, mask)
    for view, (camera, depth, _) in zip(located, views, strict=True):  # as if no rows were remembered
        np.testing.assert_array_equal(votes.footprint(view), fresh.footprint(fresh.locate(camera, depth)))
    kept = VoxelVotes(cube_votes.grid)  # shares kept from an earlier round vote the same
    for view, (_, _, mask) in zip(located, views, strict=True):
        kept.vote(view, mask, share=VoxelVotes.shares(view, mask))
    np.testing.assert_array_equal(kept.inside, votes.inside)
    np.testing.assert_array_equal(kept.seen, votes.seen)
    clone = votes.copy()
    assert clone.keys is votes.keys  # shared: rows stay remembered across copies
    clone.clear()
    clone.vote(located[0], ~views[0][2], weight=2.0)
    assert (
        votes.seen.max() >= 1
        and np.isnan(clone.footprint(located[1])).sum() > np.isnan(votes.footprint(located[1])).sum()
    )
    np.testing.assert_array_equal(votes.footprint(located[0]), fresh.footprint(fresh.locate(*views[0][:2])))


def test_fractional_vote_of_a_voxel_split_by_the_mask():
    camera = look_at_camera([0, 0, 3.0], [0, 0, 0], 64, 48, up=(0, 1, 0))
    depth, _ = render_depth(camera, [Plane([0, 0, 0], [0, 0, 1])])
    votes = VoxelVotes(VoxelGrid(10.0, origin=np.array([-5.0, -5.0, -5.0])))  # one voxel holds the view
    mask = np.zeros((48, 64), dtype=bool)
    mask[:, :16] = True
    votes.add_view(camera, depth, mask)
    assert len(votes) == 1
    assert votes.probability()[0] == pytest.approx(0.25)


def test_bad_input_is_refused():
    camera = look_at_camera([0, 0, 3.0], [0, 0, 0], 64, 48, up=(0, 1, 0))
    depth, _ = render_depth(camera, [Plane([0, 0, 0], [0, 0, 1])])
    votes = VoxelVotes(VoxelGrid(0.05))
    with pytest.raises(ValueError, match="mask shape"):
        votes.add_view(camera, depth, np.ones((24, 32), dtype=bool))
    with pytest.raises(ValueError, match="bool or float"):
        votes.add_view(camera, depth, np.ones((48, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        votes.add_view(camera, depth, np.full((48, 64), 2.0))
    with pytest.raises(ValueError, match="weight"):
        votes.add_view(camera, depth, np.ones((48, 64), dtype=bool), weight=-1)
    with pytest.raises(ValueError, match="float"):
        votes.add_view(camera, depth.astype(np.int16), np.ones((48, 64), dtype=bool))
    with pytest.raises(ValueError, match="width and height"):
        votes.project_to_view(camera, None)
    with pytest.raises(ValueError, match="differs from the depth map"):
        votes.project_to_view(camera, depth, 32, 24)
    assert len(votes) == 0
