"""Camera conventions of other tools, converted to mvsam's at the loader boundary.

mvsam uses OpenCV camera axes (x right, y down, z forward), 4x4 float64 ``world_from_cam`` poses and pixel
(0, 0) at the centre of the top-left pixel (see ``mvsam.scene``). Every function here converts one foreign
convention to or from that, and its name says the direction (``<from>_to_<to>``). Loaders call these and
nothing downstream ever sees another convention.

Foreign conventions handled:
- NeRF / OpenGL / Blender / nerfstudio / instant-ngp camera-to-world: x right, y up, z backward.
- LLFF ``poses_bounds.npy`` rows: a 3x5 [R | t | hwf] camera-to-world with axis columns [down, right, back].
- COLMAP: ``cam_from_world`` as a unit quaternion (w, x, y, z) and a translation; OpenCV axes.
- TUM RGB-D ground truth: camera-to-world translation and unit quaternion (x, y, z, w); OpenCV axes.
- Projection matrices P = K [R | t] (3x4, world to image), e.g. IDR/NeuS ``world_mat``.
- Principal points measured from the top-left pixel *corner* (COLMAP, nerfstudio, instant-ngp).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.spatial.transform import Rotation

# Flips y and z: OpenGL camera axes (x right, y up, z back) <-> OpenCV (x right, y down, z forward).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def _as_pose(matrix: np.ndarray, what: str) -> np.ndarray:
    """Validate a 4x4 (or 3x4, completed with [0 0 0 1]) pose and return it as 4x4 float64."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape == (3, 4):
        matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
    if matrix.shape != (4, 4):
        raise ValueError(f"{what} must be 4x4 or 3x4, got shape {matrix.shape}")
    return matrix


