"""Cameras from plain photos: structure from motion with pycolmap (SIFT, matching, incremental mapping).

Also triangulates sparse tracks for scenes whose cameras are already known, so every later stage can count
on ``scene.sparse``. SfM's world frame and scale are arbitrary (whatever COLMAP's first pair gives).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pycolmap

from mvsam.io.conventions import K_pixel_centre_to_corner, K_pixel_corner_to_centre
from mvsam.scene import Camera, Scene, SparsePoints

log = logging.getLogger(__name__)

CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


@dataclass
class SfmSettings:
    """Knobs of the SfM back-end; every field takes part in the cache key."""

    max_image_size: int = 1600  # long side used for SIFT (keypoints are rescaled back)
    max_num_features: int = 8192
    triangulation_image_size: int = 1024  # SIFT long side when cameras are known (points only bound depth)
    triangulation_neighbors: int = 8  # with known cameras, match each view with its nearest views only
    exhaustive_max_views: int = 60  # more views (or a video) -> sequential matching
    sequential_overlap: int = 10
    camera_model: str = "SIMPLE_RADIAL"
    single_camera: bool = True  # share intrinsics when all images have one size
    min_num_matches: int = 15
    num_threads: int = -1
    seed: int = 0

    def validate(self) -> None:
        if min(self.max_image_size, self.triangulation_image_size) < 64:
            raise ValueError(
                "SfmSettings image sizes must be >= 64, got "
                f"{self.max_image_size} and {self.triangulation_image_size}"
            )
        if self.max_num_features < 64:
            raise ValueError(f"SfmSettings.max_num_features must be >= 64, got {self.max_num_features}")
        if self.exhaustive_max_views < 2 or self.sequential_overlap < 1 or self.triangulation_neighbors < 1:
            raise ValueError(
                "SfmSettings.exhaustive_max_views must be >= 2, "
                "sequential_overlap and triangulation_neighbors >= 1"
            )
        if self.camera_model not in CAMERA_MODELS:
            raise ValueError(
                f"SfmSettings.camera_model must be one of {CAMERA_MODELS}, got {self.camera_model!r}"
            )


@dataclass
class SfmReport:
    """What SfM achieved: which views got a camera."""

    registered: list[str]
    unregistered: list[str]
    num_points: int
    matching: str  # "exhaustive" | "sequential"
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        total = len(self.registered) + len(self.unregistered)
        text = f"{len(self.registered)}/{total} views registered"
        if self.unregistered:
            text += "; not registered: " + ", ".join(self.unregistered)
        return text + f"; {self.num_points} sparse points ({self.matching} matching)"


def _quiet_colmap() -> None:
    """COLMAP logs every step at INFO through glog; keep warnings only unless debugging."""
    if not log.isEnabledFor(logging.DEBUG):
        pycolmap.logging.minloglevel = 1


@dataclass
class _Workspace:
    """A temporary COLMAP project: the scene's images linked by name, a database and an output folder."""

    root: Path
    images: Path
    database: Path
    output: Path


@contextlib.contextmanager
def _colmap_workspace(scene: Scene, seed: int, prefix: str) -> Iterator[_Workspace]:
    """Quiet, seeded COLMAP with a fresh workspace for ``scene``, deleted afterwards."""
    _quiet_colmap()
    pycolmap.set_random_seed(seed)
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        root = Path(work)
        workspace = _Workspace(root, root / "images", root / "database.db", root / "sparse")
        workspace.images.mkdir()
        workspace.output.mkdir()
        _link_images(scene, workspace.images)
        yield workspace


def _link_images(scene: Scene, folder: Path) -> None:
    """COLMAP reads images by name from one folder; symlink (or copy) each view there under its name."""
    for view in scene.views:
        if not view.image_path.is_file():
            raise FileNotFoundError(f"image not found: {view.image_path}")
        target = folder / view.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(view.image_path.resolve(), target)
        except OSError:
            target.write_bytes(view.image_path.read_bytes())


