"""Cameras from plain photos: structure from motion with pycolmap.

Features are XFeat (learned, CPU-fast; :mod:`mvsam.geometry.features`, matched by mutual nearest neighbours
or LighterGlue and imported into a COLMAP database, the hloc approach) or COLMAP's SIFT; then geometric
verification and COLMAP's incremental mapper, with options that let a handful of views initialise. Views
the mapper leaves out are registered afterwards by PnP + RANSAC against the triangulated points.
Runs are deterministic (seeded, single-threaded solvers) and the COLMAP workspace lives in the scene cache,
deleted afterwards; workspaces a killed run left behind are removed by the next run.

Also triangulates sparse tracks for scenes whose cameras are already known, so every later stage can count
on ``scene.sparse``. SfM's world frame and scale are arbitrary (whatever COLMAP's first pair gives).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pycolmap
from tqdm import tqdm

from mvsam.cache import process_alive
from mvsam.geometry.features import (
    Features,
    match_lighterglue,
    match_mutual_nn,
    overlap_counts,
    scene_features,
)
from mvsam.io.conventions import K_pixel_centre_to_corner, K_pixel_corner_to_centre
from mvsam.scene import Camera, Scene, SparsePoints

log = logging.getLogger(__name__)

CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
FEATURES = ("xfeat", "sift")
MATCHERS = ("mutual_nn", "lighterglue")
WORKSPACE_FOLDER = "colmap_work"  # under the scene cache; one sub-folder per running SfM


@dataclass
class SfmSettings:
    """Knobs of the SfM back-end; every field takes part in the cache key."""

    features: str = "xfeat"  # "xfeat" | "sift"
    matcher: str = "mutual_nn"  # XFeat matching: "mutual_nn" | "lighterglue"
    max_image_size: int = 1600  # long side used for SIFT (keypoints are rescaled back)
    max_num_features: int = 8192  # SIFT
    xfeat_image_size: int = 1024  # long side used for XFeat
    xfeat_num_features: int = 4096
    min_cosine: float = 0.82  # mutual-NN matches need at least this descriptor similarity
    match_ratio: float = 0.95  # and a nearest/second-nearest distance ratio below this (1: no test)
    init_min_num_inliers: int = 50  # mapper: inliers of the initial pair (COLMAP: 100)
    init_min_tri_angle: float = 8.0  # mapper: degrees between the initial pair's rays (COLMAP: 16)
    abs_pose_min_num_inliers: int = 15  # mapper and PnP: 2D-3D inliers to register a view (COLMAP: 30)
    triangulation_image_size: int = 1024  # SIFT long side when cameras are known (points only bound depth)
    triangulation_neighbors: int = 8  # with known cameras, match each view with its nearest views only
    exhaustive_max_views: int = 60  # more views (or a video) -> sequential matching
    sequential_overlap: int = 10
    # XFeat on more than retrieval_above views (not a video): match each view with its retrieval_neighbors
    # most overlapping views only, found by matching the retrieval_keypoints strongest keypoints of all pairs
    retrieval_above: int = 20
    retrieval_neighbors: int = 10
    retrieval_keypoints: int = 512
    camera_model: str = "SIMPLE_RADIAL"
    single_camera: bool = True  # share intrinsics when all images have one size
    # After mapping, a camera shared by all views is refined in one more bundle adjustment: its principal
    # point is freed (COLMAP keeps it at the image centre) when at least principal_point_min_views views share
    # it, and its lens distortion is kept only when it lowers the mean reprojection error by at least
    # distortion_min_gain (a fraction); otherwise the lens is taken as distortion-free (_refine_intrinsics)
    # Defaults chosen on fern, fox and DTU views 2, 7, ..., 47 (5-10 views): freeing the principal point made
    # rotations and principal points worse there, and distortion lowered the error by < 0.6% everywhere
    principal_point_min_views: int = 0  # 0: never free the principal point
    distortion_min_gain: float = 0.02  # 0: always keep the mapper's lens model as it is
    min_num_matches: int = 15
    num_threads: int = 1  # solvers single-threaded: two runs give identical cameras (2-core machines)
    seed: int = 0

    def validate(self) -> None:
        if min(self.max_image_size, self.triangulation_image_size) < 64:
            raise ValueError(
                "SfmSettings image sizes must be >= 64, got "
                f"{self.max_image_size} and {self.triangulation_image_size}"
            )
        if self.max_num_features < 64:
            raise ValueError(f"SfmSettings.max_num_features must be >= 64, got {self.max_num_features}")
        if (
            self.exhaustive_max_views < 2
            or min(self.sequential_overlap, self.triangulation_neighbors, self.retrieval_neighbors) < 1
            or self.retrieval_above < 2
            or self.retrieval_keypoints < 16
        ):
            raise ValueError(
                "SfmSettings.exhaustive_max_views and retrieval_above must be >= 2, sequential_overlap, "
                "triangulation_neighbors and retrieval_neighbors >= 1, retrieval_keypoints >= 16"
            )
        if self.features not in FEATURES or self.matcher not in MATCHERS:
            raise ValueError(
                f"SfmSettings.features must be one of {FEATURES} and matcher one of {MATCHERS}, got "
                f"{self.features!r} and {self.matcher!r}"
            )
        if self.xfeat_image_size < 64 or self.xfeat_num_features < 64:
            raise ValueError("SfmSettings.xfeat_image_size and xfeat_num_features must be >= 64")
        if self.principal_point_min_views < 0 or not 0.0 <= self.distortion_min_gain < 1.0:
            raise ValueError(
                "SfmSettings.principal_point_min_views must be >= 0 and distortion_min_gain in [0, 1), got "
                f"{self.principal_point_min_views} and {self.distortion_min_gain}"
            )
        if self.camera_model not in CAMERA_MODELS:
            raise ValueError(
                f"SfmSettings.camera_model must be one of {CAMERA_MODELS}, got {self.camera_model!r}"
            )


@dataclass
class SfmTimings:
    """Wall seconds per SfM stage. COLMAP's SIFT matching verifies each pair as it goes, so for SIFT
    ``matching`` includes verification and ``verification`` is 0."""

    extraction: float = 0.0
    matching: float = 0.0
    verification: float = 0.0
    mapping: float = 0.0
    pnp: float = 0.0

    @property
    def total(self) -> float:
        return self.extraction + self.matching + self.verification + self.mapping + self.pnp


@dataclass
class SfmReport:
    """What SfM achieved: which views got a camera, and how."""

    registered: list[str]  # by the incremental mapper
    unregistered: list[str]
    num_points: int
    matching: str  # "exhaustive" | "sequential" | "retrieval"
    pnp: list[str] = field(default_factory=list)  # registered afterwards by PnP against the points
    features: str = "sift"
    notes: list[str] = field(default_factory=list)
    seconds: SfmTimings = field(default_factory=SfmTimings)
    pairs: int = 0  # view pairs matched

    def summary(self) -> str:
        total = len(self.registered) + len(self.pnp) + len(self.unregistered)
        text = f"{len(self.registered) + len(self.pnp)}/{total} views registered"
        if self.pnp:
            text += f" ({len(self.pnp)} by PnP: {', '.join(self.pnp)})"
        if self.unregistered:
            text += "; not registered: " + ", ".join(self.unregistered)
        return text + f"; {self.num_points} sparse points ({self.features}, {self.matching} matching)"

    def status(self, name: str) -> str:
        """How a view got its camera: "registered", "pnp" or "unregistered"."""
        return "pnp" if name in self.pnp else "unregistered" if name in self.unregistered else "registered"


@contextlib.contextmanager
def _stage(description: str, progress: bool) -> Iterator[None]:
    """A one-step progress bar for a pycolmap call that reports nothing while it runs: the stage's name
    is on screen from its start, with the seconds it took at its end."""
    bar = tqdm(total=1, desc=description, bar_format="{desc}: {elapsed}", disable=not progress, leave=False)
    try:
        yield
        bar.update(1)
    finally:
        bar.close()


@contextlib.contextmanager
def _timed(timings: SfmTimings, stage: str) -> Iterator[None]:
    """Add the block's wall seconds to ``timings.<stage>``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        setattr(timings, stage, getattr(timings, stage) + time.perf_counter() - start)


