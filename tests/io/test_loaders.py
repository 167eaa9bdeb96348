"""Every scene loader on small hand-written fixtures, bad input, and the real shared data sets."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from mvsam.io import conventions as cv
from mvsam.io.images import read_mask_png
from mvsam.io.loaders import FORMATS, load_scene
from mvsam.io.loaders.pointmaps import recover_camera
from mvsam.scene import Camera, Scene

K_TRUE = np.array([[40.0, 0.0, 15.5], [0.0, 42.0, 11.5], [0.0, 0.0, 1.0]])  # for 32x24 images


def write_image(path: Path, width: int = 32, height: int = 24, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_pose(index: int) -> np.ndarray:
    """A camera about 4 units in front of the origin (-z side), looking roughly at it."""
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler("xyz", [0.05 * index, -0.1 * index, 0.02 * index]).as_matrix()
    pose[:3, 3] = [0.3 * index, -0.1 * index, -4.0]
    return pose


def write_corrupt(path: Path) -> Path:
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return path


# --- plain folders, detection, bad input -------------------------------------------------------


def test_plain_folder(tmp_path):
    for name in ("b.jpg", "a.png", "c.jpg"):
        write_image(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    scene = load_scene(tmp_path)
    assert scene.source_format == "images"
    assert [v.name for v in scene.views] == ["a.png", "b.jpg", "c.jpg"]
    assert (scene.views[0].width, scene.views[0].height) == (32, 24)
    assert not scene.has_cameras and scene.notes == []
    assert scene.cache_dir == tmp_path.resolve() / ".mvsam_cache"
    assert scene.views[1].load_image().shape == (24, 32, 3)


def test_plain_folder_images_subdir_natural_order_and_mixed_sizes(tmp_path):
    for index, name in enumerate(("10.jpg", "2.jpg", "1.jpg")):
        write_image(tmp_path / "images" / name, width=32 + 8 * index)
    scene = Scene.load(tmp_path)
    assert [v.name for v in scene.views] == ["1.jpg", "2.jpg", "10.jpg"]
    assert [v.width for v in scene.views] == [48, 40, 32]  # each image keeps its own size


def test_corrupt_image_is_skipped_with_warning(tmp_path):
    for index in range(3):
        write_image(tmp_path / f"{index}.jpg", seed=index)
    write_corrupt(tmp_path / "1.jpg")
    with pytest.warns(UserWarning, match="skipped view 1.jpg"):
        scene = load_scene(tmp_path)
    assert [v.name for v in scene.views] == ["0.jpg", "2.jpg"]
    assert len(scene.notes) == 1 and "1.jpg" in scene.notes[0]


def test_truncated_jpeg_is_skipped(tmp_path):
    for index in range(3):
        write_image(tmp_path / f"{index}.jpg", width=64, height=48, seed=index)
    data = (tmp_path / "2.jpg").read_bytes()
    (tmp_path / "2.jpg").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="2.jpg"):
        scene = load_scene(tmp_path)
    assert len(scene) == 2


def test_missing_empty_unknown_and_too_few(tmp_path):
    with pytest.raises(FileNotFoundError, match="scene not found"):
        load_scene(tmp_path / "nope")
    with pytest.raises(ValueError, match="Looked for") as error:
        load_scene(tmp_path)
    for scene_format in FORMATS:
        assert scene_format.name in str(error.value)
    write_image(tmp_path / "only.jpg")
    with pytest.raises(ValueError, match="at least 2"):
        load_scene(tmp_path)
    with pytest.raises(ValueError, match="unknown scene format 'bogus'"):
        load_scene(tmp_path, format="bogus")
    with pytest.raises(ValueError, match="video_stride"):
        load_scene(tmp_path, video_stride=0)
    with pytest.raises(FileNotFoundError, match="transforms file"):
        load_scene(tmp_path, format="nerfstudio")


def test_read_only_folder_caches_in_home(tmp_path, isolated_home):
    for index in range(2):
        write_image(tmp_path / f"{index}.jpg")
    tmp_path.chmod(0o555)
    try:
        scene = load_scene(tmp_path)
    finally:
        tmp_path.chmod(0o755)
    assert scene.cache_dir.parent == isolated_home / "scenes"
    assert load_scene(tmp_path, cache_dir=tmp_path / "c").cache_dir == tmp_path / "c"


# --- video -----------------------------------------------------------------------------------


def write_video(path: Path, frames: int = 10, size: tuple[int, int] = (64, 48)) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 10)
        for index in range(frames):
            pixels = np.full((size[1], size[0], 3), 20 * index, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_stride_limit_and_reuse(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video)
    scene = load_scene(video, video_stride=2, video_max_frames=3)
    assert scene.source_format == "video"
    assert [v.name for v in scene.views] == ["000000.jpg", "000002.jpg", "000004.jpg"]
    assert scene.cache_dir == tmp_path.resolve() / ".mvsam_cache" / "clip.mp4"
    assert all(v.image_path.parent == scene.cache_dir / "frames" for v in scene.views)
    image = scene.views[2].load_image()
    assert image.shape == (48, 64, 3)
    assert abs(float(image.mean()) - 80) < 6  # frame 4 was filled with 80
    first_write = scene.views[0].image_path.stat().st_mtime_ns
    again = load_scene(video, video_stride=2, video_max_frames=3)
    assert again.views[0].image_path.stat().st_mtime_ns == first_write
    assert len(load_scene(video)) == 10  # new settings decode again, old frames are replaced


def test_bad_video(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="cannot decode video"):
        load_scene(tmp_path / "broken.mp4")


# --- NeuS / IDR ------------------------------------------------------------------------------


def write_neus(root: Path, count: int = 3) -> list[np.ndarray]:
    arrays, poses = {}, []
    for index in range(count):
        write_image(root / "image" / f"{index:03d}.png", seed=index)
        pose = make_pose(index)
        world_mat = np.eye(4)
        world_mat[:3] = -2.5 * cv.K_world_from_cam_to_projection(K_TRUE, pose)  # any scale, any sign
        arrays[f"world_mat_{index}"] = world_mat
        arrays[f"scale_mat_{index}"] = np.diag([0.5, 0.5, 0.5, 1.0])
        poses.append(pose)
    np.savez(root / "cameras_sphere.npz", **arrays)
    return poses


def test_neus(tmp_path):
    poses = write_neus(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.source_format == "neus"
    for view, pose in zip(scene.views, poses, strict=True):
        np.testing.assert_allclose(view.camera.K, K_TRUE, atol=1e-9)
        np.testing.assert_allclose(view.camera.world_from_cam, pose, atol=1e-9)
        distance = np.linalg.norm(pose[:3, 3])
        np.testing.assert_allclose(view.depth_range, (distance - 0.5, distance + 0.5))


def test_neus_nan_pose_and_missing_matrix(tmp_path):
    write_neus(tmp_path)
    with np.load(tmp_path / "cameras_sphere.npz") as data:
        arrays = dict(data)
    arrays["world_mat_1"] = np.full((4, 4), np.nan)
    np.savez(tmp_path / "cameras_sphere.npz", **arrays)
    with pytest.warns(UserWarning, match="skipped view 001.png"):
        scene = load_scene(tmp_path)
    assert [v.name for v in scene.views] == ["000.png", "002.png"]
    write_image(tmp_path / "image" / "003.png")
    with pytest.raises(ValueError, match="no world_mat_3"):
        load_scene(tmp_path)


# --- COLMAP ----------------------------------------------------------------------------------


def write_colmap_text(root: Path, radial: float = 0.0) -> tuple[list[np.ndarray], np.ndarray]:
    """Two views and four points; observations are exact (distorted when ``radial`` != 0)."""
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    points = np.array([[0.1, 0.2, 0.0], [-0.3, 0.1, 0.5], [0.2, -0.2, -0.3], [0.0, 0.0, 0.2]])
    poses = [make_pose(0), make_pose(1)]
    fx, fy, cx, cy = 40.0, 42.0, 16.0, 12.0  # COLMAP (pixel-corner) principal point
    if radial:
        cameras = f"1 SIMPLE_RADIAL 32 24 {fx} {cx} {cy} {radial}\n"
        fy = fx
    else:
        cameras = f"1 PINHOLE 32 24 {fx} {fy} {cx} {cy}\n"
    (model / "cameras.txt").write_text("# camera list\n" + cameras)
    image_lines, tracks = [], {i: [] for i in range(len(points))}
    for image_id, pose in enumerate(poses, start=1):
        qvec, tvec = cv.world_from_cam_to_colmap(pose)
        cam = points @ np.linalg.inv(pose)[:3, :3].T + np.linalg.inv(pose)[:3, 3]
        x, y = cam[:, 0] / cam[:, 2], cam[:, 1] / cam[:, 2]
        r2 = x * x + y * y
        x, y = x * (1 + radial * r2), y * (1 + radial * r2)
        observations = []
        for point_index in range(len(points)):
            observations += [fx * x[point_index] + cx, fy * y[point_index] + cy, point_index + 1]
            tracks[point_index] += [image_id, point_index]
        image_lines.append(" ".join(map(str, [image_id, *qvec, *tvec, 1, f"view{image_id}.jpg"])))
        image_lines.append(" ".join(map(str, observations)))
        write_image(root / "images" / f"view{image_id}.jpg", seed=image_id)
    (model / "images.txt").write_text("\n".join(image_lines) + "\n")
    lines = [
        " ".join(map(str, [i + 1, *points[i], 200, 100, 50, 0.5, *tracks[i]])) for i in range(len(points))
    ]
    (model / "points3D.txt").write_text("\n".join(lines) + "\n")
    return poses, points


def test_colmap_text_model(tmp_path):
    poses, points = write_colmap_text(tmp_path)
    scene = load_scene(tmp_path)
    assert scene.source_format == "colmap"
    assert [v.name for v in scene.views] == ["view1.jpg", "view2.jpg"]
    np.testing.assert_allclose(scene.views[0].camera.K, K_TRUE)
    for view, pose in zip(scene.views, poses, strict=True):
        np.testing.assert_allclose(view.camera.world_from_cam, pose, atol=1e-9)
        assert view.image_path.parent == tmp_path / "images"
    sparse = scene.sparse
    np.testing.assert_allclose(sparse.xyz, points)
    assert sparse.rgb[0].tolist() == [200, 100, 50]
    assert len(sparse.track_point) == 8
    for view_index, view in enumerate(scene.views):
        point_ids, xy = sparse.observations_in(view_index)
        projected, depth = view.camera.project(sparse.xyz[point_ids])
        np.testing.assert_allclose(xy, projected, atol=1e-6)  # half-pixel shift applied consistently
        assert np.all(depth > 0)


def test_colmap_distortion_is_undistorted_into_cache(tmp_path):
    write_colmap_text(tmp_path, radial=0.2)
    scene = load_scene(tmp_path)
    assert all(v.camera.distortion is None for v in scene.views)
    assert all(v.image_path.parent == scene.cache_dir / "undistorted" for v in scene.views)
    assert scene.views[0].load_image().shape == (24, 32, 3)
    for view_index, view in enumerate(scene.views):
        point_ids, xy = scene.sparse.observations_in(view_index)
        projected, _ = view.camera.project(scene.sparse.xyz[point_ids])
        np.testing.assert_allclose(xy, projected, atol=1e-3)


def test_colmap_size_mismatch(tmp_path):
    write_colmap_text(tmp_path)
    write_image(tmp_path / "images" / "view2.jpg", width=16, height=12)
    with pytest.raises(ValueError, match="its COLMAP camera 1 is 32x24"):
        load_scene(tmp_path)


# --- LLFF ------------------------------------------------------------------------------------


def write_llff(root: Path, folder: str = "images_2", count: int = 3) -> list[np.ndarray]:
    rows, poses = [], []
    for index in range(count):
        write_image(root / folder / f"img{index}.png", seed=index)
        pose = make_pose(index)
        poses.append(pose)
        row = cv.world_from_cam_to_llff(pose, 48, 64, 80.0)  # hwf of 2x larger originals
        rows.append(np.concatenate([row.reshape(-1), [1.5, 9.0]]))
    np.save(root / "poses_bounds.npy", np.array(rows))
    return poses


def test_llff(tmp_path):
    poses = write_llff(tmp_path)
    write_image(tmp_path / "images" / "full.png", width=64, height=48)  # full-res folder is not chosen
    scene = load_scene(tmp_path)
    assert scene.source_format == "llff"
    np.testing.assert_allclose(scene.views[0].camera.K, [[40, 0, 15.5], [0, 40, 11.5], [0, 0, 1]])
    for view, pose in zip(scene.views, poses, strict=True):
        np.testing.assert_allclose(view.camera.world_from_cam, pose, atol=1e-12)
        assert view.depth_range == (1.5, 9.0)
    with pytest.raises(ValueError, match="3 poses but"):
        load_scene(tmp_path, image_subdir="images")


def test_llff_mixed_sizes_and_nan_pose(tmp_path):
    write_llff(tmp_path, count=4)
    rows = np.load(tmp_path / "poses_bounds.npy")
    rows[1, :3] = np.nan
    np.save(tmp_path / "poses_bounds.npy", rows)
    with pytest.warns(UserWarning, match="skipped view img1.png"):
        assert [v.name for v in load_scene(tmp_path).views] == ["img0.png", "img2.png", "img3.png"]
    write_image(tmp_path / "images_2" / "img2.png", width=30)
    with pytest.raises(ValueError, match="mixed sizes"):
        load_scene(tmp_path)


# --- nerfstudio / instant-ngp ----------------------------------------------------------------


def write_transforms(root: Path, meta: dict, count: int = 3, size=(32, 24)) -> list[np.ndarray]:
    frames, poses = [], []
    for index in range(count):
        write_image(root / "images" / f"f{index}.jpg", *size, seed=index)
        pose = make_pose(index)
        poses.append(pose)
        c2w = cv.world_from_cam_to_opengl_c2w(pose)
        frames.append({"file_path": f"images/f{index}.jpg", "transform_matrix": c2w.tolist()})
    (root / "transforms.json").write_text(json.dumps(meta | {"frames": frames[::-1]}))
    return poses


def test_nerfstudio(tmp_path):
    meta = {"fl_x": 40.0, "fl_y": 42.0, "cx": 16.0, "cy": 12.0, "w": 32, "h": 24}
    poses = write_transforms(tmp_path, meta)
    scene = load_scene(tmp_path)
    assert scene.source_format == "nerfstudio"
    assert [v.name for v in scene.views] == ["f0.jpg", "f1.jpg", "f2.jpg"]
    for view, pose in zip(scene.views, poses, strict=True):
        np.testing.assert_allclose(view.camera.K, K_TRUE)
        np.testing.assert_allclose(view.camera.world_from_cam, pose, atol=1e-12)
        assert view.image_path.parent == tmp_path / "images"  # no distortion: originals used


def test_nerfstudio_camera_angle_per_frame_override_and_distortion(tmp_path):
    write_transforms(tmp_path, {"camera_angle_x": 2 * np.arctan(16 / 40.0), "k1": 0.1})
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][0]["fl_x"] = 55.0  # frames are stored reversed: this is f2
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    scene = load_scene(tmp_path)
    np.testing.assert_allclose(scene.views[0].camera.K, [[40, 0, 15.5], [0, 40, 11.5], [0, 0, 1]])
    assert scene.views[2].camera.K[0, 0] == 55.0
    assert all(v.image_path.parent == scene.cache_dir / "undistorted" for v in scene.views)
    assert scene.views[0].load_image().shape == (24, 32, 3)


def test_nerfstudio_bad_input(tmp_path):
    write_transforms(tmp_path, {"fl_x": 40.0}, count=3)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][1]["transform_matrix"][0][0] = float("nan")
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="skipped view f1.jpg"):
        assert len(load_scene(tmp_path)) == 2
    write_image(tmp_path / "images" / "f0.jpg", width=20)
    with pytest.raises(ValueError, match="mixed sizes"):
        load_scene(tmp_path)
    (tmp_path / "transforms.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_scene(tmp_path)


def test_nerfstudio_missing_images(tmp_path):
    write_transforms(tmp_path, {"fl_x": 40.0}, count=3)
    (tmp_path / "images" / "f1.jpg").unlink()
    with pytest.warns(UserWarning, match="skipped 1 of 3 frames"):
        assert len(load_scene(tmp_path)) == 2
    for index in (0, 2):
        (tmp_path / "images" / f"f{index}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="f"):
        load_scene(tmp_path)


# --- RGB-D: ScanNet and TUM ------------------------------------------------------------------


def write_depth_png(path: Path, depth_units: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), depth_units.astype(np.uint16))


def write_scannet(root: Path, count: int = 3) -> list[np.ndarray]:
    (root / "intrinsic").mkdir(parents=True)
    K4 = np.eye(4)
    K4[:3, :3] = K_TRUE
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", K4)
    K_depth = np.eye(4)
    K_depth[:3, :3] = [[20.0, 0, 7.75], [0, 21.0, 5.75], [0, 0, 1]]  # half resolution
    np.savetxt(root / "intrinsic" / "intrinsic_depth.txt", K_depth)
    poses = []
    for index in range(count):
        write_image(root / "color" / f"{index}.jpg", seed=index)
        depth_mm = np.full((12, 16), 1000 + 100 * index)
        depth_mm[0, 0] = 0
        write_depth_png(root / "depth" / f"{index}.png", depth_mm)
        (root / "pose").mkdir(exist_ok=True)
        pose = make_pose(index)
        poses.append(pose)
        np.savetxt(root / "pose" / f"{index}.txt", pose)
    return poses


def test_scannet(tmp_path):
    poses = write_scannet(tmp_path)
    (tmp_path / "pose" / "1.txt").write_text("\n".join(["-inf -inf -inf -inf"] * 4))
    with pytest.warns(UserWarning, match="skipped view 1.jpg"):
        scene = load_scene(tmp_path)
    assert scene.source_format == "scannet"
    assert [v.name for v in scene.views] == ["0.jpg", "2.jpg"]
    assert any("1.jpg" in note for note in scene.notes)
    view = scene.views[1]
    np.testing.assert_allclose(view.camera.world_from_cam, poses[2], atol=1e-12)
    assert view.depth.shape == (24, 32) and view.depth.dtype == np.float32
    assert view.depth[12, 16] == pytest.approx(1.2)
    assert view.depth[0, 0] == 0 and view.depth_confidence[0, 0] == 0  # unknown depth pixel
    assert float(view.depth_confidence.mean()) > 0.9


def test_scannet_missing_pose_and_mixed_sizes(tmp_path):
    write_scannet(tmp_path)
    (tmp_path / "pose" / "2.txt").unlink()
    with pytest.raises(FileNotFoundError, match="2.txt"):
        load_scene(tmp_path)
    write_image(tmp_path / "color" / "2.jpg", width=20)
    with pytest.raises(ValueError, match="mixed sizes"):
        load_scene(tmp_path)


def write_tum(root: Path) -> list[np.ndarray]:
    rgb, depth, truth, poses = ["# color images"], ["# depth images"], ["# ground truth"], []
    for index in range(4):
        stamp = 100.0 + index * 0.1
        write_image(root / "rgb" / f"{stamp:.6f}.png", seed=index)
        write_depth_png(root / "depth" / f"{stamp + 0.005:.6f}.png", np.full((24, 32), 5000 * (index + 1)))
        rgb.append(f"{stamp:.6f} rgb/{stamp:.6f}.png")
        depth.append(f"{stamp + 0.005:.6f} depth/{stamp + 0.005:.6f}.png")
        pose = make_pose(index)
        poses.append(pose)
        translation, quaternion = cv.world_from_cam_to_tum(pose)
        if index != 3:  # the last frame has no pose within 0.02 s
            truth.append(" ".join(map(str, [stamp - 0.01, *translation, *quaternion])))
    for name, lines in (("rgb.txt", rgb), ("depth.txt", depth), ("groundtruth.txt", truth)):
        (root / name).write_text("\n".join(lines) + "\n")
    return poses


def test_tum(tmp_path):
    poses = write_tum(tmp_path)
    with pytest.warns(UserWarning) as caught:
        scene = load_scene(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert "freiburg1" in messages and "skipped 1 of 4" in messages
    assert scene.source_format == "tum" and len(scene) == 3
    assert scene.views[0].camera.K[0, 0] == 517.3
    for index, view in enumerate(scene.views):
        np.testing.assert_allclose(view.camera.world_from_cam, poses[index], atol=1e-9)
        assert float(view.depth[5, 5]) == pytest.approx(index + 1.0)
    (tmp_path / "intrinsics.txt").write_text("# fx fy cx cy\n40 42 15.5 11.5\n")
    np.testing.assert_allclose(load_scene(tmp_path).views[0].camera.K, K_TRUE)
    (tmp_path / "depth.txt").write_text("100.0 depth/a.png extra\n")
    with pytest.raises(ValueError, match="depth.txt:1: expected 2 fields"):
        load_scene(tmp_path)


# --- pointmaps -------------------------------------------------------------------------------


def synthetic_pointmaps(count: int = 3, width: int = 32, height: int = 24):
    """World points of a bumpy surface seen by known cameras; returns (pts3d, Ks, poses, depths)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pts3d, poses, depths = [], [], []
    for index in range(count):
        pose = make_pose(index)
        depth = 4.0 + 0.5 * np.sin(xs / 5.0 + index) * np.cos(ys / 4.0)
        camera = Camera(K_TRUE, pose, width, height)
        points = camera.unproject(np.stack([xs.ravel(), ys.ravel()], axis=1), depth.ravel())
        pts3d.append(points.reshape(height, width, 3))
        poses.append(pose)
        depths.append(depth)
    return np.stack(pts3d), poses, np.stack(depths)


