"""Pixels to world points and back, with z-buffer visibility against a view's depth.

Every function that takes a depth map works at the depth map's resolution: the camera (whose intrinsics are
for its full ``width x height`` image) is rescaled to the raster with :func:`resize_camera`, so a depth map
computed at a working resolution (e.g. 1/4) can be used with the scene's full-resolution cameras directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mvsam.scene import Camera


def resize_camera(camera: Camera, width: int, height: int) -> Camera:
    """The same camera for an image resampled to ``width x height`` covering the same field of view.

    With pixel (0, 0) at the centre of the top-left pixel, a coordinate maps as x' = (x + 0.5) * s - 0.5.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if (width, height) == (camera.width, camera.height):
        return camera
    sx, sy = width / camera.width, height / camera.height
    scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return Camera(
        K=scale @ camera.K,
        world_from_cam=camera.world_from_cam,
        width=width,
        height=height,
        distortion=camera.distortion,
    )


def check_depth(depth: np.ndarray, name: str = "depth") -> np.ndarray:
    """Validate an HxW float depth map (camera z, 0 = unknown); returns it as float32."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"{name} must be an HxW array, got shape {depth.shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"{name} must be a float array (camera z, 0 = unknown), got dtype {depth.dtype}")
    return depth.astype(np.float32, copy=False)


def check_points(points: np.ndarray) -> np.ndarray:
    """Validate world points as Nx3 float64 (a single point of shape (3,) is accepted)."""
    points = np.asarray(points)
    if points.ndim == 1 and points.shape == (3,):
        points = points[None]
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be Nx3, got shape {points.shape}")
    if not (np.issubdtype(points.dtype, np.floating) or np.issubdtype(points.dtype, np.integer)):
        raise ValueError(f"points must be numeric, got dtype {points.dtype}")
    return points.astype(np.float64, copy=False)


def _valid_depth(depth: np.ndarray) -> np.ndarray:
    """HxW bool: depth is finite and positive."""
    return np.isfinite(depth) & (depth > 0)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """matrix @ p for each row p of Nx3 ``points``, as Nx3 float64.

    Column arithmetic rather than a BLAS matmul: a threaded BLAS call on Nx3 is many times slower on a busy
    machine, and this is as fast as einsum without its temporaries.
    """
    out = np.empty((len(points), 3))
    for row in range(3):
        out[:, row] = (
            matrix[row, 0] * points[:, 0] + matrix[row, 1] * points[:, 1] + matrix[row, 2] * points[:, 2]
        )
    return out


def _rays(camera: Camera, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nx3 float64 camera-frame rays, scaled to z = 1, through the N pixels (x, y)."""
    inverse_k = np.linalg.inv(camera.K)
    rays = np.empty((len(x), 3))
    for row in range(3):
        rays[:, row] = inverse_k[row, 0] * x + inverse_k[row, 1] * y + inverse_k[row, 2]
    return rays / rays[:, 2:3]


def _cam_to_world(camera: Camera, points_cam: np.ndarray) -> np.ndarray:
    return _apply(camera.world_from_cam[:3, :3], points_cam) + camera.world_from_cam[:3, 3]


def unproject_depth(camera: Camera, depth: np.ndarray) -> np.ndarray:
    """World pointmap of a depth map: HxWx3 float64, NaN where the depth is unknown (0, negative, NaN)."""
    depth = check_depth(depth)
    camera = resize_camera(camera, depth.shape[1], depth.shape[0])
    rows, cols = np.indices(depth.shape, dtype=np.float64)
    points = _cam_to_world(camera, _rays(camera, cols.reshape(-1), rows.reshape(-1)) * depth.reshape(-1, 1))
    points[~_valid_depth(depth).reshape(-1)] = np.nan
    return points.reshape(*depth.shape, 3)


def unproject_pixels(camera: Camera, depth: np.ndarray, select: np.ndarray) -> np.ndarray:
    """Nx3 float64 world points of the pixels where ``select`` (HxW bool) is set and the depth is known.

    Rows are in row-major pixel order. Faster than :func:`unproject_depth` when few pixels are selected.
    """
    depth = check_depth(depth)
    camera = resize_camera(camera, depth.shape[1], depth.shape[0])
    select = np.asarray(select, dtype=bool)
    if select.shape != depth.shape:
        raise ValueError(f"selection shape {select.shape} differs from depth shape {depth.shape}")
    select = select & _valid_depth(depth)
    rows, cols = np.nonzero(select)
    z = depth[select].astype(np.float64)
    return _cam_to_world(camera, _rays(camera, cols.astype(np.float64), rows.astype(np.float64)) * z[:, None])


def unproject_mask(
    camera: Camera,
    depth: np.ndarray,
    mask: np.ndarray,
    confidence: np.ndarray | None = None,
    min_confidence: float = 0.5,
) -> np.ndarray:
    """Nx3 float64 world points of the mask's pixels that have known depth (and confidence >= min).

    ``mask`` is HxW bool at the depth map's resolution; ``confidence`` is HxW float in [0, 1] or None.
    """
    depth = check_depth(depth)
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise ValueError(f"mask must be a bool array, got dtype {mask.dtype}")
    if mask.shape != depth.shape:
        raise ValueError(f"mask shape {mask.shape} differs from depth shape {depth.shape}; resize it first")
    select = mask
    if confidence is not None:
        confidence = np.asarray(confidence)
        if confidence.shape != depth.shape:
            raise ValueError(f"confidence shape {confidence.shape} differs from depth shape {depth.shape}")
        select = mask & (confidence >= min_confidence)
    return unproject_pixels(camera, depth, select)