def _quiet_colmap() -> None:
    """COLMAP logs every step at INFO through glog; keep warnings only unless debugging, and never write
    log files (stderr only)."""
    pycolmap.logging.logtostderr = True
    if not log.isEnabledFor(logging.DEBUG):
        pycolmap.logging.minloglevel = 1


@dataclass
class _Workspace:
    """A temporary COLMAP project: the scene's images linked by name, a database and an output folder."""

    root: Path
    images: Path
    database: Path
    output: Path


def clean_stale_workspaces(folder: Path) -> list[Path]:
    """Delete COLMAP workspaces under ``folder`` whose owning process is gone (a killed run); returns them."""
    removed = []
    if not folder.is_dir():
        return removed
    for child in folder.iterdir():
        owner = child / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            pid = None
        if pid is None or not process_alive(pid):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


@contextlib.contextmanager
def _colmap_workspace(scene: Scene, seed: int, prefix: str) -> Iterator[_Workspace]:
    """Quiet, seeded COLMAP with a fresh workspace for ``scene`` inside its cache, deleted afterwards."""
    _quiet_colmap()
    pycolmap.set_random_seed(seed)
    folder = Path(scene.cache_dir) / "geometry" / WORKSPACE_FOLDER
    for stale in clean_stale_workspaces(folder):
        log.info("removed a stale SfM workspace %s", stale)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=folder) as work:
        root = Path(work)
        (root / "owner.pid").write_text(str(os.getpid()))
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