def test_recover_camera_from_pointmap():
    pts3d, poses, _ = synthetic_pointmaps(count=1)
    valid = np.ones(pts3d.shape[1:3], dtype=bool)
    K, pose = recover_camera(pts3d[0], valid, None)
    np.testing.assert_allclose(K, K_TRUE, atol=1e-6)
    np.testing.assert_allclose(pose, poses[0], atol=1e-8)
    noisy = pts3d[0] + np.random.default_rng(0).normal(scale=0.002, size=pts3d[0].shape)
    K, pose = recover_camera(noisy, valid, None)
    assert abs(K[0, 0] - 40.0) < 1.0 and abs(K[0, 2] - 15.5) < 1.0
    np.testing.assert_allclose(pose[:3, 3], poses[0][:3, 3], atol=0.1)
    with pytest.raises(ValueError, match="valid points"):
        recover_camera(pts3d[0], np.zeros_like(valid), None)


def test_pointmaps_npz_with_images_array(tmp_path):
    pts3d, poses, depths = synthetic_pointmaps()
    conf = np.full(pts3d.shape[:3], 3.0)
    conf[:, 0, :] = 6.0
    conf[1, 5, 5] = 0.0  # invalid pixel
    images = np.random.default_rng(0).integers(0, 256, (*pts3d.shape[:3], 3), dtype=np.uint8)
    np.savez(tmp_path / "recon.npz", pts3d=pts3d, conf=conf, images=images)
    scene = load_scene(tmp_path / "recon.npz")
    assert scene.source_format == "pointmaps" and len(scene) == 3
    for index, view in enumerate(scene.views):
        np.testing.assert_allclose(view.camera.K, K_TRUE, atol=1e-6)
        np.testing.assert_allclose(view.camera.world_from_cam, poses[index], atol=1e-7)
        expected = depths[index].copy()
        if index == 1:
            expected[5, 5] = 0
        np.testing.assert_allclose(view.depth, expected, atol=1e-5)
        np.testing.assert_array_equal(view.load_image(), images[index])
    assert scene.views[0].depth_confidence[0, 3] == 1.0 and scene.views[0].depth_confidence[3, 3] == 0.5
    assert scene.views[1].depth_confidence[5, 5] == 0.0


