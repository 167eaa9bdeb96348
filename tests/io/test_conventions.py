"""Round trips and known values of every foreign-convention conversion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mvsam.io import conventions as cv


def random_pose(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pose = np.eye(4)
    pose[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    pose[:3, 3] = rng.normal(scale=5.0, size=3)
    return pose


POSES = [random_pose(seed) for seed in range(20)]


@pytest.mark.parametrize("pose", POSES)
def test_opengl_round_trip(pose):
    c2w = cv.world_from_cam_to_opengl_c2w(pose)
    np.testing.assert_allclose(cv.opengl_c2w_to_world_from_cam(c2w), pose, atol=1e-12)


def test_opengl_identity_looks_down_negative_z():
    world_from_cam = cv.opengl_c2w_to_world_from_cam(np.eye(4))
    # OpenGL cameras look along their -z; in OpenCV axes forward is +z and down is +y.
    np.testing.assert_allclose(world_from_cam[:3, 2], [0, 0, -1])
    np.testing.assert_allclose(world_from_cam[:3, 1], [0, -1, 0])
    np.testing.assert_allclose(cv.opengl_c2w_to_world_from_cam(np.eye(4)[:3]), world_from_cam)


@pytest.mark.parametrize("pose", POSES)
def test_llff_round_trip(pose):
    row = cv.world_from_cam_to_llff(pose, 3024, 4032, 3260.5)
    back, (h, w, f) = cv.llff_to_world_from_cam(row)
    np.testing.assert_allclose(back, pose, atol=1e-12)
    assert (h, w, f) == (3024, 4032, 3260.5)


def test_llff_axis_order():
    # An LLFF camera whose [down, right, back] columns are world [y, x, -z] is the OpenCV identity.
    row = np.zeros((3, 5))
    row[:, 0] = [0, 1, 0]
    row[:, 1] = [1, 0, 0]
    row[:, 2] = [0, 0, -1]
    row[:, 3] = [1, 2, 3]
    row[:, 4] = [30, 40, 50]
    pose, _ = cv.llff_to_world_from_cam(row)
    np.testing.assert_allclose(pose[:3, :3], np.eye(3))
    np.testing.assert_allclose(pose[:3, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="3x5"):
        cv.llff_to_world_from_cam(np.zeros((3, 4)))


def test_llff_hwf_to_K_scales_focal():
    K = cv.llff_hwf_to_K(3024, 4032, 3260.5, 1008, 756)
    np.testing.assert_allclose(K, [[815.125, 0, 503.5], [0, 815.125, 377.5], [0, 0, 1]])
    with pytest.raises(ValueError, match="positive"):
        cv.llff_hwf_to_K(0, 4032, 3260.5, 1008, 756)


@pytest.mark.parametrize("pose", POSES)
def test_colmap_round_trip(pose):
    qvec, tvec = cv.world_from_cam_to_colmap(pose)
    assert qvec[0] >= 0
    np.testing.assert_allclose(np.linalg.norm(qvec), 1.0)
    np.testing.assert_allclose(cv.colmap_to_world_from_cam(qvec, tvec), pose, atol=1e-10)


def test_colmap_known_quaternion():
    # cam_from_world is 90 degrees about z, as (w, x, y, z); world_from_cam is its inverse.
    qvec = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    world_from_cam = cv.colmap_to_world_from_cam(qvec, [1.0, 0.0, 0.0])
    cam_from_world_rotation = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    np.testing.assert_allclose(world_from_cam[:3, :3], cam_from_world_rotation.T, atol=1e-12)
    np.testing.assert_allclose(world_from_cam[:3, 3], -cam_from_world_rotation.T @ [1.0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("pose", POSES)
def test_tum_round_trip(pose):
    translation, quaternion = cv.world_from_cam_to_tum(pose)
    np.testing.assert_allclose(translation, pose[:3, 3])
    np.testing.assert_allclose(cv.tum_to_world_from_cam(translation, quaternion), pose, atol=1e-10)


def test_tum_quaternion_is_xyzw():
    pose = cv.tum_to_world_from_cam([0, 0, 0], [0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)])
    np.testing.assert_allclose(pose[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("scale", [1.0, -3.5, 1e-3])
def test_projection_round_trip(seed, scale):
    pose = POSES[seed]
    K = np.array([[1200.0 + 10 * seed, 0.5, 640.2], [0, 1180.0, 355.9], [0, 0, 1]])
    P = scale * cv.K_world_from_cam_to_projection(K, pose)
    K_back, pose_back = cv.projection_to_K_world_from_cam(P)
    np.testing.assert_allclose(K_back, K, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(pose_back, pose, atol=1e-9)
    P4 = np.vstack([P, [0, 0, 0, 1]])
    np.testing.assert_allclose(cv.projection_to_K_world_from_cam(P4)[0], K, rtol=1e-9, atol=1e-7)


def test_projection_rejects_bad_input():
    with pytest.raises(ValueError, match="singular"):
        cv.projection_to_K_world_from_cam(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        cv.projection_to_K_world_from_cam(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="3x4"):
        cv.projection_to_K_world_from_cam(np.eye(3))


def test_principal_point_half_pixel_round_trip():
    K = np.array([[500.0, 0, 320.0], [0, 500.0, 240.0], [0, 0, 1]])
    centre = cv.K_pixel_corner_to_centre(K)
    np.testing.assert_allclose(centre[:2, 2], [319.5, 239.5])
    np.testing.assert_allclose(cv.K_pixel_centre_to_corner(centre), K)


@pytest.mark.parametrize("pose", POSES[:5])
def test_invert_rigid(pose):
    np.testing.assert_allclose(cv.invert_rigid(pose) @ pose, np.eye(4), atol=1e-12)
    with pytest.raises(ValueError, match="4x4"):
        cv.invert_rigid(np.eye(3))