def _camera_mode(scene: Scene, settings: SfmSettings) -> pycolmap.CameraMode:
    same_size = len({(v.width, v.height) for v in scene.views}) == 1
    single = settings.single_camera and same_size
    return pycolmap.CameraMode.SINGLE if single else pycolmap.CameraMode.PER_IMAGE


def _pairs(
    scene: Scene, settings: SfmSettings, features: Sequence[Features] | None = None
) -> tuple[list[tuple[int, int]], str]:
    """View index pairs (i < j) to match and the kind: sequential (videos, many views), retrieval (XFeat
    ``features`` of more than ``retrieval_above`` photos) or exhaustive."""
    count = len(scene.views)
    if scene.source_format == "video" or count > settings.exhaustive_max_views:
        overlap = settings.sequential_overlap
        return [(i, j) for i in range(count) for j in range(i + 1, min(count, i + 1 + overlap))], "sequential"
    if features is not None and count > settings.retrieval_above:
        counts = overlap_counts(
            features, settings.retrieval_keypoints, settings.min_cosine, settings.match_ratio
        )
        chosen = set()
        for i in range(count):
            partners = [j for j in np.argsort(-counts[i], kind="stable") if j != i]
            chosen.update((min(i, int(j)), max(i, int(j))) for j in partners[: settings.retrieval_neighbors])
        return sorted(chosen), "retrieval"
    return list(itertools.combinations(range(count), 2)), "exhaustive"


