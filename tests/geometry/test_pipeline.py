"""compute_geometry: back-end choice, caching (warm run, invalidation), fusion and PLY output."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mvsam.export.ply import read_ply, write_ply
from mvsam.geometry import GeometrySettings, GeometryTimings, MvsSettings, compute_geometry, fuse_depth
from mvsam.geometry.fusion import voxel_downsample
from mvsam.geometry.mvs import upsample_depth

SETTINGS = GeometrySettings(mvs=MvsSettings(num_planes=48, num_neighbors=3), triangulate=False)


def test_depth_computed_then_cached(plane_scene):
    timings = GeometryTimings()
    scene = compute_geometry(plane_scene, SETTINGS, progress=False, timings=timings)
    assert scene is plane_scene and scene.has_depth and timings.cached == []
    for view in scene.views:
        assert view.depth.shape == (view.height, view.width) and view.depth.dtype == np.float32
        valid = view.depth > 0
        assert valid.mean() > 0.5
        assert np.percentile(np.abs(view.depth[valid] - 5.0), 95) < 0.1
        assert np.all(view.depth_confidence[~valid] == 0)
        # kept at the working resolution, upsampled when read, bit for bit what was stored before
        source = view.depth_source
        assert source is not None and source.depth.shape == (120, 160) and view.has_valid_depth
        expected = upsample_depth(source.depth, source.confidence, view.width, view.height)
        np.testing.assert_array_equal(view.depth, expected[0])
        np.testing.assert_array_equal(view.depth_confidence, expected[1])
        with pytest.raises(ValueError, match="read-only"):
            view.depth[0, 0] = 1.0
    first = scene.views[0].depth.copy()
    for view in scene.views:
        view.depth = view.depth_confidence = None
    warm = GeometryTimings()
    compute_geometry(scene, SETTINGS, progress=False, timings=warm)
    assert warm.cached == ["depth"]
    np.testing.assert_array_equal(scene.views[0].depth, first)
    # A changed image is a different scene: the cache must miss.
    path = scene.views[2].image_path
    image = np.asarray(Image.open(path)).copy()
    image[:10] = 0
    Image.fromarray(image).save(path)
    for view in scene.views:
        view.depth = view.depth_confidence = None
    changed = GeometryTimings()
    compute_geometry(scene, SETTINGS, progress=False, timings=changed)
    assert changed.cached == []


def test_provided_depth_is_kept(plane_scene):
    provided = np.full((plane_scene.views[0].height, plane_scene.views[0].width), 7.0, np.float32)
    for view in plane_scene.views:
        view.depth = provided
    compute_geometry(plane_scene, SETTINGS, progress=False)
    assert all(view.depth is provided for view in plane_scene.views)


def test_scene_geometry_method(plane_scene):
    assert plane_scene.geometry(SETTINGS, progress=False).has_depth


def test_no_cameras_without_sfm(plane_scene):
    for view in plane_scene.views:
        view.camera = None
    with pytest.raises(ValueError, match="SfM is disabled"):
        compute_geometry(plane_scene, GeometrySettings(allow_sfm=False), progress=False)


def test_missing_image_file(plane_scene):
    plane_scene.views[1].image_path.unlink()
    with pytest.raises(FileNotFoundError, match="view1.png"):
        compute_geometry(plane_scene, SETTINGS, progress=False)


def test_fusion_and_ply_roundtrip(plane_scene, tmp_path):
    compute_geometry(plane_scene, SETTINGS, progress=False)
    cloud = fuse_depth(plane_scene, min_confidence=0.3, progress=False)
    assert len(cloud) > 1000 and cloud.rgb.dtype == np.uint8
    assert np.percentile(np.abs(cloud.xyz[:, 2] - 5.0), 95) < 0.1
    path = tmp_path / "out" / "points.ply"
    write_ply(path, cloud.xyz, cloud.rgb)
    xyz, rgb = read_ply(path)
    np.testing.assert_allclose(xyz, cloud.xyz, atol=1e-5)
    np.testing.assert_array_equal(rgb, cloud.rgb)
    with pytest.raises(ValueError, match="min_confidence"):
        fuse_depth(plane_scene, min_confidence=2.0)


def test_voxel_downsample_means():
    xyz = np.array([[0.1, 0.1, 0.1], [0.3, 0.3, 0.3], [1.5, 0.0, 0.0]])
    rgb = np.array([[0, 0, 0], [100, 200, 50], [9, 9, 9]], np.uint8)
    cloud = voxel_downsample(xyz, rgb, 1.0)
    order = np.argsort(cloud.xyz[:, 0])
    np.testing.assert_allclose(cloud.xyz[order], [[0.2, 0.2, 0.2], [1.5, 0.0, 0.0]])
    np.testing.assert_array_equal(cloud.rgb[order], [[50, 100, 25], [9, 9, 9]])
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_downsample(xyz, rgb, 0.0)


def test_ply_bad_input(tmp_path):
    with pytest.raises(ValueError, match="Nx3"):
        write_ply(tmp_path / "a.ply", np.zeros((4, 2)))
    with pytest.raises(ValueError, match="colours"):
        write_ply(tmp_path / "a.ply", np.zeros((4, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(FileNotFoundError):
        read_ply(tmp_path / "missing.ply")


def test_sparse_points_only_when_something_needs_them(plane_scene, monkeypatch):
    """Plane-sweep with loader depth ranges needs no SfM points: triangulation is skipped by default,
    and runs when depth is not computed, when a view has no depth range, or when asked for."""
    from mvsam.geometry import pipeline

    def triangulate(scene, settings, progress):
        raise RuntimeError("triangulation started")

    monkeypatch.setattr(pipeline, "triangulate_known_poses", triangulate)
    mvs = MvsSettings(resolution=96, num_planes=12, num_neighbors=2, min_consistent=1)
    compute_geometry(plane_scene, GeometrySettings(mvs=mvs), progress=False)
    assert plane_scene.sparse is None and plane_scene.has_depth
    for view in plane_scene.views:
        view.depth = view.depth_confidence = None
    plane_scene.views[1].depth_range = None
    for settings in (
        GeometrySettings(compute_depth=False),
        GeometrySettings(mvs=mvs, triangulate=True),
        GeometrySettings(mvs=mvs),  # view 1 has no depth range now
    ):
        with pytest.raises(RuntimeError, match="triangulation started"):
            compute_geometry(plane_scene, settings, progress=False)
    compute_geometry(plane_scene, GeometrySettings(mvs=mvs, triangulate=False), progress=False)