def invert_rigid(transform: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform (rotation + translation), e.g. cam_from_world -> world_from_cam."""
    transform = _as_pose(transform, "rigid transform")
    rotation = transform[:3, :3]
    out = np.eye(4)
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ transform[:3, 3]
    return out


def opengl_c2w_to_world_from_cam(c2w: np.ndarray) -> np.ndarray:
    """NeRF/OpenGL camera-to-world (x right, y up, z back), 4x4 or 3x4 -> OpenCV 4x4 world_from_cam."""
    return _as_pose(c2w, "camera-to-world matrix") @ _FLIP_YZ


def world_from_cam_to_opengl_c2w(world_from_cam: np.ndarray) -> np.ndarray:
    """OpenCV 4x4 world_from_cam -> NeRF/OpenGL 4x4 camera-to-world (x right, y up, z back)."""
    return _as_pose(world_from_cam, "world_from_cam") @ _FLIP_YZ


def llff_to_world_from_cam(pose: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """One LLFF 3x5 [R | t | hwf] (columns [down, right, back]) -> (4x4 world_from_cam, (h, w, focal)).

    ``h, w, focal`` describe the resolution the poses were computed at (usually the full-size originals).
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (3, 5):
        raise ValueError(f"an LLFF pose must be 3x5, got shape {pose.shape}")
    down, right, back, translation, hwf = pose.T
    out = np.eye(4)
    out[:3, 0] = right
    out[:3, 1] = down
    out[:3, 2] = -back
    out[:3, 3] = translation
    return out, (float(hwf[0]), float(hwf[1]), float(hwf[2]))


def world_from_cam_to_llff(
    world_from_cam: np.ndarray, height: float, width: float, focal: float
) -> np.ndarray:
    """OpenCV 4x4 world_from_cam and the (h, w, focal) it was computed at -> LLFF 3x5 [R | t | hwf]."""
    world_from_cam = _as_pose(world_from_cam, "world_from_cam")
    right, down, forward = world_from_cam[:3, :3].T
    columns = [
        down,
        right,
        -forward,
        world_from_cam[:3, 3],
        np.array([height, width, focal], dtype=np.float64),
    ]
    return np.stack(columns, axis=1)


def llff_hwf_to_K(
    height: float, width: float, focal: float, image_width: int, image_height: int
) -> np.ndarray:
    """LLFF's (h, w, focal) at the original resolution -> 3x3 K for an image resized to image_width x height.

    LLFF assumes the principal point is the image centre, which is ((W - 1) / 2, (H - 1) / 2) with pixel
    (0, 0) at the centre of the top-left pixel.
    """
    if min(height, width, focal) <= 0:
        raise ValueError(f"LLFF hwf must be positive, got h={height}, w={width}, f={focal}")
    return np.array(
        [
            [focal * image_width / width, 0.0, (image_width - 1) / 2.0],
            [0.0, focal * image_height / height, (image_height - 1) / 2.0],
            [0.0, 0.0, 1.0],
        ]
    )


def colmap_to_world_from_cam(qvec_wxyz: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """COLMAP cam_from_world as quaternion (w, x, y, z) and translation (3,) -> 4x4 world_from_cam."""
    qvec_wxyz = np.asarray(qvec_wxyz, dtype=np.float64).reshape(4)
    cam_from_world = np.eye(4)
    cam_from_world[:3, :3] = Rotation.from_quat(qvec_wxyz, scalar_first=True).as_matrix()
    cam_from_world[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return invert_rigid(cam_from_world)


def world_from_cam_to_colmap(world_from_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4x4 world_from_cam -> COLMAP cam_from_world as (quaternion (w, x, y, z) with w >= 0, translation)."""
    cam_from_world = invert_rigid(world_from_cam)
    qvec = Rotation.from_matrix(cam_from_world[:3, :3]).as_quat(canonical=True, scalar_first=True)
    return qvec, cam_from_world[:3, 3].copy()


def tum_to_world_from_cam(translation: np.ndarray, quaternion_xyzw: np.ndarray) -> np.ndarray:
    """TUM ground truth (camera position tx ty tz, orientation qx qy qz qw) -> 4x4 world_from_cam."""
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)).as_matrix()
    out[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return out


def world_from_cam_to_tum(world_from_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4x4 world_from_cam -> TUM (translation (3,), quaternion (x, y, z, w) with w >= 0)."""
    world_from_cam = _as_pose(world_from_cam, "world_from_cam")
    quaternion = Rotation.from_matrix(world_from_cam[:3, :3]).as_quat(canonical=True)
    return world_from_cam[:3, 3].copy(), quaternion


def projection_to_K_world_from_cam(projection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x4 (or 4x4) projection P = s K [R | t] (world to image) -> (3x3 K, 4x4 world_from_cam).

    RQ decomposition of the left 3x3 block; signs are fixed so K has a positive diagonal, K[2, 2] = 1 and
    R is a proper rotation (P is only defined up to scale, including its sign).
    """
    projection = np.asarray(projection, dtype=np.float64)
    if projection.shape == (4, 4):
        projection = projection[:3]
    if projection.shape != (3, 4):
        raise ValueError(f"a projection matrix must be 3x4 (or 4x4), got shape {projection.shape}")
    if not np.all(np.isfinite(projection)):
        raise ValueError("projection matrix contains NaN or infinity")
    determinant = np.linalg.det(projection[:, :3])
    if abs(determinant) < 1e-12 * max(1.0, np.abs(projection[:, :3]).max() ** 3):
        raise ValueError("projection matrix is degenerate: its left 3x3 block is singular")
    if determinant < 0:
        projection = -projection
    K, rotation = scipy.linalg.rq(projection[:, :3])
    signs = np.diag(np.sign(np.diag(K)))
    K = K @ signs
    rotation = signs @ rotation
    translation = np.linalg.solve(K, projection[:, 3])
    K = K / K[2, 2]
    cam_from_world = np.eye(4)
    cam_from_world[:3, :3] = rotation
    cam_from_world[:3, 3] = translation
    return K, invert_rigid(cam_from_world)


def K_world_from_cam_to_projection(K: np.ndarray, world_from_cam: np.ndarray) -> np.ndarray:
    """(3x3 K, 4x4 world_from_cam) -> 3x4 projection P = K [R | t] mapping world points to image."""
    return np.asarray(K, dtype=np.float64) @ invert_rigid(world_from_cam)[:3]


def K_pixel_corner_to_centre(K: np.ndarray) -> np.ndarray:
    """K whose principal point is measured from the top-left pixel corner (COLMAP, nerfstudio) -> mvsam's.

    Those tools put the centre of pixel (0, 0) at (0.5, 0.5); mvsam puts it at (0, 0), so cx and cy
    shrink by half a pixel.
    """
    out = np.array(K, dtype=np.float64)
    out[0, 2] -= 0.5
    out[1, 2] -= 0.5
    return out


def K_pixel_centre_to_corner(K: np.ndarray) -> np.ndarray:
    """mvsam K -> K with the principal point measured from the top-left pixel corner (COLMAP, nerfstudio)."""
    out = np.array(K, dtype=np.float64)
    out[0, 2] += 0.5
    out[1, 2] += 0.5
    return out