def _xfeat_into_database(
    scene: Scene, settings: SfmSettings, work: _Workspace, model: str, progress: bool, timings: SfmTimings
) -> tuple[str, dict[tuple[int, int], np.ndarray]]:
    """XFeat keypoints and matches written into the workspace's COLMAP database, then geometric
    verification; returns the matching kind and the raw matches per view pair (for PnP later)."""
    with _timed(timings, "extraction"):
        features = scene_features(
            scene, range(len(scene.views)), settings.xfeat_image_size, settings.xfeat_num_features, progress
        )
    pycolmap.Database.open(work.database).close()  # import_images needs the file
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = model
    pycolmap.import_images(
        work.database,
        work.images,
        camera_mode=_camera_mode(scene, settings),
        image_names=[v.name for v in scene.views],
        options=reader,
    )
    with _timed(timings, "matching"):
        pairs, kind = _pairs(scene, settings, features)
    matches: dict[tuple[int, int], np.ndarray] = {}
    with _timed(timings, "matching"):
        for i, j in tqdm(pairs, desc="SfM matching", unit="pair", disable=not progress, leave=False):
            if settings.matcher == "lighterglue":
                matches[i, j] = match_lighterglue(features[i], features[j])
            else:
                matches[i, j] = match_mutual_nn(
                    features[i], features[j], settings.min_cosine, settings.match_ratio
                )
    db = pycolmap.Database.open(work.database)
    try:
        ids = {image.name: image.image_id for image in db.read_all_images()}
        for index, view in enumerate(scene.views):
            # COLMAP puts the centre of the top-left pixel at (0.5, 0.5)
            db.write_keypoints(ids[view.name], features[index].xy + np.float32(0.5))
        for (i, j), found in matches.items():
            if len(found):
                db.write_matches(ids[scene.views[i].name], ids[scene.views[j].name], found.astype(np.uint32))
    finally:
        db.close()
    pair_list = work.root / "pairs.txt"
    pair_list.write_text("".join(f"{scene.views[i].name} {scene.views[j].name}\n" for i, j in pairs))
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = settings.seed
    with _stage(f"SfM verifying {len(pairs)} pairs", progress), _timed(timings, "verification"):
        pycolmap.verify_matches(work.database, pair_list, options=verification)
    return kind, matches


def _sift_into_database(
    scene: Scene,
    settings: SfmSettings,
    database: Path,
    images: Path,
    model: str,
    pairs: Path | None = None,
    progress: bool = False,
    timings: SfmTimings | None = None,
) -> str:
    """SIFT into ``database``, then matching of the listed ``pairs`` (a COLMAP match list), sequential
    (videos, many views) or exhaustive; returns the matching kind."""
    timings = timings if timings is not None else SfmTimings()
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = model
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.max_image_size = settings.max_image_size
    extraction.num_threads = settings.num_threads
    extraction.use_gpu = False
    extraction.sift.max_num_features = settings.max_num_features
    with _stage(f"SfM SIFT features of {len(scene.views)} views", progress), _timed(timings, "extraction"):
        pycolmap.extract_features(
            database,
            images,
            image_names=[v.name for v in scene.views],
            camera_mode=_camera_mode(scene, settings),
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
        with _stage("SfM SIFT matching of pose-neighbour pairs", progress):
            pycolmap.match_image_pairs(
                database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
            )
        return "pose-neighbours"
    _, kind = _pairs(scene, settings)
    with _stage(f"SfM SIFT matching ({kind})", progress), _timed(timings, "matching"):
        if kind == "sequential":
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = settings.sequential_overlap
            pycolmap.match_sequential(
                database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu
            )
        else:
            pycolmap.match_exhaustive(database, matching_options=matching, device=pycolmap.Device.cpu)
    return kind


def _sift_matches(scene: Scene, database: Path) -> dict[tuple[int, int], np.ndarray]:
    """Raw SIFT matches per view index pair, read back from the database."""
    db = pycolmap.Database.open(database)
    try:
        index_of = {image.image_id: scene.view_index(image.name) for image in db.read_all_images()}
        found = {}
        for i, j in itertools.combinations(sorted(index_of), 2):
            if db.exists_matches(i, j):
                pair = np.asarray(db.read_matches(i, j), dtype=np.int64).reshape(-1, 2)
                a, b = index_of[i], index_of[j]
                found[(a, b) if a < b else (b, a)] = pair if a < b else pair[:, ::-1]
        return found
    finally:
        db.close()


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
    reconstruction: pycolmap.Reconstruction,
    index_of: dict[str, int],
    extra: dict[int, tuple[object, np.ndarray, np.ndarray]] | None = None,
    keypoints: dict[int, np.ndarray] | None = None,
) -> SparsePoints:
    """SparsePoints whose track_view indexes ``scene.views`` (via image names); ``extra`` adds observations
    of views registered outside the reconstruction (view -> (pose, keypoint indices, point3D ids)) whose
    COLMAP pixel coordinates are in ``keypoints``."""
    images = reconstruction.images
    xyz, rgb, track_point, track_view, track_xy = [], [], [], [], []
    row_of = {}
    for point_index, (point_id, point) in enumerate(reconstruction.points3D.items()):
        row_of[point_id] = point_index
        xyz.append(point.xyz)
        rgb.append(point.color)
        for element in point.track.elements:
            image = images[element.image_id]
            track_point.append(point_index)
            track_view.append(index_of[image.name])
            track_xy.append(image.points2D[element.point2D_idx].xy - 0.5)  # COLMAP: pixel corner at 0
    for view_index, (_, own, point_ids) in (extra or {}).items():
        for keypoint, point_id in zip(own, point_ids, strict=True):
            track_point.append(row_of[int(point_id)])
            track_view.append(view_index)
            track_xy.append(keypoints[view_index][keypoint] - 0.5)
    return SparsePoints(
        xyz=np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
        rgb=np.asarray(rgb, dtype=np.uint8).reshape(-1, 3),
        track_point=np.asarray(track_point, dtype=np.int64),
        track_view=np.asarray(track_view, dtype=np.int64),
        track_xy=np.asarray(track_xy, dtype=np.float64).reshape(-1, 2),
    )