def test_pointmaps_folder_with_paths_and_cameras_at_higher_image_resolution(tmp_path):
    pts3d, poses, depths = synthetic_pointmaps()
    names = []
    for index in range(3):
        write_image(tmp_path / "frames" / f"{index}.png", width=64, height=48, seed=index)
        names.append(f"frames/{index}.png")
    np.savez(
        tmp_path / "out.npz",
        pts3d=pts3d,
        conf=np.ones(pts3d.shape[:3]),
        image_paths=np.array(names),
        K=K_TRUE,
        world_from_cam=np.stack(poses),
    )
    scene = load_scene(tmp_path)
    view = scene.views[2]
    assert (view.width, view.height) == (64, 48) and view.depth.shape == (48, 64)
    np.testing.assert_allclose(view.camera.K, [[80, 0, 31.5], [0, 84, 23.5], [0, 0, 1]])
    np.testing.assert_allclose(view.depth[::2, ::2], depths[2], atol=1e-6)


def test_pointmaps_bad_input(tmp_path):
    np.savez(tmp_path / "x.npz", pts3d=np.zeros((2, 4, 4)), images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="V x H x W x 3"):
        load_scene(tmp_path / "x.npz")
    np.savez(tmp_path / "x.npz", pts3d=np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="images array or image_paths"):
        load_scene(tmp_path / "x.npz")
    np.savez(tmp_path / "x.npz", something=np.zeros(3))
    with pytest.raises(ValueError, match="no pts3d"):
        load_scene(tmp_path / "x.npz", format="pointmaps")


