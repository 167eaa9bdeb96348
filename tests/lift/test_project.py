"""Projection, unprojection, visibility and splatting against analytic scenes with exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.lift.project import (
    project_points,
    resize_camera,
    splat_points,
    unproject_depth,
    unproject_mask,
    unproject_pixels,
    visible_mask,
)
from mvsam.lift.synthetic import Box, Plane, Sphere, look_at, look_at_camera, render_depth


def test_look_at_is_a_rotation_looking_at_the_target():
    camera = look_at_camera([4.0, -3.0, 2.0], [0.5, 0.25, 0.0], width=160, height=120)
    rotation = camera.world_from_cam[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    xy, z, in_image = project_points(camera, [0.5, 0.25, 0.0])
    np.testing.assert_allclose(xy[0], [79.5, 59.5], atol=1e-9)  # the principal point
    assert z[0] == pytest.approx(np.linalg.norm([3.5, -3.25, 2.0]))
    # World up (+z) points up in the image, i.e. towards smaller y.
    xy_up, _, _ = project_points(camera, [0.5, 0.25, 0.5])
    assert xy_up[0, 1] < 59.5
    with pytest.raises(ValueError, match="parallel"):
        look_at([0, 0, 5], [0, 0, 0])


def test_fronto_parallel_plane_has_constant_depth_and_round_trips():
    camera = look_at_camera([0.3, -0.2, 5.0], [0.3, -0.2, 0.0], 160, 120, up=(0, 1, 0))
    depth, ids = render_depth(camera, [Plane([0, 0, 0], [0, 0, 1])])
    np.testing.assert_allclose(depth, 5.0, atol=1e-6)
    assert np.all(ids == 0)
    points = unproject_depth(camera, depth)
    assert points.shape == (120, 160, 3)
    np.testing.assert_allclose(points[..., 2], 0.0, atol=1e-6)
    xy, z, in_image = project_points(camera, points.reshape(-1, 3))
    rows, cols = np.indices(depth.shape)
    np.testing.assert_allclose(xy[:, 0], cols.reshape(-1), atol=1e-6)
    np.testing.assert_allclose(xy[:, 1], rows.reshape(-1), atol=1e-6)
    np.testing.assert_allclose(z, depth.reshape(-1), atol=1e-6)
    assert in_image.all()


def test_sphere_points_lie_on_the_sphere_and_round_trip():
    camera = look_at_camera([2.0, 3.0, 1.5], [0.1, 0.0, 0.2], 160, 120, fov_x_deg=50)
    sphere = Sphere([0.1, 0.0, 0.2], 0.8)
    depth, ids = render_depth(camera, [sphere])
    assert 0.2 < (ids == 0).mean() < 0.8
    points = unproject_mask(camera, depth, ids == 0)
    assert len(points) == np.count_nonzero(ids == 0)
    distance = np.linalg.norm(points - np.array(sphere.center), axis=1)
    np.testing.assert_allclose(distance, 0.8, atol=1e-5)  # float32 depth
    xy, z, in_image = project_points(camera, points)
    rows, cols = np.nonzero(ids == 0)
    np.testing.assert_allclose(xy, np.stack([cols, rows], axis=1), atol=1e-6)
    np.testing.assert_allclose(z, depth[ids == 0], atol=1e-6)
    nearest = np.linalg.norm(camera.center - np.array(sphere.center)) - 0.8
    assert depth[depth > 0].min() == pytest.approx(nearest, rel=1e-3)


def test_unknown_depth_gives_nan_and_confidence_filters():
    camera = look_at_camera([0, 0, 3.0], [0, 0, 0], 40, 30, up=(0, 1, 0))
    depth = np.full((30, 40), 3.0, dtype=np.float32)
    depth[:10] = 0
    points = unproject_depth(camera, depth)
    assert np.isnan(points[:10]).all() and np.isfinite(points[10:]).all()
    mask = np.ones((30, 40), dtype=bool)
    confidence = np.zeros((30, 40), dtype=np.float32)
    confidence[:, :5] = 0.9
    assert len(unproject_mask(camera, depth, mask)) == 20 * 40
    assert len(unproject_mask(camera, depth, mask, confidence, min_confidence=0.5)) == 20 * 5
    np.testing.assert_allclose(unproject_pixels(camera, depth, mask), points[10:].reshape(-1, 3))


def test_resize_camera_maps_pixel_centres():
    camera = look_at_camera([1.0, 2.0, 3.0], [0, 0, 0], 400, 300)
    small = resize_camera(camera, 100, 75)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(50, 3))
    xy_full, z_full, _ = project_points(camera, points)
    xy_small, z_small, _ = project_points(small, points)
    np.testing.assert_allclose(xy_small, (xy_full + 0.5) / 4 - 0.5, atol=1e-9)
    np.testing.assert_allclose(z_small, z_full)
    np.testing.assert_allclose(project_points(camera, points, 100, 75)[0], xy_small)
    # A depth map at quarter resolution unprojects with the full-resolution camera.
    depth, _ = render_depth(small, [Plane([0, 0, 0], [0, 0, 1])])
    assert depth.shape == (75, 100)
    np.testing.assert_allclose(unproject_depth(camera, depth)[..., 2], 0.0, atol=1e-5)


def test_in_image_bounds_and_points_behind_the_camera():
    camera = look_at_camera([0, 0, 0], [0, 0, 1], 40, 30, up=(0, -1, 0))
    K_inv = np.linalg.inv(camera.K)
    rays = np.array([[-0.5, 0, 1], [39.49, 29.49, 1], [39.5, 0, 1], [0, -0.51, 1]]) @ K_inv.T
    points = np.concatenate([rays * 2.0, [[0.0, 0.0, -1.0]]])
    points = points @ camera.world_from_cam[:3, :3].T + camera.center
    _, z, in_image = project_points(camera, points)
    assert in_image.tolist() == [True, True, False, False, False]
    assert z[-1] < 0


def _wall_scene():
    """A camera at the origin looking along +y at a wall (a thin box) 2 units away."""
    camera = look_at_camera([0, 0, 0], [0, 1, 0], 80, 60, fov_x_deg=60)
    wall = Box([-1.0, 2.0, -1.0], [1.0, 2.1, 1.0])
    depth, _ = render_depth(camera, [wall])
    return camera, depth


def test_visibility_against_a_wall():
    camera, depth = _wall_scene()
    assert depth[30, 40] == pytest.approx(2.0)
    points = np.array(
        [
            [0.1, 2.0, 0.05],  # on the wall's front face: visible
            [0.1, 3.0, 0.05],  # behind the wall: occluded
            [0.1, 1.0, 0.05],  # in front of the wall, in space the view sees as empty
            [0.0, 3.0, 10.0],  # beyond the wall's edge, where the view has no depth: unknown
            [0.0, -1.0, 0.0],  # behind the camera: unknown
        ]
    )
    visibility = visible_mask(camera, depth, points, rel_tol=0.01)
    assert visibility.visible.tolist() == [True, False, False, False, False]
    assert visibility.occluded.tolist() == [False, True, False, False, False]
    assert visibility.known.tolist() == [True, True, True, False, False]
    assert visibility.pixel[-1] == -1
    xy, _, _ = project_points(camera, points[:1])
    assert visibility.pixel[0] == int(np.rint(xy[0, 1])) * 80 + int(np.rint(xy[0, 0]))
    # Tolerances: 0.1 in front of the wall is visible with abs_tol 0.15, not with rel_tol 0.01 alone.
    near = np.array([[0.1, 1.9, 0.05]])
    assert not visible_mask(camera, depth, near, rel_tol=0.01).visible[0]
    assert visible_mask(camera, depth, near, rel_tol=0.01, abs_tol=0.15).visible[0]


def test_splat_keeps_the_nearest_point_per_pixel():
    camera = look_at_camera([0, 0, 0], [0, 0, 1], 40, 30, up=(0, -1, 0))
    centre_ray = np.linalg.inv(camera.K) @ np.array([10.0, 20.0, 1.0])
    points = np.stack([centre_ray * 3.0, centre_ray * 2.0, centre_ray * 5.0])
    splat = splat_points(camera, points, 40, 30)
    assert splat.depth[20, 10] == pytest.approx(2.0)
    assert splat.index[20, 10] == 1
    assert np.count_nonzero(splat.index >= 0) == 1 and splat.depth.sum() == pytest.approx(2.0)
    wide = splat_points(camera, points, 40, 30, radius=1)
    assert np.count_nonzero(wide.index >= 0) == 9
    assert np.all(wide.index[19:22, 9:12] == 1)
    # At the image corner the square is clipped.
    corner = splat_points(camera, [np.linalg.inv(camera.K) @ np.array([0.0, 0.0, 1.0])], 40, 30, radius=2)
    assert np.count_nonzero(corner.index == 0) == 9


def test_splat_of_a_depth_map_renders_the_same_depth():
    camera = look_at_camera([2.0, -1.5, 1.2], [0, 0, 0.2], 80, 60)
    depth, _ = render_depth(camera, [Box([-1, -1, -0.1], [1, 1, 0]), Sphere([0, 0, 0.4], 0.4)])
    points = unproject_pixels(camera, depth, depth > 0)
    splat = splat_points(camera, points, 80, 60)
    np.testing.assert_allclose(splat.depth, depth, atol=1e-5)


def test_bad_input_is_refused():
    camera = look_at_camera([0, 0, 3.0], [0, 0, 0], 40, 30, up=(0, 1, 0))
    depth = np.full((30, 40), 3.0, dtype=np.float32)
    with pytest.raises(ValueError, match="float"):
        unproject_depth(camera, depth.astype(np.int32))
    with pytest.raises(ValueError, match="HxW"):
        unproject_depth(camera, depth[None])
    with pytest.raises(ValueError, match="bool"):
        unproject_mask(camera, depth, np.ones((30, 40), dtype=np.uint8))
    with pytest.raises(ValueError, match="mask shape"):
        unproject_mask(camera, depth, np.ones((30, 41), dtype=bool))
    with pytest.raises(ValueError, match="confidence shape"):
        unproject_mask(camera, depth, np.ones((30, 40), dtype=bool), confidence=np.ones((3, 4)))
    with pytest.raises(ValueError, match="Nx3"):
        project_points(camera, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="tolerances"):
        visible_mask(camera, depth, np.zeros((1, 3)), rel_tol=-0.1)
    with pytest.raises(ValueError, match="radius"):
        splat_points(camera, np.zeros((1, 3)), 40, 30, radius=-1)
    with pytest.raises(ValueError, match="positive"):
        resize_camera(camera, 0, 30)
