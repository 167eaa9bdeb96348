"""The segmented object reconstructed alone (NTO3D's last step, without training): a coloured mesh.

1. The object's box and the voxel size come from its masked depth (robust percentiles, padded).
2. Truncated signed distance fusion (own numpy TSDF) of the *masked* depth of every view: each voxel in front
   of an object surface pixel is free (+1), near it gets the clipped signed distance, far behind it is
   unknown. Numpy is enough here: the volume is the object's box (~10^6 voxels), not the room.
3. Carving by the voxel votes: every view votes for each voxel it sees un-occluded, inside or outside its
   mask (a voxel hidden behind the view's depth gets no vote, so occluders do not carve the object). A voxel
   needs a share of at least ``min_inside`` of inside votes to belong to the object; voxels the depth never
   reached are filled when the votes say inside (the back of an object, holes in MVS depth).
4. Marching cubes (scikit-image) on the padded field, so the surface is closed; the main component(s) are
   kept; vertex colours are the mean over the views that see the vertex (z-buffer against their depth).

Degrades gracefully: with RGB-D or MVS depth the visible surface comes from the TSDF and the rest from the
votes; with SfM points only (no dense depth) it is a visual hull of the masks inside the box of the object's
sparse points (coarser, concavities are lost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mvsam.errors import InputError
from mvsam.export.points import masked_points, working_size
from mvsam.lift.project import project_points, resize_camera
from mvsam.scene import Camera, Scene


@dataclass(frozen=True)
class MeshSettings:
    """Knobs of :func:`reconstruct_mesh`; lengths in voxels so they follow the scene's scale."""

    resolution: int = 160  # voxels along the longest side of the object's box
    truncation: float = 3.0  # TSDF truncation distance, in voxels
    min_inside: float = 0.9  # share of a voxel's un-occluded sightings that must be inside the masks
    padding: float = 0.08  # box padding, as a share of the box's longest side
    keep_share: float = 0.1  # keep components with at least this share of the largest one's faces
    max_side: int = 640  # working raster long side (depth, masks, colours)

    def validate(self) -> None:
        if self.resolution < 8:
            raise InputError(f"mesh resolution must be >= 8 voxels, got {self.resolution}")
        if self.truncation <= 0 or not 0 < self.min_inside <= 1 or not 0 <= self.keep_share <= 1:
            raise InputError(f"invalid mesh settings {self}")


@dataclass
class ObjectMesh:
    """A mesh in the scene's world frame: vertices Nx3 float64, faces Mx3 int64, colours Nx3 uint8."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    voxel_size: float
    watertight: bool
    seconds: float

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, vertex_colors=self.colors, process=False)


@dataclass
class _Raster:
    """One view at the working raster: camera, depth (0 unknown), object mask, image."""

    camera: Camera
    depth: np.ndarray | None
    mask: np.ndarray
    image: np.ndarray | None


def _rasters(scene: Scene, masks: list[np.ndarray | None], max_side: int, images: bool) -> list[_Raster]:
    out = []
    for view, mask in zip(scene.views, masks, strict=True):
        if view.camera is None or mask is None:
            continue
        size = working_size(view.width, view.height, max_side)
        depth = None if view.depth is None else cv2.resize(view.depth, size, interpolation=cv2.INTER_NEAREST)
        small = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        image = cv2.resize(view.load_image(), size, interpolation=cv2.INTER_AREA) if images else None
        out.append(_Raster(resize_camera(view.camera, *size), depth, small, image))
    return out


def _sparse_object_points(scene: Scene, rasters: list[_Raster]) -> np.ndarray:
    """SfM points that fall inside the masks in most of the views they project into."""
    if scene.sparse is None or len(scene.sparse.xyz) == 0:
        return np.zeros((0, 3))
    xyz = scene.sparse.xyz
    inside = np.zeros(len(xyz))
    seen = np.zeros(len(xyz))
    for raster in rasters:
        height, width = raster.mask.shape
        xy, _, ok = project_points(raster.camera, xyz, width, height)
        cols, rows = np.rint(xy[ok, 0]).astype(np.int64), np.rint(xy[ok, 1]).astype(np.int64)
        seen[ok] += 1
        inside[np.nonzero(ok)[0][raster.mask[rows, cols]]] += 1
    return xyz[(seen >= 2) & (inside >= 0.75 * seen)]


def _box(points: np.ndarray, settings: MeshSettings) -> tuple[np.ndarray, float, tuple[int, int, int]]:
    """(origin (3,), voxel size, grid shape) of the padded robust box of the object's points."""
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    side = float((high - low).max())
    if not side > 0:
        raise InputError("the object's 3D points span no volume; cannot build a mesh")
    low, high = low - settings.padding * side, high + settings.padding * side
    voxel = float((high - low).max()) / settings.resolution
    shape = tuple(int(np.ceil(v)) for v in (high - low) / voxel)
    return low, voxel, shape