# --- real data -------------------------------------------------------------------------------


def test_dtu_scan24_neus(data_dir):
    root = data_dir / "dtu_scan24"
    scene = load_scene(root)
    assert scene.source_format == "neus" and len(scene) == 49 and scene.notes == []
    assert (scene.views[0].width, scene.views[0].height) == (1600, 1200)
    focals = np.array([v.camera.K[0, 0] for v in scene.views])
    np.testing.assert_allclose(focals, 2892.33, atol=0.1)
    # The bounding sphere's centre projects inside the ground-truth object mask of every view.
    centre = np.load(root / "cameras_sphere.npz")["scale_mat_0"][:3, 3]
    for index, view in enumerate(scene.views):
        (x, y), depth = view.camera.project(centre[None])[0][0], view.camera.project(centre[None])[1][0]
        assert depth > 0 and view.depth_range[0] < depth < view.depth_range[1]
        assert read_mask_png(root / "mask" / f"{index:03d}.png")[round(y), round(x)]
    # DTU's LLFF poses (a separate calibration) give the same relative rotations within ~1 degree.
    llff = load_scene(root, format="llff", image_subdir="image")
    worst = 0.0
    for first in range(0, 49, 6):
        for second in range(49):
            a = (
                scene.views[first].camera.world_from_cam[:3, :3].T
                @ scene.views[second].camera.world_from_cam[:3, :3]
            )
            b = (
                llff.views[first].camera.world_from_cam[:3, :3].T
                @ llff.views[second].camera.world_from_cam[:3, :3]
            )
            worst = max(worst, Rotation.from_matrix(a.T @ b).magnitude())
    assert np.degrees(worst) < 1.5


