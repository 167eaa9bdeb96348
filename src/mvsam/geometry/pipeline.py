"""The public geometry entry point: cameras + sparse points + dense depth for every view, cached on disk.

``compute_geometry(scene)`` (also ``scene.geometry()``) is what every later stage calls. Back-ends, best
available first: cameras from the loader, else SfM; depth provided by the format (RGB-D, pointmaps), else
plane-sweep MVS. Each product is cached under ``scene.cache_dir / "geometry"`` keyed by the image files'
content, the cameras and the settings, and written atomically; a second call only reads the cache.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.cache import (
    atomic_save_npz,
    exclusive_lock,
    hash_array,
    hash_bytes,
    hash_file,
    load_npz,
    remove_orphan_temporaries,
)
from mvsam.errors import InputError
from mvsam.geometry.mvs import MvsSettings, compute_mvs_depth
from mvsam.geometry.sfm import SfmSettings, reconstruct_cameras, triangulate_known_poses
from mvsam.io.loaders.undistort import has_distortion, undistort_points, undistorted_image
from mvsam.scene import Camera, LowResDepth, Scene, SparsePoints

log = logging.getLogger(__name__)

CACHE_VERSION = "1"


@dataclass
class GeometrySettings:
    """What ``compute_geometry`` may run and how; every field takes part in the cache keys."""

    sfm: SfmSettings = field(default_factory=SfmSettings)
    mvs: MvsSettings = field(default_factory=MvsSettings)
    allow_sfm: bool = True  # estimate cameras when the loader gave none (else ValueError)
    # Sparse points for loader cameras when the format has none: True always, False never, None (default)
    # only when something needs them: no plane-sweep depth follows (sparse segmentation, exports), or a view
    # without provided depth has no loader depth range to bound the sweep.
    triangulate: bool | None = None
    compute_depth: bool = True  # plane-sweep depth for views without provided depth

    def validate(self) -> None:
        self.sfm.validate()
        self.mvs.validate()


@dataclass
class GeometryTimings:
    """Seconds spent per step of the last ``compute_geometry`` call, and which steps came from the cache."""

    hashing: float = 0.0
    cameras: float = 0.0
    depth: float = 0.0
    cached: list[str] = field(default_factory=list)
    registration: dict[str, str] = field(default_factory=dict)  # SfM: view -> registered | pnp | unregistered


def _settings_json(settings: object) -> str:
    return json.dumps(asdict(settings), sort_keys=True)


def _images_key(scene: Scene, progress: bool) -> str:
    """Content key of the scene's images: names, sizes and file hashes, in view order."""
    parts = [CACHE_VERSION]
    for view in tqdm(scene.views, desc="hashing images", unit="view", disable=not progress, leave=False):
        if not view.image_path.is_file():
            raise FileNotFoundError(f"image not found: {view.image_path}")
        parts.append(f"{view.name}|{view.width}x{view.height}|{hash_file(view.image_path)}")
    return hash_bytes("\n".join(parts))


def _cameras_key(scene: Scene) -> str:
    parts = []
    for view in scene.views:
        camera = view.camera
        parts.append("none" if camera is None else hash_array(camera.K) + hash_array(camera.world_from_cam))
    return hash_bytes("\n".join(parts))


def _posed_key(images_key: str, scene: Scene, *settings: object) -> str:
    """Cache key of a product of posed images: contents, cameras and the settings that shape it."""
    return hash_bytes(images_key, _cameras_key(scene), *(_settings_json(s) for s in settings))


def _needs_sparse(scene: Scene, settings: GeometrySettings) -> bool:
    """Whether loader cameras need triangulated sparse points (see ``GeometrySettings.triangulate``)."""
    if scene.sparse is not None or settings.triangulate is False:
        return False
    if settings.triangulate or not settings.compute_depth:
        return True
    return any(not v.has_depth and v.depth_range is None for v in scene.views)


def _sparse_arrays(sparse: SparsePoints | None) -> dict[str, np.ndarray]:
    if sparse is None:
        return {}
    return {
        "xyz": sparse.xyz,
        "rgb": sparse.rgb,
        "track_point": sparse.track_point,
        "track_view": sparse.track_view,
        "track_xy": sparse.track_xy,
    }