def project_points(
    camera: Camera, points: np.ndarray, width: int | None = None, height: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points into a ``width x height`` raster of the camera (default: its own size).

    Returns (Nx2 float64 (x, y) pixels, N float64 camera z, N bool in_image). ``in_image`` means z > 0
    and the point rounds to a pixel of the raster; the pixel is ``np.rint(xy)``.
    """
    points = check_points(points)
    camera = resize_camera(
        camera, camera.width if width is None else width, camera.height if height is None else height
    )
    cam_from_world = camera.cam_from_world
    points_cam = _apply(cam_from_world[:3, :3], points) + cam_from_world[:3, 3]
    z = points_cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = _apply(camera.K, points_cam)
        xy = pixels[:, :2] / pixels[:, 2:3]
        in_image = (
            (z > 0)
            & (xy[:, 0] >= -0.5)
            & (xy[:, 0] < camera.width - 0.5)
            & (xy[:, 1] >= -0.5)
            & (xy[:, 1] < camera.height - 0.5)
        )
    return xy, z, in_image


@dataclass
class Visibility:
    """Per-point visibility of N world points in one view, tested against that view's depth map.

    ``known``: the point projects into the image at a pixel whose depth is known. ``visible``: known and its
    z is within tolerance of that depth (it is the surface the view sees). ``occluded``: known and behind
    the surface. A known point that is neither lies in front of the surface, in space the view sees as empty.
    ``pixel``: N int64 flat pixel index (row * W + col) where the point lands, -1 outside the image.
    """

    visible: np.ndarray  # N bool
    known: np.ndarray  # N bool
    occluded: np.ndarray  # N bool
    pixel: np.ndarray  # N int64


def visible_mask(
    camera: Camera, depth: np.ndarray, points: np.ndarray, rel_tol: float = 0.02, abs_tol: float = 0.0
) -> Visibility:
    """Z-buffer test of world points against a view's HxW depth map.

    A point is visible when |z - d| <= rel_tol * d + abs_tol with d the depth at its (rounded) pixel. Set
    ``abs_tol`` to about half a voxel diagonal when testing voxel centres.
    """
    depth = check_depth(depth)
    if rel_tol < 0 or abs_tol < 0:
        raise ValueError(f"tolerances must be non-negative, got rel_tol={rel_tol}, abs_tol={abs_tol}")
    height, width = depth.shape
    xy, z, in_image = project_points(camera, points, width, height)
    pixel = np.full(len(z), -1, dtype=np.int64)
    cols = np.rint(xy[in_image, 0]).astype(np.int64)
    rows = np.rint(xy[in_image, 1]).astype(np.int64)
    pixel[in_image] = rows * width + cols
    surface = np.zeros(len(z), dtype=np.float32)
    surface[in_image] = depth.reshape(-1)[pixel[in_image]]
    known = in_image & _valid_depth(surface)
    tolerance = rel_tol * surface + abs_tol
    visible = known & (np.abs(z - surface) <= tolerance)
    occluded = known & (z > surface + tolerance)
    return Visibility(visible=visible, known=known, occluded=occluded, pixel=pixel)


@dataclass
class Splat:
    """The nearest point per pixel of a rendered view.

    ``depth``: HxW float32 camera z of the nearest point, 0 where no point lands. ``index``: HxW int64 row of
    that point in the input array, -1 where none.
    """

    depth: np.ndarray
    index: np.ndarray


def splat_points(camera: Camera, points: np.ndarray, width: int, height: int, radius: int = 0) -> Splat:
    """Z-buffer render of world points into a ``width x height`` raster: nearest point per pixel.

    Each point covers the (2 * radius + 1)^2 pixel square around where it lands, so sparse points (voxel
    centres, SfM points) can fill a view that has no depth of its own.
    """
    if radius < 0:
        raise ValueError(f"splat radius must be >= 0, got {radius}")
    xy, z, in_image = project_points(camera, points, width, height)
    # Points in the image, nearest first: a point's rank in this order breaks ties within a pixel.
    by_depth = np.nonzero(in_image)[0]
    by_depth = by_depth[np.argsort(z[by_depth], kind="stable")]
    pixel = np.rint(xy[by_depth, 1]).astype(np.int64) * width + np.rint(xy[by_depth, 0]).astype(np.int64)
    # One sort of (pixel, rank) packed in an int64 (several times faster than lexsort); the first entry
    # of each pixel is its nearest point.
    count = max(len(by_depth), 1)
    pixel, rank = np.divmod(np.sort(pixel * count + np.arange(len(by_depth))), count)
    first = np.ones(len(pixel), dtype=bool)
    first[1:] = pixel[1:] != pixel[:-1]
    nearest = np.full(height * width, np.inf)
    index = np.full(height * width, -1, dtype=np.int64)
    nearest[pixel[first]] = z[by_depth[rank[first]]]
    index[pixel[first]] = by_depth[rank[first]]
    nearest, index = nearest.reshape(height, width), index.reshape(height, width)
    if radius > 0:
        # The nearest point landing within the square around a pixel is the minimum of the per-pixel
        # nearest points over that square: a min filter that carries the index along.
        padded_z = np.pad(nearest, radius, constant_values=np.inf)
        padded_index = np.pad(index, radius, constant_values=-1)
        for dy in range(2 * radius + 1):
            for dx in range(2 * radius + 1):
                candidate = padded_z[dy : dy + height, dx : dx + width]
                closer = candidate < nearest
                nearest = np.where(closer, candidate, nearest)
                index = np.where(closer, padded_index[dy : dy + height, dx : dx + width], index)
    depth = np.where(index >= 0, nearest, 0).astype(np.float32)
    return Splat(depth=depth, index=index)