def _extract_and_match(
    scene: Scene, settings: SfmSettings, database: Path, images: Path, model: str, pairs: Path | None = None
) -> str:
    """SIFT into ``database``, then matching of the listed ``pairs`` (a COLMAP match list), sequential
    (videos, many views) or exhaustive; returns the matching kind."""
    same_size = len({(v.width, v.height) for v in scene.views}) == 1
    mode = (
        pycolmap.CameraMode.SINGLE if settings.single_camera and same_size else pycolmap.CameraMode.PER_IMAGE
    )
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = settings.max_image_size
    extraction.num_threads = settings.num_threads
    extraction.use_gpu = False
    extraction.sift.max_num_features = settings.max_num_features
    pycolmap.extract_features(
        database,
        images,
        image_names=[v.name for v in scene.views],
        camera_mode=mode,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = settings.num_threads
    matching.use_gpu = False
    if pairs is not None:
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pairs
        pycolmap.match_image_pairs(
            database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
        )
        return "pose-neighbours"
    sequential = scene.source_format == "video" or len(scene.views) > settings.exhaustive_max_views
    if sequential:
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = settings.sequential_overlap
        pycolmap.match_sequential(
            database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
        )
        return "sequential"
    pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
    return "exhaustive"


def _camera_from_colmap(camera: pycolmap.Camera, cam_from_world: np.ndarray) -> Camera:
    """Our Camera from a COLMAP camera and its 3x4 cam_from_world (same axes; COLMAP's pixel (0, 0) is the
    top-left pixel's corner, ours its centre). Distortion is kept; ``compute_geometry`` undistorts."""
    params = np.asarray(camera.params, dtype=np.float64)
    name = camera.model_name
    distortion = None
    if name == "SIMPLE_RADIAL":
        distortion = np.array([params[3], 0.0, 0.0, 0.0])
    elif name == "RADIAL":
        distortion = np.array([params[3], params[4], 0.0, 0.0])
    elif name == "OPENCV":
        distortion = params[4:8].copy()
    cam_from_world_4 = np.eye(4)
    cam_from_world_4[:3, :4] = cam_from_world
    rotation = cam_from_world_4[:3, :3]
    world_from_cam = np.eye(4)
    world_from_cam[:3, :3] = rotation.T
    world_from_cam[:3, 3] = -rotation.T @ cam_from_world_4[:3, 3]
    return Camera(
        K=K_pixel_corner_to_centre(np.asarray(camera.calibration_matrix(), dtype=np.float64)),
        world_from_cam=world_from_cam,
        width=int(camera.width),
        height=int(camera.height),
        distortion=distortion,
    )


def _sparse_from_reconstruction(
    reconstruction: pycolmap.Reconstruction, index_of: dict[str, int]
) -> SparsePoints:
    """SparsePoints whose track_view indexes ``scene.views`` (via image names)."""
    images = reconstruction.images
    xyz, rgb, track_point, track_view, track_xy = [], [], [], [], []
    for point_index, point in enumerate(reconstruction.points3D.values()):
        xyz.append(point.xyz)
        rgb.append(point.color)
        for element in point.track.elements:
            image = images[element.image_id]
            track_point.append(point_index)
            track_view.append(index_of[image.name])
            track_xy.append(image.points2D[element.point2D_idx].xy - 0.5)  # COLMAP: pixel corner at 0
    return SparsePoints(
        xyz=np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
        rgb=np.asarray(rgb, dtype=np.uint8).reshape(-1, 3),
        track_point=np.asarray(track_point, dtype=np.int64),
        track_view=np.asarray(track_view, dtype=np.int64),
        track_xy=np.asarray(track_xy, dtype=np.float64).reshape(-1, 2),
    )


def run_sfm(scene: Scene, settings: SfmSettings | None = None) -> Scene:
    """``reconstruct_cameras`` returning the scene (its summary is the last entry of ``scene.notes``)."""
    reconstruct_cameras(scene, settings)
    return scene


def reconstruct_cameras(scene: Scene, settings: SfmSettings | None = None) -> SfmReport:
    """Estimate every view's camera and sparse points from the images alone (poses already set are replaced).

    Fills ``view.camera`` of each registered view (others get ``camera=None``) and ``scene.sparse`` in place.
    Cameras keep COLMAP's lens distortion and tracks are in the original (distorted) images;
    ``compute_geometry`` then undistorts images and tracks so everything downstream is pinhole.
    Unregistered views are warned about and the summary ("18/20 views registered; not registered: ...") is
    appended to ``scene.notes``. Raises ValueError with fewer than 2 views or fewer than 2 registered views.
    """
    settings = settings or SfmSettings()
    settings.validate()
    if len(scene.views) < 2:
        raise ValueError(f"SfM needs at least 2 views, the scene has {len(scene.views)}")
    index_of = {view.name: i for i, view in enumerate(scene.views)}
    with _colmap_workspace(scene, settings.seed, "mvsam_sfm_") as work:
        images, database, output = work.images, work.database, work.output
        matching = _extract_and_match(scene, settings, database, images, settings.camera_model)
        options = pycolmap.IncrementalPipelineOptions()
        options.min_num_matches = settings.min_num_matches
        options.num_threads = settings.num_threads
        options.random_seed = settings.seed
        options.multiple_models = True
        options.min_model_size = 2
        reconstructions = pycolmap.incremental_mapping(database, images, output, options=options)
    if not reconstructions:
        raise ValueError(
            f"SfM could not register any pair of views in {scene.root}: the images may not overlap, be too "
            "blurry or textureless; provide cameras (COLMAP, transforms.json, ...) instead"
        )
    reconstruction = max(reconstructions.values(), key=lambda r: r.num_reg_images())
    registered_names = {image.name for image in reconstruction.images.values() if image.has_pose}
    if len(registered_names) < 2:
        raise ValueError(
            f"SfM registered only {len(registered_names)} view(s) of {scene.root}; need at least 2"
        )
    for view in scene.views:
        view.camera = None
    for image in reconstruction.images.values():
        if image.has_pose:
            camera = _camera_from_colmap(image.camera, image.cam_from_world().matrix())
            scene.views[index_of[image.name]].camera = camera
    scene.sparse = _sparse_from_reconstruction(reconstruction, index_of)
    report = SfmReport(
        registered=[v.name for v in scene.views if v.name in registered_names],
        unregistered=[v.name for v in scene.views if v.name not in registered_names],
        num_points=len(scene.sparse.xyz),
        matching=matching,
    )
    if len(reconstructions) > 1:
        report.notes.append(f"SfM found {len(reconstructions)} separate models; kept the largest")
    report.notes.append("SfM: " + report.summary())
    if report.unregistered:
        warnings.warn(report.notes[-1], stacklevel=2)
    scene.notes.extend(report.notes)
    log.info("SfM: %s", report.summary())
    return report


def _pose_neighbour_pairs(scene: Scene, count: int) -> str:
    """COLMAP match list pairing each view with its ``count`` nearest views that look the same way."""
    pairs = set()
    for i, view in enumerate(scene.views):
        axis = view.camera.world_from_cam[:3, 2]
        candidates = sorted(
            (float(np.linalg.norm(other.camera.center - view.camera.center)), j)
            for j, other in enumerate(scene.views)
            if j != i and float(axis @ other.camera.world_from_cam[:3, 2]) > 0.0
        )
        pairs.update((min(i, j), max(i, j)) for _, j in candidates[:count])
    return "".join(f"{scene.views[i].name} {scene.views[j].name}\n" for i, j in sorted(pairs))


def triangulate_known_poses(scene: Scene, settings: SfmSettings | None = None) -> SparsePoints:
    """Sparse points for a scene whose cameras are all known: SIFT, matching of pose-neighbour pairs, and
    COLMAP's point triangulator.

    Distortion is ignored (cameras are taken as pinhole, as the loaders deliver undistorted images).
    Sets and returns ``scene.sparse``.
    """
    settings = settings or SfmSettings()
    settings.validate()
    if len(scene.views) < 2:
        raise ValueError(f"triangulation needs at least 2 views, the scene has {len(scene.views)}")
    if not scene.has_cameras:
        missing = [v.name for v in scene.views if v.camera is None][:5]
        raise ValueError(f"triangulation needs every camera; missing for {', '.join(missing)}")
    index_of = {view.name: i for i, view in enumerate(scene.views)}
    with _colmap_workspace(scene, settings.seed, "mvsam_tri_") as work:
        images, database, output = work.images, work.database, work.output
        per_image = SfmSettings(
            **{
                **vars(settings),
                "single_camera": False,
                "max_image_size": min(settings.max_image_size, settings.triangulation_image_size),
            }
        )
        pairs = work.root / "pairs.txt"
        pairs.write_text(_pose_neighbour_pairs(scene, settings.triangulation_neighbors))
        _extract_and_match(scene, per_image, database, images, "PINHOLE", pairs)
        reconstruction = pycolmap.Reconstruction()
        db = pycolmap.Database.open(database)
        try:
            for image in db.read_all_images():
                camera = scene.views[index_of[image.name]].camera
                colmap_camera = db.read_camera(image.camera_id)
                K = K_pixel_centre_to_corner(camera.K)
                colmap_camera.params = [K[0, 0], K[1, 1], K[0, 2], K[1, 2]]
                db.update_camera(colmap_camera)
                reconstruction.add_camera_with_trivial_rig(colmap_camera)
                pose = pycolmap.Rigid3d(camera.cam_from_world[:3, :4])
                bare = pycolmap.Image(name=image.name, camera_id=image.camera_id, image_id=image.image_id)
                reconstruction.add_image_with_trivial_frame(bare, pose)
        finally:
            db.close()
        options = pycolmap.IncrementalPipelineOptions()
        options.num_threads = settings.num_threads
        options.random_seed = settings.seed
        reconstruction = pycolmap.triangulate_points(
            reconstruction, database, images, output, options=options
        )
    scene.sparse = _sparse_from_reconstruction(reconstruction, index_of)
    log.info("triangulated %d sparse points from known cameras", len(scene.sparse.xyz))
    return scene.sparse