def _sparse_from_arrays(arrays: dict[str, np.ndarray]) -> SparsePoints | None:
    if "xyz" not in arrays:
        return None
    return SparsePoints(
        arrays["xyz"], arrays["rgb"], arrays["track_point"], arrays["track_view"], arrays["track_xy"]
    )


def _save_cameras(path: Path, scene: Scene, notes: list[str], status: list[str]) -> None:
    count = len(scene.views)
    registered = np.array([v.camera is not None for v in scene.views])
    K = np.zeros((count, 3, 3))
    world_from_cam = np.tile(np.eye(4), (count, 1, 1))
    distortion = np.full((count, 4), np.nan)
    for i, view in enumerate(scene.views):
        if view.camera is not None:
            K[i], world_from_cam[i] = view.camera.K, view.camera.world_from_cam
            if view.camera.distortion is not None:
                distortion[i, : len(view.camera.distortion[:4])] = view.camera.distortion[:4]
    atomic_save_npz(
        path,
        registered=registered,
        K=K,
        world_from_cam=world_from_cam,
        distortion=distortion,
        notes=np.array(notes, dtype=str),
        status=np.array(status, dtype=str),
        **_sparse_arrays(scene.sparse),
    )


def _load_cameras(arrays: dict[str, np.ndarray], scene: Scene) -> tuple[list[str], list[str]]:
    """Fill cameras and sparse points from a cached SfM result; returns its notes and view statuses."""
    if len(arrays["registered"]) != len(scene.views):
        raise ValueError("cached SfM result does not match the scene")
    for i, view in enumerate(scene.views):
        if not arrays["registered"][i]:
            view.camera = None
            continue
        distortion = arrays["distortion"][i]
        view.camera = Camera(
            K=arrays["K"][i],
            world_from_cam=arrays["world_from_cam"][i],
            width=view.width,
            height=view.height,
            distortion=None if np.all(np.isnan(distortion)) else distortion,
        )
    scene.sparse = _sparse_from_arrays(arrays)
    return [str(note) for note in arrays["notes"]], [str(status) for status in arrays["status"]]


def _undistort_views(scene: Scene) -> None:
    """Pinhole everywhere downstream: undistorted image copies in the cache, tracks moved to match."""
    for index, view in enumerate(scene.views):
        camera = view.camera
        if camera is None or not has_distortion(camera.distortion):
            continue
        if scene.sparse is not None:
            rows = scene.sparse.track_view == index
            xy = scene.sparse.track_xy[rows]
            scene.sparse.track_xy[rows] = undistort_points(xy, camera.K, camera.distortion)
        cache = Path(scene.cache_dir)
        view.image_path = undistorted_image(view.image_path, camera.K, camera.distortion, cache)
        camera.distortion = None


def _ensure_cameras(
    scene: Scene,
    settings: GeometrySettings,
    images_key: str,
    cache: Path,
    progress: bool,
    timings: GeometryTimings,
) -> None:
    """Cameras from the loader, else SfM (cached); sparse points by triangulation when missing (cached)."""
    if scene.has_cameras:
        if not _needs_sparse(scene, settings):
            return
        path = cache / "sparse" / f"{_posed_key(images_key, scene, settings.sfm)}.npz"
        arrays = load_npz(path)
        if arrays is not None:
            scene.sparse = _sparse_from_arrays(arrays)
            timings.cached.append("sparse")
            return
        triangulate_known_poses(scene, settings.sfm, progress)
        atomic_save_npz(path, **_sparse_arrays(scene.sparse))
        return
    if not settings.allow_sfm:
        missing = [v.name for v in scene.views if v.camera is None]
        raise InputError(
            f"{len(missing)} of {len(scene.views)} views have no camera (e.g. {', '.join(missing[:3])}) "
            "and SfM is disabled; enable SfM or load a format with cameras (COLMAP, transforms.json, ...)"
        )
    path = cache / "sfm" / f"{hash_bytes(images_key, _settings_json(settings.sfm), scene.source_format)}.npz"
    arrays = load_npz(path)
    if arrays is not None:
        try:
            notes, status = _load_cameras(arrays, scene)
            scene.notes.extend(notes)
            timings.registration = dict(zip([v.name for v in scene.views], status, strict=True))
            timings.cached.append("sfm")
            _undistort_views(scene)
            return
        except (KeyError, ValueError) as error:
            log.warning("ignoring unusable SfM cache entry %s: %s", path, error)
    report = reconstruct_cameras(scene, settings.sfm, progress)
    status = [report.status(v.name) for v in scene.views]
    timings.registration = dict(zip([v.name for v in scene.views], status, strict=True))
    _save_cameras(path, scene, report.notes, status)
    _undistort_views(scene)


