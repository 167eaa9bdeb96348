"""Automatic mode on the bundled demo scene: every object found with one id in all views, output formats,
and bad input. One full run is shared by the module (about a minute on a quiet 2-core machine)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from plyfile import PlyData

from mvsam.demo.run import SCENE_DIR
from mvsam.export.instances import read_id_png, write_auto_outputs, write_id_png
from mvsam.sam.masks import decode_rle
from mvsam.scene import Scene
from mvsam.segment.auto import AutoConfig, AutoSegmenter, consistency
from mvsam.segment.masks import mask_iou

OBJECTS = json.loads((SCENE_DIR / "scene.json").read_text())["objects"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return Scene.load(SCENE_DIR, cache_dir=tmp_path_factory.mktemp("demo_cache")).geometry(progress=False)


@pytest.fixture(scope="module")
def result(scene, mobile_sam_predictor):
    config = AutoConfig(points_per_side=8, fill_rounds=0)  # the test budget; defaults: see the README
    return AutoSegmenter(scene, mobile_sam_predictor, config, progress=False).run()


def _truth(view: int, object_id: int) -> np.ndarray:
    return np.asarray(Image.open(SCENE_DIR / "instance" / f"{view}.png")) == object_id


def test_every_object_found_with_one_id_across_views(result, scene):
    # Measured at this setting: sphere 0.983, box 0.984, cylinder 0.988, cone 0.969 mean IoU, one id in all
    # 8 views each (the target: 0.95). The demo is where the part and group rules were developed.
    for obj in OBJECTS:
        ids = []
        for view in range(len(scene)):
            id_map = result.id_map(view)
            assert id_map.shape == (scene.views[view].height, scene.views[view].width)
            assert id_map.dtype == np.int32
            values, counts = np.unique(id_map[_truth(view, obj["id"])], return_counts=True)
            ids.append(int(values[np.argmax(counts)]))
        object_id = max(set(ids), key=ids.count)
        assert object_id > 0 and ids.count(object_id) == len(scene), f"{obj['name']} has ids {ids}"
        ious = [mask_iou(result.id_map(v) == object_id, _truth(v, obj["id"])) for v in range(len(scene))]
        assert np.mean(ious) >= 0.95, f"{obj['name']}: IoU per view {np.round(ious, 3)}"
    assert consistency(result) > 0.8
    assert [o.id for o in result.objects] == list(range(1, len(result.objects) + 1))


def test_object_points_lie_on_the_objects(result, scene):
    view = 0
    for obj in OBJECTS:
        values, counts = np.unique(result.id_map(view)[_truth(view, obj["id"])], return_counts=True)
        object_id = int(values[np.argmax(counts)])
        xyz, rgb = result.object_points(object_id)
        assert len(xyz) > 50 and rgb.shape == xyz.shape and rgb.dtype == np.uint8
        record = next(o for o in result.objects if o.id == object_id)
        assert np.allclose(record.centroid, xyz.mean(axis=0), atol=1e-4)
        assert max(record.extent) < 0.5  # demo objects are about 0.2 m across; the table is 1 m
    with pytest.raises(ValueError, match="no object with id"):
        result.object_points(10_000)


def test_output_files(result, scene, tmp_path):
    report = write_auto_outputs(result, tmp_path, consistency(result))
    coco = json.loads((tmp_path / "instances.json").read_text())
    for index, view in enumerate(scene.views):
        png = Image.open(tmp_path / "ids" / f"{view.stem}.png")
        assert png.mode == "P"  # at most 255 objects: 8-bit palette
        id_map = read_id_png(tmp_path / "ids" / f"{view.stem}.png")
        assert np.array_equal(id_map, result.id_map(index))
        assert (tmp_path / "overlays" / f"{view.stem}.jpg").is_file()
        rebuilt = np.zeros_like(id_map)
        for annotation in coco["annotations"]:
            if annotation["image_id"] == index + 1:
                mask = decode_rle(annotation["segmentation"])
                assert annotation["area"] == int(mask.sum())
                rebuilt[mask] = annotation["object_id"]
        assert np.array_equal(rebuilt, id_map)  # COCO RLE decodes back to the PNGs
    vertex = PlyData.read(str(tmp_path / "instances.ply"))["vertex"]
    assert set(np.unique(vertex["instance"])) <= {o.id for o in result.objects}
    assert len(np.unique(vertex["instance"])) >= len(OBJECTS)
    assert report["coverage"] == pytest.approx(result.coverage) and 0.5 < report["coverage"] <= 1
    assert len(report["objects"]) == len(result.objects) and report["consistency"] > 0.8


def test_sixteen_bit_ids_round_trip(tmp_path):
    ids = np.arange(12 * 30, dtype=np.int32).reshape(12, 30)
    write_id_png(tmp_path / "many.png", ids, max_id=int(ids.max()))
    assert Image.open(tmp_path / "many.png").mode.startswith("I")
    assert np.array_equal(read_id_png(tmp_path / "many.png"), ids)
    with pytest.raises(ValueError, match="ids must lie"):
        write_id_png(tmp_path / "bad.png", ids, max_id=10)


CHEAP = AutoConfig(points_per_side=2, keyframes=2, fill_rounds=0)


def test_no_objects_found_is_a_clear_error(scene, mobile_sam_predictor):
    config = replace(CHEAP, points_per_side=1, min_mask_share=1.0)  # no mask is as large as the view
    with pytest.raises(ValueError, match="found no object"):
        AutoSegmenter(scene, mobile_sam_predictor, config, progress=False).run()


def test_view_without_geometry_is_left_unlabelled_with_a_note(scene, mobile_sam_predictor):
    views = [replace(v) for v in scene.views]
    views[5] = replace(views[5], depth=None)
    partial = Scene(scene.root, views, scene.source_format, scene.cache_dir)
    result = AutoSegmenter(partial, mobile_sam_predictor, CHEAP, progress=False).run()
    assert not result.id_map(5).any()
    assert any(views[5].name in note for note in result.notes)
    assert any(result.id_map(v).any() for v in range(len(views)) if v != 5)
    without = Scene(
        scene.root, [replace(v, camera=None, depth=None) for v in views], "images", scene.cache_dir
    )
    with pytest.raises(ValueError, match="needs cameras and depth"):
        AutoSegmenter(without, mobile_sam_predictor, CHEAP)


def test_video_mode_keeps_the_car_on_one_id(data_dir, mobile_sam_predictor, tmp_path):
    from mvsam.io.images import read_mask_png
    from mvsam.segment.auto_video import VideoAutoSegmenter

    frames = tmp_path / "frames"
    frames.mkdir()
    source = data_dir / "davis2016_train8"
    for k in range(3):
        (frames / f"{k:05d}.jpg").symlink_to(source / "JPEGImages" / "480p" / "car-turn" / f"{k:05d}.jpg")
    video = Scene.load(frames, format="images", cache_dir=tmp_path / "cache")
    config = AutoConfig(video_keyframe_stride=2)  # keyframes 0 and 2: the second may only add objects
    result = VideoAutoSegmenter(video, mobile_sam_predictor, config, progress=False).run()
    truths = [read_mask_png(source / "Annotations" / "480p" / "car-turn" / f"{k:05d}.png") for k in range(3)]
    values, counts = np.unique(result.id_map(0)[truths[0]], return_counts=True)
    car = int(values[np.argmax(counts)])
    ious = [mask_iou(result.id_map(k) == car, truths[k]) for k in range(3)]
    assert car > 0 and min(ious) > 0.85, np.round(ious, 3)  # measured 0.946, 0.955, 0.954
    assert result.keyframes == [0, 2] and "no 3D points" in result.notes[0]
    present = {v: {o.id for o in result.objects if video.views[v].name in o.views} for v in range(3)}
    assert 1 < len(present[0]) <= config.video_max_objects, present  # measured: 5, then 6 on frame 2
    with pytest.raises(ValueError, match="no object with id"):
        result.object_points(car)
    assert [o.id for o in result.objects] == list(range(1, len(result.objects) + 1))
    with pytest.raises(ValueError, match="video_max_objects"):
        VideoAutoSegmenter(video, mobile_sam_predictor, replace(config, video_max_objects=0))
