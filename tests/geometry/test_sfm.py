"""SfM on real photos (LLFF fern), unregistrable images, known-pose triangulation, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mvsam.geometry.metrics import relative_rotation_errors
from mvsam.geometry.sfm import (
    WORKSPACE_FOLDER,
    SfmSettings,
    reconstruct_cameras,
    run_sfm,
    triangulate_known_poses,
)
from mvsam.io.conventions import llff_to_world_from_cam
from mvsam.io.loaders import load_scene
from mvsam.io.loaders.undistort import undistort_points

FERN_VIEWS = [0, 3, 6, 9]


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
