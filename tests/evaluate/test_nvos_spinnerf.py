"""NVOS and SPIn-NeRF readers and runners on fixtures built in their public layouts from five DTU views."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from mvsam.evaluate.nvos import evaluate_nvos, load_nvos_scene, nvos_scenes
from mvsam.evaluate.spinnerf import evaluate_spinnerf, find_labels
from mvsam.geometry import GeometrySettings, MvsSettings
from mvsam.io.images import read_mask_png, write_mask_png
from mvsam.scene import Scene

VIEWS = [20, 21, 22, 23, 24]  # neighbouring DTU views
SIZE = (400, 300)
GEOMETRY = GeometrySettings(
    triangulate=False, mvs=MvsSettings(resolution=200, num_planes=48, num_neighbors=2, min_consistent=1)
)


@pytest.fixture(scope="module")
def llff_root(data_dir, tmp_path_factory):
    """``root/dtu5/``: LLFF scene (images_4/, poses_bounds.npy), SPIn-NeRF labels in images_4/label/."""
    source = data_dir / "dtu_scan24"
    root = tmp_path_factory.mktemp("spinnerf")
    scene = root / "dtu5"
    (scene / "images_4" / "label").mkdir(parents=True)
    for k, i in enumerate(VIEWS):
        image = Image.open(source / "image" / f"{i:06d}.jpg").resize(SIZE, Image.BILINEAR)
        image.save(scene / "images_4" / f"{k:03d}.png")
        mask = read_mask_png(source / "mask" / f"{i:03d}.png").astype(np.uint8)
        write_mask_png(scene / "images_4" / "label" / f"{k:03d}.png", cv2.resize(mask, SIZE) > 0)
    np.save(scene / "poses_bounds.npy", np.load(source / "poses_bounds.npy")[VIEWS])
    return root


@pytest.fixture(scope="module")
def nvos_root(llff_root, tmp_path_factory):
    """NVOS layout: scenes/dtu5 + labels/{reference_image,scribbles,masks}/dtu5, reference 002, target 004."""
    root = tmp_path_factory.mktemp("nvos")
    shutil.copytree(llff_root / "dtu5", root / "scenes" / "dtu5", ignore=shutil.ignore_patterns("label"))
    labels = root / "labels"
    for kind in ("reference_image", "scribbles", "masks"):
        (labels / kind / "dtu5").mkdir(parents=True)
    big = (800, 600)  # NVOS draws on larger images than the ones evaluated: the reader resizes
    Image.open(llff_root / "dtu5" / "images_4" / "002.png").resize(big).save(
        labels / "reference_image/dtu5/002.png"
    )
    mask = read_mask_png(llff_root / "dtu5" / "images_4" / "label" / "002.png").astype(np.uint8)
    mask = cv2.resize(mask, big, interpolation=cv2.INTER_NEAREST)
    inner = cv2.erode(mask, np.ones((41, 41), np.uint8))
    rows, cols = np.nonzero(inner)
    positive = np.zeros_like(mask)
    centre = (int(cols.mean()), int(rows.mean()))  # a cross: across the walls and up over the roof
    cv2.line(positive, (int(cols.min()), centre[1]), (int(cols.max()), centre[1]), 1, 5)
    cv2.line(positive, (centre[0], int(rows.min())), (centre[0], int(rows.max())), 1, 5)
    positive &= inner
    negative = np.zeros_like(mask)
    cv2.line(negative, (20, 20), (780, 20), 1, 5)
    write_mask_png(labels / "scribbles/dtu5/pos_002.png", positive > 0)
    write_mask_png(labels / "scribbles/dtu5/neg_002.png", negative > 0)
    shutil.copy(llff_root / "dtu5/images_4/label/004.png", labels / "masks/dtu5/004_mask.png")
    return root


def test_spinnerf_reader_and_runner(llff_root, mobile_sam_predictor):
    scene = Scene.load(llff_root / "dtu5", format="llff")
    labels = find_labels(llff_root / "dtu5", scene)
    assert sorted(labels) == [0, 1, 2, 3, 4]
    report = evaluate_spinnerf(llff_root, mobile_sam_predictor, geometry=GEOMETRY, progress=False)
    (score,) = report.scenes
    assert score.name == "dtu5" and score.reference == "000.png" and score.views == 4
    assert report.iou > 0.85, score.view_iou
    assert 0.9 < report.accuracy <= 1
    assert "dtu5" in report.table()


def test_nvos_reader_and_runner(nvos_root, mobile_sam_predictor):
    assert nvos_scenes(nvos_root) == ["dtu5"]
    scene, reference, target, prompts, truth = load_nvos_scene(nvos_root, "dtu5")
    assert (reference, target) == (2, 4) and truth.shape == (300, 400)
    labels = [p.positive for p in prompts]
    assert labels.count(True) == 5 and labels.count(False) == 5
    assert all(0 <= p.x < 400 and 0 <= p.y < 300 for p in prompts)  # scaled from the 800x600 scribbles
    report = evaluate_nvos(nvos_root, mobile_sam_predictor, geometry=GEOMETRY, progress=False)
    assert report.scenes[0].views == 1
    assert report.iou > 0.8, report.scenes[0].view_iou


def test_bad_layouts(tmp_path, nvos_root, llff_root):
    with pytest.raises(FileNotFoundError, match="not an NVOS folder"):
        nvos_scenes(tmp_path)
    with pytest.raises(FileNotFoundError, match="no scene folders"):
        evaluate_spinnerf(tmp_path, predictor=None)
    with pytest.raises(ValueError, match="unknown scenes"):
        evaluate_nvos(nvos_root, predictor=None, scenes=["fern"])
    scene = Scene.load(llff_root / "dtu5", format="llff")
    with pytest.raises(FileNotFoundError, match="no label folder"):
        find_labels(tmp_path, scene)