def run_sfm(scene: Scene, settings: SfmSettings | None = None, progress: bool = False) -> Scene:
    """``reconstruct_cameras`` returning the scene (its summary is the last entry of ``scene.notes``)."""
    reconstruct_cameras(scene, settings, progress)
    return scene


def _mapper_options(settings: SfmSettings) -> pycolmap.IncrementalPipelineOptions:
    """Incremental mapping that can start from a few views: seeded, single-threaded (so two runs give the
    same cameras), with a lower bar for the initial pair and for registering a view."""
    options = pycolmap.IncrementalPipelineOptions()
    options.min_num_matches = settings.min_num_matches
    options.num_threads = settings.num_threads
    options.random_seed = settings.seed
    options.multiple_models = True
    options.min_model_size = 2
    options.init_num_trials = 400
    options.mapper.init_min_num_inliers = settings.init_min_num_inliers
    options.mapper.init_min_tri_angle = settings.init_min_tri_angle
    options.mapper.abs_pose_min_num_inliers = settings.abs_pose_min_num_inliers
    options.mapper.num_threads = settings.num_threads
    options.mapper.random_seed = settings.seed
    return options


# lens models compared after mapping: each model with distortion and its pinhole counterpart (same focal
# and principal point parameters first), both ways
PINHOLE_OF = {"SIMPLE_RADIAL": "SIMPLE_PINHOLE", "RADIAL": "SIMPLE_PINHOLE", "OPENCV": "PINHOLE"}
RADIAL_OF = {"SIMPLE_PINHOLE": "SIMPLE_RADIAL", "PINHOLE": "OPENCV"}


def _bundle_adjust(reconstruction: pycolmap.Reconstruction, principal_point: bool, threads: int) -> float:
    """Global bundle adjustment of every camera, pose and point in place; returns the mean reprojection
    error (pixels) afterwards."""
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_principal_point = principal_point
    options.print_summary = False
    options.ceres.solver_options.num_threads = threads
    config = pycolmap.BundleAdjustmentConfig()
    for image_id in reconstruction.reg_image_ids():
        config.add_image(image_id)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    # the adjuster itself, not pycolmap.bundle_adjustment, which logs to stderr whatever the log level
    pycolmap.create_default_bundle_adjuster(options, config, reconstruction).solve()
    reconstruction.update_point_3d_errors()
    return float(reconstruction.compute_mean_reprojection_error())


