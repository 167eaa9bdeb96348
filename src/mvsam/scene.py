"""The one object passed between stages: a set of views of one static scene.

Conventions, used everywhere in mvsam and converted to only inside loaders:
- Camera axes are OpenCV's: x right, y down, z forward (into the scene).
- Poses are 4x4 float64 matrices named by direction: ``world_from_cam`` maps camera
  coordinates to world coordinates; ``cam_from_world`` is its inverse.
- Pixel (0, 0) is the centre of the top-left pixel; points are (x, y) = (column, row).
- Depth is the camera-frame z (not the ray length), float32, 0 where unknown.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mvsam.errors import InputError


@dataclass
class Camera:
    """Pinhole intrinsics and pose of one view.

    ``distortion`` holds OpenCV coefficients (k1, k2, p1, p2[, k3]) when the loader kept them;
    geometry and projection here assume undistorted images, so loaders undistort when they can.
    """

    K: np.ndarray  # 3x3 float64
    world_from_cam: np.ndarray  # 4x4 float64, OpenCV axes
    width: int
    height: int
    distortion: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64)
        self.world_from_cam = np.asarray(self.world_from_cam, dtype=np.float64)
        if self.K.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got shape {self.K.shape}")
        if self.world_from_cam.shape != (4, 4):
            raise ValueError(f"world_from_cam must be 4x4, got shape {self.world_from_cam.shape}")
        if not np.all(np.isfinite(self.K)) or not np.all(np.isfinite(self.world_from_cam)):
            raise ValueError("camera matrices contain NaN or infinity")
        rotation = self.world_from_cam[:3, :3]
        if abs(np.linalg.det(rotation) - 1.0) > 1e-3 or not np.allclose(
            rotation @ rotation.T, np.eye(3), atol=1e-3
        ):
            raise ValueError("world_from_cam rotation block is not a proper rotation (degenerate pose)")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @property
    def cam_from_world(self) -> np.ndarray:
        """4x4 float64 inverse of ``world_from_cam``."""
        rotation = self.world_from_cam[:3, :3]
        translation = self.world_from_cam[:3, 3]
        out = np.eye(4)
        out[:3, :3] = rotation.T
        out[:3, 3] = -rotation.T @ translation
        return out

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, shape (3,)."""
        return self.world_from_cam[:3, 3].copy()

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project Nx3 world points; returns (Nx2 float (x, y) pixels, N camera-frame depths z)."""
        points_world = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        cam_from_world = self.cam_from_world
        points_cam = points_world @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
        z = points_cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels_h = points_cam @ self.K.T
            xy = pixels_h[:, :2] / pixels_h[:, 2:3]
        return xy, z

    def unproject(self, xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Lift Nx2 (x, y) pixels with N camera-frame depths to Nx3 world points."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        depth = np.asarray(depth, dtype=np.float64).reshape(-1)
        rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ np.linalg.inv(self.K).T
        points_cam = rays * depth[:, None]
        return points_cam @ self.world_from_cam[:3, :3].T + self.world_from_cam[:3, 3]


@dataclass(frozen=True, eq=False)
class LowResDepth:
    """Depth and its confidence at a working resolution (h x w, e.g. plane-sweep's 384x288), kept by a
    :class:`View` instead of full-size arrays: a 1600x1200 view then holds 0.9 MB instead of 15.4 MB
    (a 200-view scene: 0.18 GB instead of 3.1 GB). The view's ``depth`` / ``depth_confidence`` upsample
    it on each read (:func:`mvsam.geometry.mvs.upsample_depth`), so readers see the same arrays as before.
    """

    depth: np.ndarray  # hxw float32 camera z, 0 = unknown
    confidence: np.ndarray  # hxw float32 in [0, 1]


@functools.lru_cache(maxsize=8)
def _upsampled(source: LowResDepth, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-size read-only (depth, confidence) of ``source``; the few latest are kept, so a reader that
    reads a view's depth twice in a row pays one upsampling (8 x 15.4 MB at 1600x1200)."""
    from mvsam.geometry.mvs import upsample_depth

    depth, confidence = upsample_depth(source.depth, source.confidence, width, height)
    depth.flags.writeable = confidence.flags.writeable = False
    return depth, confidence


@dataclass
class View:
    """One image of the scene and whatever geometry is known for it.

    ``depth`` and ``depth_confidence`` are full-size (HxW) when read. They are stored either as given
    (loaders of RGB-D and pointmaps, tests) or, for computed depth, as a :class:`LowResDepth` in
    ``depth_source`` that is upsampled on each read (read-only arrays; setting ``depth`` replaces it).
    """

    name: str  # file name, unique within the scene, e.g. "000000.jpg"
    image_path: Path
    width: int
    height: int
    camera: Camera | None = None
    depth: np.ndarray | None = field(default=None, repr=False)  # HxW float32, camera z, 0 = unknown
    depth_confidence: np.ndarray | None = field(default=None, repr=False)  # HxW float32 in [0, 1]
    depth_range: tuple[float, float] | None = None  # (near, far) camera z of the scene, when the format says
    depth_source: LowResDepth | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.depth_source is not None:  # wins over arrays read from it (dataclasses.replace passes both)
            self._depth = self._confidence = None

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    @property
    def has_depth(self) -> bool:
        """Whether depth is known (stored or low-res), without upsampling it."""
        return self._depth is not None or self.depth_source is not None

    @property
    def has_valid_depth(self) -> bool:
        """Whether any pixel has depth > 0, without upsampling (upsampling keeps some pixel of each
        positive low-res pixel positive: nearest, or bilinear between positive neighbours)."""
        depth = self.depth_source.depth if self._depth is None and self.depth_source else self._depth
        return depth is not None and bool(np.any(depth > 0))

    def _get_depth(self) -> np.ndarray | None:
        if self._depth is None and self.depth_source is not None:
            return _upsampled(self.depth_source, self.width, self.height)[0]
        return self._depth

    def _set_depth(self, depth: np.ndarray | None) -> None:
        self._depth = depth
        self.depth_source = None

    def _get_confidence(self) -> np.ndarray | None:
        if self._depth is None and self.depth_source is not None:
            return _upsampled(self.depth_source, self.width, self.height)[1]
        return self._confidence

    def _set_confidence(self, confidence: np.ndarray | None) -> None:
        self._confidence = confidence

    def load_image(self) -> np.ndarray:
        """The image as HxWx3 uint8 RGB."""
        from mvsam.io.images import read_rgb

        image = read_rgb(self.image_path)
        if image.shape[:2] != (self.height, self.width):
            raise InputError(
                f"{self.image_path}: expected {self.width}x{self.height}, file is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image


# Properties over the dataclass fields: the generated __init__ and dataclasses.replace go through them.
View.depth = property(View._get_depth, View._set_depth)  # type: ignore[assignment]
View.depth_confidence = property(View._get_confidence, View._set_confidence)  # type: ignore[assignment]


@dataclass
class SparsePoints:
    """Sparse SfM points and the views that observed them.

    ``track_point``, ``track_view`` and ``track_xy`` are parallel arrays with one row per
    observation: point index, view index, and the observed (x, y) pixel.
    """

    xyz: np.ndarray  # Nx3 float64 world points
    rgb: np.ndarray  # Nx3 uint8
    track_point: np.ndarray  # M int64
    track_view: np.ndarray  # M int64
    track_xy: np.ndarray  # Mx2 float64

    def observations_in(self, view_index: int) -> tuple[np.ndarray, np.ndarray]:
        """(point indices K, Kx2 (x, y) pixels) of the points seen in one view."""
        rows = self.track_view == view_index
        return self.track_point[rows], self.track_xy[rows]


@dataclass
class Scene:
    """Views of one static scene, with geometry once known.

    ``cache_dir`` holds every expensive product (embeddings, SfM, depth), keyed by content.
    """

    root: Path
    views: list[View]
    source_format: str
    cache_dir: Path
    sparse: SparsePoints | None = None
    notes: list[str] = field(default_factory=list)  # warnings raised while loading

    def __post_init__(self) -> None:
        if not self.views:
            raise InputError(f"{self.root}: the scene has no views")
        names = [view.name for view in self.views]
        if len(set(names)) != len(names):
            raise InputError(f"{self.root}: view names are not unique")

    def __len__(self) -> int:
        return len(self.views)

    @property
    def has_cameras(self) -> bool:
        return all(view.camera is not None for view in self.views)

    @property
    def has_depth(self) -> bool:
        return all(view.has_depth for view in self.views)

    def view_index(self, key: str | int) -> int:
        """Index of a view given its file name, its stem, or a 0-based index (int or digit string).

        Names win over indices: ``"000003"`` means the view whose stem is 000003 if there is one.
        """
        return resolve_view([view.name for view in self.views], key)

    @classmethod
    def load(cls, path: str | Path, **options) -> Scene:
        """Load a scene from any supported layout; see ``mvsam.io.loaders``."""
        from mvsam.io.loaders import load_scene

        return load_scene(path, **options)

    def geometry(self, settings=None, progress: bool = True) -> Scene:
        """Cameras, sparse points and depth for every view, cached (``mvsam.geometry.compute_geometry``)."""
        from mvsam.geometry.pipeline import compute_geometry

        return compute_geometry(self, settings, progress=progress)


def resolve_view(names: list[str], key: str | int, what: str = "view") -> int:
    """Index into ``names`` (file names) of ``key``: a file name, a stem, else a 0-based index.

    Names win over indices, so ``"0007"`` is the file ``0007.jpg`` when there is one, not index 7.
    """
    if isinstance(key, str):
        for index, name in enumerate(names):
            if key in (name, Path(name).stem):
                return index
        if not key.isdigit():
            examples = ", ".join(names[:3])
            raise InputError(f"unknown {what} {key!r}; use a file name (e.g. {examples}) or a 0-based index")
    index = int(key)
    if not 0 <= index < len(names):
        raise InputError(f"{what} index {index} is out of range 0..{len(names) - 1}")
    return index