def _project_grid(
    camera: Camera, origin: np.ndarray, voxel: float, shape: tuple[int, int, int], width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project the centres of a regular grid into a ``width x height`` raster of the camera.

    Returns (flat indices of the voxels that land in the image, their flat pixel indices, their camera z).
    Camera coordinates are affine in the voxel index, so they are sums of three broadcast axes in float32:
    several times faster than projecting a list of millions of points.
    """
    cam_from_world = camera.cam_from_world
    rotation, start = (
        cam_from_world[:3, :3],
        cam_from_world[:3, :3] @ (origin + 0.5 * voxel) + cam_from_world[:3, 3],
    )
    steps = [np.arange(n, dtype=np.float32) * np.float32(voxel) for n in shape]
    xyz = [
        (
            np.float32(start[row])
            + (rotation[row, 0] * steps[0]).astype(np.float32)[:, None, None]
            + (rotation[row, 1] * steps[1]).astype(np.float32)[None, :, None]
            + (rotation[row, 2] * steps[2]).astype(np.float32)[None, None, :]
        ).reshape(-1)
        for row in range(3)
    ]
    K = camera.K
    z = xyz[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_z = np.where(z > 0, 1.0 / z, np.float32(-1.0)).astype(np.float32)
        cols = np.rint((K[0, 0] * xyz[0] + K[0, 1] * xyz[1]) * inverse_z + K[0, 2])
        rows = np.rint((K[1, 1] * xyz[1]) * inverse_z + K[1, 2])
    ok = (z > 0) & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    index = np.nonzero(ok)[0]
    pixel = rows[index].astype(np.int64) * width + cols[index].astype(np.int64)
    return index, pixel, z[index]


def _fuse(
    rasters: list[_Raster],
    origin: np.ndarray,
    voxel: float,
    shape: tuple[int, int, int],
    settings: MeshSettings,
) -> np.ndarray:
    """Flat float32 field over the grid: negative inside the object, positive outside."""
    count = int(np.prod(shape))
    truncation = np.float32(settings.truncation * voxel)
    tsdf = np.zeros(count, np.float32)
    weight = np.zeros(count, np.float32)
    inside = np.zeros(count, np.float32)
    outside = np.zeros(count, np.float32)
    for raster in rasters:
        height, width = raster.mask.shape
        index, pixel, z = _project_grid(raster.camera, origin, voxel, shape, width, height)
        in_mask = raster.mask.reshape(-1)[pixel]
        if raster.depth is not None:
            depth = raster.depth.reshape(-1)[pixel]
            known = depth > 0
            unoccluded = ~known | (z <= depth + truncation)
            near = in_mask & known & (depth - z >= -truncation)
            tsdf[index[near]] += np.clip((depth[near] - z[near]) / truncation, -1.0, 1.0)
            weight[index[near]] += 1.0
        else:
            unoccluded = np.ones(len(index), dtype=bool)
        inside[index[in_mask]] += 1.0
        outside[index[~in_mask & unoccluded]] += 1.0
    votes = inside / np.maximum(inside + outside, 1.0)
    object_voxel = (votes >= settings.min_inside) & (inside >= 1)
    field = np.where(weight > 0, tsdf / np.maximum(weight, 1.0), -1.0).astype(np.float32)
    return np.where(object_voxel, field, 1.0).astype(np.float32)


def _vertex_colors(rasters: list[_Raster], vertices: np.ndarray, tolerance: float) -> np.ndarray:
    """Nx3 uint8 mean colour over the views that see each vertex; unseen vertices take the nearest seen."""
    total = np.zeros((len(vertices), 3))
    count = np.zeros(len(vertices))
    for raster in rasters:
        if raster.image is None:
            continue
        height, width = raster.mask.shape
        xy, z, ok = project_points(raster.camera, vertices, width, height)
        index = np.nonzero(ok)[0]
        rows, cols = np.rint(xy[index, 1]).astype(np.int64), np.rint(xy[index, 0]).astype(np.int64)
        seen = raster.mask[rows, cols]
        if raster.depth is not None:
            depth = raster.depth[rows, cols]
            seen &= (depth > 0) & (np.abs(z[index] - depth) <= tolerance)
        total[index[seen]] += raster.image[rows[seen], cols[seen]]
        count[index[seen]] += 1
    colors = np.full((len(vertices), 3), 128.0)
    coloured = count > 0
    colors[coloured] = total[coloured] / count[coloured, None]
    if coloured.any() and not coloured.all():
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(vertices[coloured]).query(vertices[~coloured])
        colors[~coloured] = colors[coloured][nearest]
    return np.clip(np.rint(colors), 0, 255).astype(np.uint8)


def reconstruct_mesh(
    scene: Scene, masks: list[np.ndarray | None], settings: MeshSettings | None = None, name: str = "object"
) -> ObjectMesh:
    """The object's mesh from its HxW bool mask per scene view (None: view not used) and the scene's
    cameras and depth (``scene.geometry()`` first). Raises ValueError when there is nothing to build from."""
    import trimesh
    from skimage.measure import marching_cubes

    settings = settings or MeshSettings()
    settings.validate()
    start = time.perf_counter()
    if len(masks) != len(scene.views):
        raise InputError(f"need one mask per view: {len(masks)} masks for {len(scene.views)} views")
    rasters = _rasters(scene, masks, settings.max_side, images=True)
    if not any(r.mask.any() for r in rasters):
        raise InputError(f"{name} is empty in every view with a camera; nothing to reconstruct")
    points, _ = masked_points(scene, masks, settings.max_side, colors=False)
    if len(points) < 10:
        points = _sparse_object_points(scene, rasters)
    if len(points) < 10:
        raise InputError(
            f"{name} has no depth anywhere: no view has known depth inside its mask and no SfM point falls "
            f"inside the masks; run geometry with depth (mvsam reconstruct) or check the masks"
        )
    origin, voxel, shape = _box(points, settings)
    field = _fuse(rasters, origin, voxel, shape, settings).reshape(shape)
    occupancy = np.pad(-field, 1, constant_values=-1.0)  # positive inside; the border closes the surface
    if occupancy.max() <= 0:
        raise InputError(f"the masks of {name} carve away every voxel: they disagree in 3D")
    vertices, faces, _, _ = marching_cubes(occupancy, level=0.0, spacing=(voxel, voxel, voxel))
    vertices = vertices + origin - 0.5 * voxel  # padded index 0 is the voxel centre at origin - voxel / 2
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        largest = max(len(p.faces) for p in parts)
        mesh = trimesh.util.concatenate([p for p in parts if len(p.faces) >= settings.keep_share * largest])
    if mesh.volume < 0:  # marching cubes winds faces inward for this field
        mesh.invert()
    colors = _vertex_colors(rasters, mesh.vertices, tolerance=2.0 * voxel + settings.truncation * voxel)
    return ObjectMesh(
        vertices=np.asarray(mesh.vertices, dtype=np.float64),
        faces=np.asarray(mesh.faces, dtype=np.int64),
        colors=colors,
        voxel_size=voxel,
        watertight=bool(mesh.is_watertight),
        seconds=time.perf_counter() - start,
    )


def write_mesh(mesh: ObjectMesh, stem: Path) -> list[Path]:
    """``<stem>.ply`` (binary, per-vertex colours) and ``<stem>.glb``, via trimesh."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    shape = mesh.to_trimesh()
    written = []
    for suffix in (".ply", ".glb"):
        path = stem.with_suffix(suffix)
        path.write_bytes(shape.export(file_type=suffix[1:]))
        written.append(path)
    return written
