"""SfM on real photos (LLFF fern), unregistrable images, known-pose triangulation, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pycolmap
import pytest
from PIL import Image

from mvsam.geometry.metrics import relative_rotation_errors
from mvsam.geometry.sfm import (
    WORKSPACE_FOLDER,
    SfmSettings,
    _refine_intrinsics,
    reconstruct_cameras,
    run_sfm,
    triangulate_known_poses,
)
from mvsam.io.conventions import llff_to_world_from_cam
from mvsam.io.loaders import load_scene
from mvsam.io.loaders.undistort import undistort_points

FERN_VIEWS = [0, 3, 6, 9]
LEFT_OUT = 2  # position in FERN_VIEWS of the view the mapper is made to drop (PnP test)


@pytest.fixture
def fern_folder(data_dir, tmp_path):
    images = sorted((data_dir / "llff_fern" / "images_8").iterdir())
    folder = tmp_path / "fern"
    folder.mkdir()
    for index in FERN_VIEWS:
        shutil.copy(images[index], folder / images[index].name)
    return folder


def reprojection_errors(scene) -> np.ndarray:
    """Pixel distance of each track observation (undistorted with its camera) to its point's projection."""
    sparse = scene.sparse
    errors = []
    for view_index in np.unique(sparse.track_view):
        points, xy = sparse.observations_in(int(view_index))
        camera = scene.views[view_index].camera
        if camera.distortion is not None:
            xy = undistort_points(xy, camera.K, camera.distortion)
        projected, _ = camera.project(sparse.xyz[points])
        errors.append(np.linalg.norm(projected - xy, axis=1))
    return np.concatenate(errors)


def test_fern_four_views(fern_folder, data_dir):
    scene = load_scene(fern_folder, format="images", cache_dir=fern_folder / "cache")
    report = reconstruct_cameras(scene)
    assert report.registered == [v.name for v in scene.views] and not report.unregistered
    assert report.summary().startswith("4/4 views registered")
    assert report.matching == "exhaustive" and report.features == "xfeat"
    reference = [
        llff_to_world_from_cam(row[:15].reshape(3, 5))[0]
        for row in np.load(data_dir / "llff_fern" / "poses_bounds.npy")
    ]
    errors = relative_rotation_errors(
        [v.camera.world_from_cam for v in scene.views], [reference[i] for i in FERN_VIEWS]
    )
    assert np.median(errors) < 3.0 and errors.max() < 5.0, errors
    assert len(scene.sparse.xyz) > 100
    assert np.median(reprojection_errors(scene)) < 1.5  # XFeat keypoints sit on whole pixels
    focal = scene.views[0].camera.K[0, 0]
    llff_focal = np.load(data_dir / "llff_fern" / "poses_bounds.npy")[0, 14] * 504 / 4032
    assert abs(focal / llff_focal - 1) < 0.1


def test_blank_image_is_reported_not_fatal(fern_folder):
    Image.new("RGB", (504, 378), (128, 128, 128)).save(fern_folder / "zz_blank.png")
    scene = load_scene(fern_folder, format="images", cache_dir=fern_folder / "cache")
    with pytest.warns(UserWarning, match="not registered: zz_blank.png"):
        scene = run_sfm(scene, SfmSettings(features="sift"))
    blank = scene.views[scene.view_index("zz_blank.png")]
    assert blank.camera is None
    assert sum(v.camera is not None for v in scene.views) == 4
    assert any("4/5 views registered; not registered: zz_blank.png" in note for note in scene.notes)


def test_too_few_views(fern_folder):
    scene = load_scene(fern_folder, format="images", cache_dir=fern_folder / "cache")
    scene.views = scene.views[:1]
    with pytest.raises(ValueError, match="at least 2 views"):
        run_sfm(scene)


def test_nothing_registers(tmp_path):
    rng = np.random.default_rng(1)
    for index in range(3):  # unrelated noise images share no geometry
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    scene = load_scene(tmp_path, format="images", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="SfM"):
        run_sfm(scene)
    assert not any((tmp_path / "cache" / "geometry" / WORKSPACE_FOLDER).iterdir())  # nothing left behind


def test_deterministic_and_cleans_up_after_killed_runs(data_dir, tmp_path):
    """Two runs on identical copies give identical cameras and points; a workspace left by a dead process
    (a killed run) is removed by the next run, and no run leaves its own behind."""
    images = sorted((data_dir / "llff_fern" / "images_8").iterdir())
    runs = []
    for copy in ("a", "b"):
        folder = tmp_path / copy
        folder.mkdir()
        for index in (0, 4, 8):
            shutil.copy(images[index], folder / images[index].name)
        work = folder / "cache" / "geometry" / WORKSPACE_FOLDER
        if copy == "a":
            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()
            (work / "mvsam_sfm_killed").mkdir(parents=True)
            (work / "mvsam_sfm_killed" / "owner.pid").write_text(str(dead.pid))
            (work / "mvsam_sfm_killed" / "database.db").write_bytes(b"partial")
            (work / "mvsam_sfm_running").mkdir()
            (work / "mvsam_sfm_running" / "owner.pid").write_text(str(os.getpid()))  # alive: kept
        scene = load_scene(folder, format="images", cache_dir=folder / "cache")
        report = reconstruct_cameras(scene, SfmSettings(xfeat_num_features=1024))
        assert len(report.registered) + len(report.pnp) == 3
        runs.append(scene)
        assert [p.name for p in work.iterdir()] == (["mvsam_sfm_running"] if copy == "a" else [])
    first, second = runs
    for a, b in zip(first.views, second.views, strict=True):
        np.testing.assert_array_equal(a.camera.world_from_cam, b.camera.world_from_cam)
        np.testing.assert_array_equal(a.camera.K, b.camera.K)
    np.testing.assert_array_equal(first.sparse.xyz, second.sparse.xyz)
    np.testing.assert_array_equal(first.sparse.track_xy, second.sparse.track_xy)