def _with_model(reconstruction: pycolmap.Reconstruction, model: str) -> pycolmap.Reconstruction:
    """A copy of a one-camera ``reconstruction`` whose camera is switched to ``model``: focal and principal
    point kept, distortion dropped or started at zero."""
    copy = pycolmap.Reconstruction(reconstruction)
    camera = next(iter(copy.cameras.values()))
    params = np.asarray(camera.params, dtype=np.float64)
    count = len(pycolmap.Camera.create_from_model_name(0, model, 1.0, camera.width, camera.height).params)
    camera.model = getattr(pycolmap.CameraModelId, model)
    core = 4 if "PINHOLE" in (model, PINHOLE_OF.get(model)) else 3  # focal(s) + principal point
    camera.params = np.concatenate([params[:core], np.zeros(count - core)])
    return copy


def _distortion_of(reconstruction: pycolmap.Reconstruction) -> np.ndarray:
    camera = next(iter(reconstruction.cameras.values()))
    core = 4 if camera.model_name in ("PINHOLE", "OPENCV") else 3
    return np.asarray(camera.params, dtype=np.float64)[core:]


def _refine_intrinsics(
    reconstruction: pycolmap.Reconstruction, settings: SfmSettings
) -> tuple[pycolmap.Reconstruction, list[str]]:
    """A camera shared by every registered view, refined once more and its lens model chosen; returns the
    reconstruction to keep (``reconstruction`` adjusted in place, or a copy with the other lens model) and
    notes on what changed.

    The incremental mapper keeps the principal point at the image centre and fits lens distortion to
    whatever views it has; on a rectified or mildly distorted lens that distortion is fitted noise, and the
    undistortion ``compute_geometry`` then applies warps every image, its depth and its masks. So: with at
    least ``principal_point_min_views`` views the principal point is freed; and the camera is bundle
    adjusted both as a pinhole and with radial distortion (whichever the mapper did not use is derived
    from its result), the distortion kept only when it lowers the mean reprojection error by at least
    ``distortion_min_gain`` of the pinhole's. Per-image cameras (images of different sizes) are left alone.
    """
    if reconstruction.num_cameras() != 1:
        return reconstruction, []
    model = next(iter(reconstruction.cameras.values())).model_name
    principal_point = 0 < settings.principal_point_min_views <= reconstruction.num_reg_images()
    compare = settings.distortion_min_gain > 0 and (model in PINHOLE_OF or model in RADIAL_OF)
    notes = []
    if principal_point:
        notes.append(f"SfM: principal point refined ({reconstruction.num_reg_images()} views share a camera)")
    if not compare:
        if principal_point:
            _bundle_adjust(reconstruction, principal_point, settings.num_threads)
        return reconstruction, notes
    if model in PINHOLE_OF:
        radial, pinhole = reconstruction, _with_model(reconstruction, PINHOLE_OF[model])
    else:
        radial, pinhole = _with_model(reconstruction, RADIAL_OF[model]), reconstruction
    pinhole_error = _bundle_adjust(pinhole, principal_point, settings.num_threads)
    radial_error = _bundle_adjust(radial, principal_point, settings.num_threads)
    gain = (pinhole_error - radial_error) / max(pinhole_error, 1e-12)
    distortion = np.round(_distortion_of(radial), 4).tolist()
    keep = radial if gain >= settings.distortion_min_gain else pinhole
    notes.append(
        f"SfM: lens distortion {distortion} lowers the reprojection error by {100 * gain:.2f}% "
        f"({'>=' if keep is radial else '<'} {100 * settings.distortion_min_gain:.2f}%): "
        + ("kept" if keep is radial else "the camera is taken as a pinhole")
    )
    return keep, notes