def test_llff_fern(data_dir):
    scene = load_scene(data_dir / "llff_fern")
    assert scene.source_format == "llff" and len(scene) == 20
    view = scene.views[0]
    assert view.image_path.parent.name == "images_4" and (view.width, view.height) == (1008, 756)
    np.testing.assert_allclose(
        view.camera.K, [[815.1316, 0, 503.5], [0, 815.1316, 377.5], [0, 0, 1]], atol=1e-3
    )
    assert view.depth_range == pytest.approx((17.747, 78.257), abs=1e-3)
    small = load_scene(data_dir / "llff_fern", image_subdir="images_8")
    assert small.views[0].camera.K[0, 0] == pytest.approx(815.1316 / 2, abs=1e-3)
    # Forward-facing: every camera looks the same way (+z within 20 degrees of the first's).
    forward = np.array([v.camera.world_from_cam[:3, 2] for v in scene.views])
    assert np.degrees(np.arccos(np.clip(forward @ forward[0], -1, 1)).max()) < 20
    # Near/far are camera z: the sparse scene lies in front, so the bounds are positive and ordered.
    assert all(0 < v.depth_range[0] < v.depth_range[1] for v in scene.views)


def test_ngp_fox(data_dir):
    root = data_dir / "ngp_fox"
    with pytest.warns(UserWarning, match="skipped 17 of 67 frames"):
        scene = load_scene(root)
    assert scene.source_format == "nerfstudio" and len(scene) == 50
    view = scene.views[0]
    assert (view.name, view.width, view.height) == ("0001.jpg", 1080, 1920)
    np.testing.assert_allclose(view.camera.K, [[1375.52, 0, 554.058], [0, 1374.49, 964.768], [0, 0, 1]])
    assert view.image_path.parent == scene.cache_dir / "undistorted"
    # The cameras circle the fox: the point nearest all optical axes is in front of and seen by every view.
    centres = np.array([v.camera.center for v in scene.views])
    axes = np.array([v.camera.world_from_cam[:3, 2] for v in scene.views])
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    target = np.linalg.solve(projectors.sum(0), np.einsum("nij,nj->i", projectors, centres))
    for v in scene.views:
        (x, y), depth = v.camera.project(target[None])[0][0], v.camera.project(target[None])[1][0]
        assert depth > 0 and 0 <= x < v.width and 0 <= y < v.height


def test_davis_sequence_folder(data_dir):
    scene = load_scene(data_dir / "davis2016_train8" / "JPEGImages" / "480p" / "boat")
    assert scene.source_format == "images" and len(scene) == 75
    assert scene.views[0].name == "00000.jpg" and (scene.views[0].width, scene.views[0].height) == (854, 480)
    assert not scene.has_cameras


def test_nerfstudio_size_mismatch_and_fisheye(tmp_path):
    write_transforms(tmp_path, {"fl_x": 40.0, "w": 64, "h": 48})
    with pytest.raises(ValueError, match="says 64x48 but the image is 32x24"):
        load_scene(tmp_path)
    write_transforms(tmp_path, {"fl_x": 40.0, "camera_model": "OPENCV_FISHEYE"})
    with pytest.raises(ValueError, match="OPENCV_FISHEYE is not supported"):
        load_scene(tmp_path)
