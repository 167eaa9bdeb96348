"""The object mesh on DTU: segment with the click protocol, reconstruct the mesh, score its silhouettes.

The mesh is rendered into every view with the dataset's own projection matrices (``world_mat_i`` of
``cameras_sphere.npz``, not mvsam's decomposition of them) and compared with the ground-truth masks. Ground
truth gives only the reference clicks and the scores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mvsam.errors import InputError
from mvsam.evaluate.metrics import iou
from mvsam.evaluate.protocol import protocol_clicks
from mvsam.export.mesh import MeshSettings, reconstruct_mesh
from mvsam.geometry import GeometrySettings, compute_geometry
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter, SegmenterConfig
from mvsam.segment.prompts import Click

_SUBPIXEL_BITS = 4


def render_silhouette(
    projection: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    width: int,
    height: int,
    closed: bool = False,
) -> np.ndarray:
    """HxW bool: pixels covered by a mesh (Nx3 vertices, Mx3 faces) seen through a 3x4 P = K [R | t].

    Each triangle is filled with OpenCV (sub-pixel vertices; pixel (0, 0) is the centre of the top-left
    pixel). For a ``closed`` mesh with outward normals the silhouette is the union of the triangles that
    face the camera, so the others are skipped (half the work).
    """
    projection = np.asarray(projection, dtype=np.float64)[:3]
    if np.linalg.det(projection[:, :3]) < 0:
        projection = -projection  # P is defined up to scale; make w > 0 in front of the camera
    homogeneous = np.concatenate([vertices, np.ones((len(vertices), 1))], axis=1) @ projection.T
    in_front = homogeneous[:, 2] > 0
    xy = homogeneous[:, :2] / np.where(in_front, homogeneous[:, 2], 1.0)[:, None]
    keep = in_front[faces].all(axis=1)
    if closed:  # outward normals: only triangles facing the camera can bound the silhouette
        center = -np.linalg.solve(projection[:, :3], projection[:, 3])
        corners = vertices[faces]
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        keep &= np.einsum("ij,ij->i", normals, center - corners[:, 0]) > 0
    triangles = xy[faces[keep]]
    fixed = np.rint(triangles * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    out = np.zeros((height, width), dtype=np.uint8)
    for triangle in fixed:
        cv2.fillConvexPoly(out, triangle, 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return out.astype(bool)


@dataclass
class MeshScore:
    """Silhouette IoU of the mesh in every view, and facts about the mesh."""

    scene: str
    reference: str
    silhouette_miou: float
    silhouette_min_iou: float
    mask_miou: float  # the segmenter's own masks vs ground truth, all views, for comparison
    faces: int
    vertices: int
    watertight: bool
    voxel_size: float
    view_iou: list[float]
    seconds: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        return (
            f"DTU mesh ({self.scene}, clicks on {self.reference}): "
            f"silhouette mIoU {self.silhouette_miou:.3f} "
            f"(min {self.silhouette_min_iou:.3f}) over {len(self.view_iou)} views; masks' mIoU "
            f"{self.mask_miou:.3f}\nmesh: {self.faces} faces, {self.vertices} vertices, "
            f"{'watertight' if self.watertight else 'not watertight'}, voxel {self.voxel_size:.4g}\n"
            "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())
        )


def evaluate_dtu_mesh(
    data: str | Path,
    reference: int = 0,
    predictor=None,
    config: SegmenterConfig | None = None,
    mesh_settings: MeshSettings | None = None,
    progress: bool = True,
) -> MeshScore:
    """Clicks (the protocol's 3 positive + 1 negative) on ``reference`` -> masks -> mesh -> silhouettes."""
    from mvsam.evaluate.dtu import load_ground_truth

    start = time.perf_counter()
    data = Path(data)
    scene = Scene.load(data)
    gts = load_ground_truth(data, scene)
    if not 0 <= reference < len(scene.views):
        raise InputError(f"reference view {reference} is out of range 0..{len(scene.views) - 1}")
    cameras = np.load(data / "cameras_sphere.npz")
    seconds = {}
    tick = time.perf_counter()
    compute_geometry(scene, GeometrySettings(), progress=progress)
    seconds["geometry"] = time.perf_counter() - tick
    if predictor is None:
        from mvsam.sam import load_predictor

        predictor = load_predictor("mobile_sam", cache_dir=scene.cache_dir / "embeddings")
    tick = time.perf_counter()
    segmenter = Segmenter(scene, predictor, config, progress=progress)
    clicks = protocol_clicks(gts[reference])
    segmenter.segment(
        [
            Click(reference, float(x), float(y), bool(label))
            for (x, y), label in zip(clicks.points, clicks.labels, strict=True)
        ]
    )
    masks = [segmenter.mask(i) for i in range(len(scene.views))]
    seconds["segment"] = time.perf_counter() - tick
    mesh = reconstruct_mesh(scene, masks, mesh_settings)
    seconds["mesh"] = mesh.seconds
    tick = time.perf_counter()
    view_iou = []
    for index, view in enumerate(scene.views):
        silhouette = render_silhouette(
            cameras[f"world_mat_{index}"], mesh.vertices, mesh.faces, view.width, view.height, mesh.watertight
        )
        view_iou.append(iou(silhouette, gts[index]))
    seconds["render"] = time.perf_counter() - tick
    seconds["total"] = time.perf_counter() - start
    return MeshScore(
        scene=str(data),
        reference=scene.views[reference].name,
        silhouette_miou=float(np.mean(view_iou)),
        silhouette_min_iou=float(np.min(view_iou)),
        mask_miou=float(np.mean([iou(m, g) for m, g in zip(masks, gts, strict=True)])),
        faces=len(mesh.faces),
        vertices=len(mesh.vertices),
        watertight=mesh.watertight,
        voxel_size=mesh.voxel_size,
        view_iou=view_iou,
        seconds=seconds,
    )