def _register_by_pnp(
    scene: Scene,
    reconstruction: pycolmap.Reconstruction,
    matches: dict[tuple[int, int], np.ndarray],
    keypoints: dict[int, np.ndarray],
    settings: SfmSettings,
) -> dict[int, tuple[pycolmap.Rigid3d, np.ndarray, np.ndarray]]:
    """Absolute poses for views the mapper left out: their raw matches to registered views' keypoints that
    have a 3D point give 2D-3D pairs for PnP + LO-RANSAC (COLMAP's estimator, then refinement).

    ``keypoints`` maps view index -> Nx2 COLMAP pixel coordinates. Returns view index -> (cam_from_world,
    inlier keypoint indices of that view, their 3D point ids).
    """
    by_name = {image.name: image for image in reconstruction.images.values() if image.has_pose}
    point_of: dict[int, np.ndarray] = {}  # view index -> point3D id per keypoint (-1: none)
    for index, view in enumerate(scene.views):
        image = by_name.get(view.name)
        if image is not None:
            point_of[index] = np.array(
                [p.point3D_id if p.has_point3D() else -1 for p in image.points2D], dtype=np.int64
            )
    camera = next(iter(reconstruction.cameras.values()))
    found = {}
    for index, view in enumerate(scene.views):
        if (
            index in point_of
            or index not in keypoints
            or (view.width, view.height)
            != (
                camera.width,
                camera.height,
            )
        ):
            continue  # registered, or no camera of its size to pose
        pairs: dict[int, int] = {}  # keypoint of this view -> point3D id
        for (i, j), pair in matches.items():
            if index not in (i, j) or (j if i == index else i) not in point_of:
                continue
            own, other = (pair[:, 0], pair[:, 1]) if i == index else (pair[:, 1], pair[:, 0])
            ids = point_of[j if i == index else i][other]
            for keypoint, point_id in zip(own[ids >= 0], ids[ids >= 0], strict=True):
                pairs.setdefault(int(keypoint), int(point_id))
        if len(pairs) < settings.abs_pose_min_num_inliers:
            continue
        own = np.array(list(pairs), dtype=np.int64)
        point_ids = np.array(list(pairs.values()), dtype=np.int64)
        xyz = np.array([reconstruction.points3D[k].xyz for k in point_ids])
        options = pycolmap.AbsolutePoseEstimationOptions()
        options.ransac.max_error = 8.0
        options.ransac.random_seed = settings.seed
        options.estimate_focal_length = False
        result = pycolmap.estimate_and_refine_absolute_pose(
            keypoints[index][own].astype(np.float64), xyz, camera, options
        )
        if result is None or int(result["num_inliers"]) < settings.abs_pose_min_num_inliers:
            continue
        inliers = np.asarray(result["inlier_mask"], dtype=bool)
        found[index] = (result["cam_from_world"], own[inliers], point_ids[inliers])
    return found