@pytest.mark.parametrize(
    "settings",
    [
        SfmSettings(max_image_size=10),
        SfmSettings(camera_model="FISHEYE"),
        SfmSettings(max_num_features=1),
        SfmSettings(triangulation_neighbors=0),
        SfmSettings(features="orb"),
        SfmSettings(matcher="brute"),
        SfmSettings(xfeat_num_features=10),
        SfmSettings(retrieval_neighbors=0),
        SfmSettings(retrieval_keypoints=8),
        SfmSettings(distortion_min_gain=1.0),
        SfmSettings(principal_point_min_views=-1),
    ],
)
def test_bad_settings(fern_folder, settings):
    scene = load_scene(fern_folder, format="images", cache_dir=fern_folder / "cache")
    with pytest.raises(ValueError, match="SfmSettings"):
        run_sfm(scene, settings)


def test_triangulate_known_poses(data_dir, tmp_path):
    full = load_scene(data_dir / "dtu_scan24", cache_dir=tmp_path)
    full.views = full.views[20:23]
    sparse = triangulate_known_poses(full, SfmSettings(triangulation_image_size=640, max_num_features=2048))
    assert sparse is full.sparse and len(sparse.xyz) > 50
    assert set(np.unique(sparse.track_view)) <= {0, 1, 2}
    assert np.median(reprojection_errors(full)) < 2.0
    full.views[1].camera = None
    with pytest.raises(ValueError, match="missing for"):
        triangulate_known_poses(full)


def test_video_uses_sequential_matching(fern_folder):
    scene = load_scene(fern_folder, format="images", cache_dir=fern_folder / "cache")
    scene.source_format = "video"
    report = reconstruct_cameras(scene, SfmSettings(sequential_overlap=3))
    assert report.matching == "sequential"
    assert len(report.registered) == 4


def test_retrieval_pairs_register_every_view(data_dir, tmp_path):
    """Above ``retrieval_above`` views each view is matched with its most overlapping views only: fewer
    pairs than exhaustive matching, every view still registered, rotations as accurate."""
    images = sorted((data_dir / "llff_fern" / "images_8").iterdir())
    views = list(range(0, 20, 2))
    for index in views:
        shutil.copy(images[index], tmp_path / images[index].name)
    scene = load_scene(tmp_path, format="images", cache_dir=tmp_path / "cache")
    settings = SfmSettings(retrieval_above=6, retrieval_neighbors=3, xfeat_num_features=2048)
    report = reconstruct_cameras(scene, settings)
    assert report.matching == "retrieval"
    assert len(views) * 3 / 2 <= report.pairs < len(views) * (len(views) - 1) / 2
    assert len(report.registered) + len(report.pnp) == len(views)
    poses = np.load(data_dir / "llff_fern" / "poses_bounds.npy")
    reference = [llff_to_world_from_cam(poses[i, :15].reshape(3, 5))[0] for i in views]
    errors = relative_rotation_errors([v.camera.world_from_cam for v in scene.views], reference)
    assert np.median(errors) < 1.0 and errors.max() < 3.0, errors
    assert report.seconds.matching > 0 and report.seconds.mapping > 0
    assert report.seconds.total == pytest.approx(sum(vars(report.seconds).values()))


