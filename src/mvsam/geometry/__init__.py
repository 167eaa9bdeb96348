"""Where every pixel is in 3D: SfM cameras, multi-view stereo depth, caching.

Other stages call ``compute_geometry(scene)`` (or ``scene.geometry()``) and read ``view.camera``,
``view.depth``, ``view.depth_confidence`` and ``scene.sparse``.
"""

from mvsam.geometry.fusion import PointCloud, fuse_depth
from mvsam.geometry.mvs import MvsSettings
from mvsam.geometry.pipeline import GeometrySettings, GeometryTimings, compute_geometry
from mvsam.geometry.sfm import SfmReport, SfmSettings, run_sfm

__all__ = [
    "GeometrySettings",
    "GeometryTimings",
    "MvsSettings",
    "PointCloud",
    "SfmReport",
    "SfmSettings",
    "compute_geometry",
    "fuse_depth",
    "run_sfm",
]