def reconstruct_cameras(
    scene: Scene, settings: SfmSettings | None = None, progress: bool = False
) -> SfmReport:
    """Estimate every view's camera and sparse points from the images alone (poses already set are replaced).

    Fills ``view.camera`` of each registered view (others get ``camera=None``) and ``scene.sparse`` in place.
    Views the mapper does not register are tried again by PnP against its points (XFeat only: SIFT
    matches are tried too when the database has them). Cameras keep COLMAP's lens distortion and tracks are
    in the original (distorted) images; ``compute_geometry`` then undistorts images and tracks so
    everything downstream is pinhole. Unregistered views are warned about and the summary ("18/20 views
    registered; not registered: ...") is appended to ``scene.notes``. Raises ValueError with fewer than 2
    views or fewer than 2 registered views.
    """
    settings = settings or SfmSettings()
    settings.validate()
    if len(scene.views) < 2:
        raise ValueError(f"SfM needs at least 2 views, the scene has {len(scene.views)}")
    index_of = {view.name: i for i, view in enumerate(scene.views)}
    timings = SfmTimings()
    with _colmap_workspace(scene, settings.seed, "mvsam_sfm_") as work:
        images, database, output = work.images, work.database, work.output
        if settings.features == "xfeat":
            matching, matches = _xfeat_into_database(
                scene, settings, work, settings.camera_model, progress, timings
            )
        else:
            matching = _sift_into_database(
                scene, settings, database, images, settings.camera_model, progress=progress, timings=timings
            )
            matches = _sift_matches(scene, database)
        pairs = len(matches) if settings.features == "xfeat" else len(_pairs(scene, settings)[0])
        keypoints = {}
        db = pycolmap.Database.open(database)
        try:
            for image in db.read_all_images():
                keypoints[index_of[image.name]] = np.asarray(db.read_keypoints(image.image_id))[:, :2]
        finally:
            db.close()
        bar = tqdm(total=len(scene.views), desc="SfM mapping", unit="view", disable=not progress, leave=False)
        with _timed(timings, "mapping"):
            reconstructions = pycolmap.incremental_mapping(
                database,
                images,
                output,
                options=_mapper_options(settings),
                initial_image_pair_callback=lambda: bar.update(2),
                next_image_callback=lambda: bar.update(1),
            )
        bar.close()
    if not reconstructions:
        raise ValueError(
            f"SfM could not register any pair of views in {scene.root}: the images may not overlap, be too "
            "blurry or textureless; provide cameras (COLMAP, transforms.json, ...) instead"
        )
    reconstruction = max(reconstructions.values(), key=lambda r: r.num_reg_images())
    reconstruction, intrinsics_notes = _refine_intrinsics(reconstruction, settings)
    registered_names = {image.name for image in reconstruction.images.values() if image.has_pose}
    if len(registered_names) < 2:
        raise ValueError(
            f"SfM registered only {len(registered_names)} view(s) of {scene.root}; need at least 2"
        )
    with _stage("SfM PnP for views the mapper left out", progress), _timed(timings, "pnp"):
        pnp = _register_by_pnp(scene, reconstruction, matches, keypoints, settings)
    for view in scene.views:
        view.camera = None
    for image in reconstruction.images.values():
        if image.has_pose:
            camera = _camera_from_colmap(image.camera, image.cam_from_world().matrix())
            scene.views[index_of[image.name]].camera = camera
    colmap_camera = next(iter(reconstruction.cameras.values()))
    for index, (cam_from_world, _, _) in pnp.items():
        scene.views[index].camera = _camera_from_colmap(colmap_camera, cam_from_world.matrix())
    scene.sparse = _sparse_from_reconstruction(reconstruction, index_of, pnp, keypoints)
    report = SfmReport(
        registered=[v.name for v in scene.views if v.name in registered_names],
        unregistered=[
            v.name for i, v in enumerate(scene.views) if v.name not in registered_names and i not in pnp
        ],
        num_points=len(scene.sparse.xyz),
        matching=matching,
        pnp=[scene.views[i].name for i in sorted(pnp)],
        features=settings.features,
        seconds=timings,
        pairs=pairs,
    )
    report.notes.extend(intrinsics_notes)
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


def triangulate_known_poses(
    scene: Scene, settings: SfmSettings | None = None, progress: bool = False
) -> SparsePoints:
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
        _sift_into_database(scene, per_image, database, images, "PINHOLE", pairs, progress)
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
        with _stage("triangulating points from the known cameras", progress):
            reconstruction = pycolmap.triangulate_points(
                reconstruction, database, images, output, options=options
            )
    scene.sparse = _sparse_from_reconstruction(reconstruction, index_of)
    log.info("triangulated %d sparse points from known cameras", len(scene.sparse.xyz))
    return scene.sparse