def _ensure_depth(
    scene: Scene,
    settings: GeometrySettings,
    images_key: str,
    cache: Path,
    progress: bool,
    timings: GeometryTimings,
) -> None:
    """Plane-sweep depth for posed views without provided depth; cached at working resolution."""
    wanted = [i for i, v in enumerate(scene.views) if v.camera is not None and not v.has_depth]
    if not wanted or not settings.compute_depth:
        return
    sparse_key = "none" if scene.sparse is None else hash_array(scene.sparse.xyz)
    key = hash_bytes(_posed_key(images_key, scene, settings.mvs), sparse_key, str(wanted))
    folder = cache / "depth" / key
    paths = {i: folder / f"{i:05d}_{scene.views[i].stem}.npz" for i in wanted}
    cached = {i: load_npz(path) for i, path in paths.items()}
    if all(arrays is not None for arrays in cached.values()):
        timings.cached.append("depth")
    else:
        results = compute_mvs_depth(scene, settings.mvs, wanted, progress=progress)
        for i in wanted:
            result = results[i]
            if result is None:
                depth = np.zeros((1, 1), np.float32)
                cached[i] = {"depth": depth, "confidence": depth}
            else:
                cached[i] = {"depth": result.depth, "confidence": result.confidence}
            atomic_save_npz(paths[i], **cached[i])
    for i in wanted:  # kept at working resolution, upsampled when read (scene.LowResDepth)
        scene.views[i].depth_source = LowResDepth(cached[i]["depth"], cached[i]["confidence"])


def compute_geometry(
    scene: Scene,
    settings: GeometrySettings | None = None,
    progress: bool = True,
    timings: GeometryTimings | None = None,
) -> Scene:
    """Fill every view's camera, depth and confidence (and ``scene.sparse``) in place; returns the scene.

    Cameras: kept from the loader when every view has one, else SfM (views that fail to register keep
    ``camera=None`` and get no depth; see ``scene.notes``); SfM's lens distortion is removed by pointing
    views at undistorted copies in the cache (same size and K), so every camera is a plain pinhole.
    Depth: kept where the format provided it, else plane-sweep MVS, upsampled to each image's size (HxW
    float32 camera z, 0 = unknown; confidence in [0, 1]). All of it is cached under
    ``scene.cache_dir / "geometry"``. Pass ``timings`` to learn where the time went and what came from the
    cache. Concurrent calls on one scene (other processes included) take turns on a lock in that folder, so
    one computes and the others read its result.
    """
    settings = settings or GeometrySettings()
    settings.validate()
    timings = timings if timings is not None else GeometryTimings()
    cache = Path(scene.cache_dir) / "geometry"
    with exclusive_lock(cache / ".lock", f"the geometry of {scene.root}"):
        remove_orphan_temporaries(cache)
        _compute_locked(scene, settings, progress, timings, cache)
    return scene


def _compute_locked(
    scene: Scene, settings: GeometrySettings, progress: bool, timings: GeometryTimings, cache: Path
) -> None:
    start = time.perf_counter()
    images_key = _images_key(scene, progress)
    timings.hashing = time.perf_counter() - start
    start = time.perf_counter()
    _ensure_cameras(scene, settings, images_key, cache, progress, timings)
    timings.cameras = time.perf_counter() - start
    start = time.perf_counter()
    _ensure_depth(scene, settings, images_key, cache, progress, timings)
    timings.depth = time.perf_counter() - start
    log.info(
        "geometry: cameras %.1fs, depth %.1fs%s",
        timings.cameras,
        timings.depth,
        f" (cached: {', '.join(timings.cached)})" if timings.cached else "",
    )
