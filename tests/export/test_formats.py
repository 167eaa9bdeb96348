"""Round trips of every export format on the demo scene's exact instance maps (4 objects, 8 views)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pycolmap
import pytest
from PIL import Image
from plyfile import PlyData
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from mvsam.demo.run import SCENE_DIR, ground_truth_instances
from mvsam.evaluate.metrics import iou
from mvsam.export import export
from mvsam.export.yolo import rasterize_polygon
from mvsam.io.conventions import (
    K_pixel_corner_to_centre,
    colmap_to_world_from_cam,
    opengl_c2w_to_world_from_cam,
    world_from_cam_to_opengl_c2w,
)
from mvsam.scene import Scene


@pytest.fixture(scope="module")
def exported(ids_result, tmp_path_factory):
    out = tmp_path_factory.mktemp("formats") / "out"
    report = export(ids_result, "png,davis,coco,yolo,nerfstudio,colmap,rgba,points", out)
    return out, report


@pytest.fixture(scope="module")
def demo_scene():
    return Scene.load(SCENE_DIR)


def test_png_and_davis(exported):
    out, report = exported
    assert len(report.written["png"]) == 4 * 8 and len(report.written["davis"]) == 8
    for view in range(8):
        truth = ground_truth_instances(view)
        for object_id in range(1, 5):
            written = np.asarray(Image.open(out / "masks" / str(object_id) / f"{view}.png"))
            assert written.dtype == np.uint8 and np.array_equal(written == 255, truth == object_id)
        ids = Image.open(out / "ids" / f"{view}.png")
        assert ids.mode == "P" and np.array_equal(np.asarray(ids), truth)
        assert ids.getpalette()[3:6] == [128, 0, 0]  # DAVIS: object 1 is dark red


def test_coco_decodes_to_the_masks_exactly(exported):
    out, _ = exported
    coco = COCO(str(out / "instances.json"))
    assert sorted(coco.getCatIds()) == [1, 2, 3, 4]
    assert len(coco.getAnnIds()) == 4 * 8
    for image in coco.loadImgs(coco.getImgIds()):
        truth = ground_truth_instances(int(image["file_name"].split(".")[0]))
        assert image["file_name"].endswith(".jpg") and (image["height"], image["width"]) == truth.shape
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            expected = truth == annotation["object_id"]
            assert np.array_equal(coco.annToMask(annotation).astype(bool), expected)
            assert (
                annotation["area"] == expected.sum() and annotation["category_id"] == annotation["object_id"]
            )
            rows, cols = np.nonzero(expected)
            x, y, w, h = annotation["bbox"]
            assert (x, y, w, h) == (
                cols.min(),
                rows.min(),
                cols.max() - cols.min() + 1,
                rows.max() - rows.min() + 1,
            )
            assert mask_util.decode(annotation["segmentation"]).shape == truth.shape


def test_yolo_polygons_rasterise_back(exported):
    out, _ = exported
    data = (out / "data.yaml").read_text()
    assert "nc: 4" in data and "3: object 4" in data
    ious = []
    for view in range(8):
        truth = ground_truth_instances(view)
        lines = (out / "labels" / f"{view}.txt").read_text().splitlines()
        assert len(lines) == 4
        for line in lines:
            values = line.split()
            polygon = np.array(values[1:], dtype=np.float64).reshape(-1, 2) * [640, 480]
            drawn = rasterize_polygon(polygon, 640, 480)
            ious.append(iou(drawn, truth == int(values[0]) + 1))
    assert min(ious) >= 0.98, min(ious)


def test_nerfstudio_cameras_equal_the_scene(exported, demo_scene):
    out, _ = exported
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["frames"]) == 8
    for frame, view in zip(meta["frames"], demo_scene.views, strict=True):
        world_from_cam = opengl_c2w_to_world_from_cam(np.array(frame["transform_matrix"]))
        np.testing.assert_allclose(world_from_cam, view.camera.world_from_cam, atol=1e-12)
        K = np.array([[frame["fl_x"], 0, frame["cx"]], [0, frame["fl_y"], frame["cy"]], [0, 0, 1]])
        np.testing.assert_allclose(K_pixel_corner_to_centre(K), view.camera.K, atol=1e-12)
        assert frame["cx"] == view.camera.K[0, 2] + 0.5  # nerfstudio measures from the pixel corner
        mask = np.asarray(Image.open(out / frame["mask_path"]))
        assert mask.ndim == 2 and np.array_equal(mask == 255, ground_truth_instances(int(view.stem)) > 0)
        assert frame["file_path"] == str(view.image_path)


def test_nerfstudio_scene_keeps_every_field(tmp_path, make_ids_result, demo_scene):
    scene = tmp_path / "ns"
    (scene / "images").mkdir(parents=True)
    frames = []
    for view in demo_scene.views[:3]:
        shutil.copy(view.image_path, scene / "images" / view.name)
        K = view.camera.K
        frames.append(
            {
                "file_path": f"images/{view.name}",
                "transform_matrix": world_from_cam_to_opengl_c2w(view.camera.world_from_cam).tolist(),
                "colmap_im_id": int(view.stem) + 10,
            }
        )
    meta = {"fl_x": K[0, 0], "fl_y": K[1, 1], "cx": K[0, 2] + 0.5, "cy": K[1, 2] + 0.5, "w": 640, "h": 480}
    meta |= {"camera_model": "OPENCV", "aabb_scale": 16, "frames": frames}
    (scene / "transforms.json").write_text(json.dumps(meta))
    result = make_ids_result(tmp_path / "result", scene, tmp_path / "cache", views=range(3))
    export(result, "nerfstudio", tmp_path / "out")
    written = json.loads((tmp_path / "out" / "transforms.json").read_text())
    assert {k: v for k, v in written.items() if k != "frames"} == {
        k: v for k, v in meta.items() if k != "frames"
    }
    for original, frame in zip(frames, written["frames"], strict=True):
        assert frame["colmap_im_id"] == original["colmap_im_id"]
        assert frame["transform_matrix"] == original["transform_matrix"]
        assert frame["file_path"] == str(scene / original["file_path"]) and frame["mask_path"].startswith(
            "masks/"
        )


def test_colmap_masks_and_model(exported, demo_scene):
    out, _ = exported
    root = out / "colmap"
    for view in demo_scene.views:
        mask = np.asarray(Image.open(root / "masks" / f"{view.name}.png"))
        assert np.array_equal(mask > 0, ground_truth_instances(int(view.stem)) > 0)
    lines = [
        line for line in (root / "sparse/0/images.txt").read_text().splitlines() if line and line[0] != "#"
    ]
    cameras = [
        line.split() for line in (root / "sparse/0/cameras.txt").read_text().splitlines() if line[0] != "#"
    ]
    assert len(lines) == 8 and len(cameras) == 8
    model = pycolmap.Reconstruction(str(root / "sparse/0"))  # COLMAP itself reads the text model
    assert model.num_reg_images() == 8 and model.image(1).name == "0.jpg"
    for line, camera, view in zip(lines, cameras, demo_scene.views, strict=True):
        values = line.split()
        assert values[9] == view.name and camera[1] == "PINHOLE"
        world_from_cam = colmap_to_world_from_cam(np.array(values[1:5], float), np.array(values[5:8], float))
        np.testing.assert_allclose(world_from_cam, view.camera.world_from_cam, atol=1e-9)
        fx, fy, cx, cy = map(float, camera[4:8])
        np.testing.assert_allclose([fx, fy, cx - 0.5, cy - 0.5], view.camera.K[[0, 1, 0, 1], [0, 1, 2, 2]])


def test_rgba_cut_outs(exported, demo_scene):
    out, _ = exported
    for view in demo_scene.views[:2]:
        rgba = np.asarray(Image.open(out / "rgba" / f"{view.stem}.png"))
        assert np.array_equal(rgba[..., :3], view.load_image())
        assert np.array_equal(rgba[..., 3] == 255, ground_truth_instances(int(view.stem)) > 0)


def test_points_per_object_and_labelled(exported):
    out, _ = exported
    labelled = PlyData.read(str(out / "points" / "instances.ply"))["vertex"]
    assert set(np.unique(labelled["instance"])) == {1, 2, 3, 4}
    sphere = PlyData.read(str(out / "points" / "1.ply"))["vertex"]
    xyz = np.stack([sphere["x"], sphere["y"], sphere["z"]], axis=1)
    radius = np.linalg.norm(xyz - [-0.17, 0.04, 0.09], axis=1)  # the demo's red sphere
    assert len(xyz) > 500 and np.median(np.abs(radius - 0.09)) < 0.002
    assert np.median(sphere["red"]) > 2 * np.median(sphere["blue"])
    assert (labelled["instance"] == 1).sum() == len(xyz)