def test_view_left_out_by_the_mapper_is_registered_by_pnp(fern_folder, data_dir, monkeypatch):
    """A view the incremental mapper leaves out is registered afterwards by PnP against the triangulated
    points, with a camera that agrees with the dataset's."""
    scene = load_scene(fern_folder, format="images", cache_dir=fern_folder.parent / "cache")
    dropped = scene.views[LEFT_OUT].name
    mapper = pycolmap.incremental_mapping

    def mapper_without_one_view(*args, **kwargs):
        """The real mapper, then the view deregistered, as when the mapper cannot register it."""
        reconstructions = mapper(*args, **kwargs)
        for reconstruction in reconstructions.values():
            for image in list(reconstruction.images.values()):
                if image.name == dropped and image.has_pose:
                    reconstruction.deregister_frame(image.frame_id)
        return reconstructions

    monkeypatch.setattr(pycolmap, "incremental_mapping", mapper_without_one_view)
    report = reconstruct_cameras(scene)

    assert report.pnp == [dropped] and not report.unregistered
    assert dropped not in report.registered and len(report.registered) == len(FERN_VIEWS) - 1
    assert report.status(dropped) == "pnp" and "1 by PnP" in report.summary()
    assert all(view.camera is not None for view in scene.views)
    # its 2D-3D inliers became observations of the sparse points
    assert np.count_nonzero(scene.sparse.track_view == LEFT_OUT) >= 15
    # its camera agrees with the dataset's poses about as well as the mapper's own views do (measured:
    # 0.52-1.19 deg for the pairs with the PnP view, 0.49-0.93 deg for the others)
    poses = np.load(data_dir / "llff_fern" / "poses_bounds.npy")
    reference = [llff_to_world_from_cam(poses[i, :15].reshape(3, 5))[0] for i in FERN_VIEWS]
    estimated = [view.camera.world_from_cam for view in scene.views]
    errors = relative_rotation_errors(estimated, reference)
    pairs = [(i, j) for i in range(len(FERN_VIEWS)) for j in range(i + 1, len(FERN_VIEWS))]
    with_pnp = np.array([LEFT_OUT in pair for pair in pairs])
    assert np.max(errors[with_pnp]) < 2.0 and np.max(errors[~with_pnp]) < 2.0, errors


def _synthetic_reconstruction(true_k1: float, mapped_model: str, mapped_k1: float) -> pycolmap.Reconstruction:
    """8 views on an arc around 300 points, observed by a camera with radial distortion ``true_k1`` (0.5 px
    noise), as a mapper would hand it over: poses and points exact, the camera ``mapped_model`` at the
    image centre with ``mapped_k1`` (SIMPLE_RADIAL) and a focal 2% off."""
    rng = np.random.default_rng(0)
    truth = pycolmap.Camera(model="SIMPLE_RADIAL", width=640, height=480, params=[500, 320, 240, true_k1])
    params = [510.0, 320.0, 240.0] + ([mapped_k1] if mapped_model == "SIMPLE_RADIAL" else [])
    camera = pycolmap.Camera(model=mapped_model, width=640, height=480, params=params, camera_id=1)
    reconstruction = pycolmap.Reconstruction()
    reconstruction.add_camera_with_trivial_rig(camera)
    xyz = rng.uniform(-1.0, 1.0, (300, 3))
    tracks = [pycolmap.Track() for _ in xyz]
    for view in range(8):
        angle = np.deg2rad(-35 + 10 * view)
        rotation = np.array(
            [[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]]
        )
        cam_from_world = np.hstack([rotation, [[0.0], [0.0], [4.0]]])
        in_cam = xyz @ rotation.T + cam_from_world[:, 3]
        xy = truth.img_from_cam(in_cam) + rng.normal(0.0, 0.5, (len(xyz), 2))
        image = pycolmap.Image(
            name=f"{view}.jpg",
            camera_id=1,
            image_id=view + 1,
            points2D=pycolmap.Point2DList([pycolmap.Point2D(p) for p in xy]),
        )
        reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(cam_from_world))
        for point, track in enumerate(tracks):
            track.add_element(view + 1, point)
    for point, track in zip(xyz, tracks, strict=True):
        reconstruction.add_point3D(point, track, np.zeros(3, np.uint8))
    return reconstruction


@pytest.mark.parametrize(
    ("true_k1", "mapped_model", "mapped_k1", "chosen"),
    [
        (0.0, "SIMPLE_RADIAL", 0.04, "SIMPLE_PINHOLE"),  # distortion fitted to noise: dropped
        (0.15, "SIMPLE_RADIAL", 0.1, "SIMPLE_RADIAL"),  # a real lens distortion: kept
        (0.15, "SIMPLE_PINHOLE", 0.0, "SIMPLE_RADIAL"),  # mapped as a pinhole: distortion added
        (0.0, "SIMPLE_PINHOLE", 0.0, "SIMPLE_PINHOLE"),
    ],
)
def test_lens_model_is_chosen_by_reprojection_error(true_k1, mapped_model, mapped_k1, chosen):
    """After mapping, lens distortion is kept only when it explains the observations (known answers)."""
    reconstruction = _synthetic_reconstruction(true_k1, mapped_model, mapped_k1)
    kept, notes = _refine_intrinsics(reconstruction, SfmSettings(distortion_min_gain=0.02))
    camera = next(iter(kept.cameras.values()))
    assert camera.model_name == chosen, notes
    assert len(notes) == 1 and ("kept" in notes[0]) == (chosen == "SIMPLE_RADIAL")
    assert camera.params[0] == pytest.approx(500, rel=0.005)  # the focal is refined too
    if chosen == "SIMPLE_RADIAL":
        assert camera.params[3] == pytest.approx(true_k1, abs=0.01)
    assert kept.compute_mean_reprojection_error() < 0.8  # 0.5 px noise per axis
    # off: the mapper's camera untouched
    untouched, notes = _refine_intrinsics(reconstruction, SfmSettings(distortion_min_gain=0.0))
    assert untouched is reconstruction and notes == []
    assert next(iter(untouched.cameras.values())).model_name == mapped_model
