"""The DTU protocol runner on a five-view NeuS-layout fixture cut from DTU scan 24 (quarter resolution)."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image

from mvsam.cli import build_parser
from mvsam.evaluate.dtu import as_plain_photos, evaluate_dtu, load_ground_truth
from mvsam.geometry import GeometrySettings, MvsSettings
from mvsam.io.images import read_mask_png, write_mask_png
from mvsam.scene import Scene
from mvsam.segment.interactive import SegmenterConfig

VIEWS = [20, 21, 22, 23, 24]
SIZE = (400, 300)
GEOMETRY = GeometrySettings(
    triangulate=False, mvs=MvsSettings(resolution=200, num_planes=48, num_neighbors=2, min_consistent=1)
)


@pytest.fixture(scope="module")
def small_dtu(data_dir, tmp_path_factory):
    """image/, mask/ and cameras_sphere.npz with the projections scaled to 400x300 (pixel centres kept)."""
    source = data_dir / "dtu_scan24"
    root = tmp_path_factory.mktemp("dtu_small")
    (root / "image").mkdir()
    cameras = np.load(source / "cameras_sphere.npz")
    scale = np.eye(4)
    scale[:2, :2] *= 0.25
    scale[:2, 2] = 0.5 * 0.25 - 0.5  # x' = (x + 0.5) / 4 - 0.5, in homogeneous form
    arrays = {}
    for k, i in enumerate(VIEWS):
        image = Image.open(source / "image" / f"{i:06d}.jpg").resize(SIZE, Image.BILINEAR)
        image.save(root / "image" / f"{k:06d}.png")
        mask = np.asarray(Image.fromarray(read_mask_png(source / "mask" / f"{i:03d}.png")).resize(SIZE))
        write_mask_png(root / "mask" / f"{k:03d}.png", mask)
        arrays[f"world_mat_{k}"] = scale @ cameras[f"world_mat_{i}"]
        arrays[f"scale_mat_{k}"] = cameras[f"scale_mat_{i}"]
    np.savez(root / "cameras_sphere.npz", **arrays)
    return root


@pytest.mark.slow
def test_dtu_protocol_end_to_end(small_dtu, mobile_sam_predictor):
    config = SegmenterConfig(max_iterations=3)
    report = evaluate_dtu(
        small_dtu,
        references=(1, 3),
        predictor=mobile_sam_predictor,
        config=config,
        geometry=GEOMETRY,
        progress=False,
    )
    assert [(r.protocol, r.reference) for r in report.runs] == [
        ("mask", "000001.png"),
        ("clicks", "000001.png"),
        ("mask", "000003.png"),
        ("clicks", "000003.png"),
    ]
    for run in report.runs:
        assert run.views == 4 and len(run.view_iou) == 4
        assert 0 <= run.same_pixel.iou <= 1 and 0 <= run.projection.iou <= 1
        assert 0.5 < run.consistency <= 1 and 1 <= run.iterations <= 3
    assert report.means["mask"]["iou"] > 0.85, report.table()
    assert report.means["clicks"]["iou"] > 0.7, report.table()
    clicks = [r for r in report.runs if r.protocol == "clicks"]
    assert all(r.correction_seconds is not None and 0 <= r.corrected_iou <= 1 for r in clicks)
    text = report.table()
    assert "same-px" in text and "mean" in text
    json.dumps(asdict(report))  # the CLI writes this


def test_bad_inputs(small_dtu, tmp_path):
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_dtu(small_dtu, protocols=("scribbles",))
    with pytest.raises(ValueError, match="out of range"):
        evaluate_dtu(small_dtu, references=(7,), geometry=GEOMETRY)
    scene = Scene.load(small_dtu)
    with pytest.raises(FileNotFoundError, match="no mask/ folder"):
        load_ground_truth(tmp_path, scene)
    args = build_parser().parse_args(["eval", "dtu", "--data", str(small_dtu), "--refs", "0", "2"])
    assert args.refs == [0, 2] and args.protocols == ["mask", "clicks"]


def test_plain_photos_drop_the_cameras(small_dtu):
    """``--no-cameras``: the same images in the same order, as photos without cameras (SfM runs on them)."""
    posed = Scene.load(small_dtu, cache_dir=small_dtu / "cache")
    photos = as_plain_photos(posed)
    assert posed.source_format == "neus" and photos.source_format == "images"
    assert [v.name for v in photos.views] == [v.name for v in posed.views]
    assert all(v.camera is None and v.depth is None for v in photos.views)
    assert photos.cache_dir == posed.cache_dir
    args = build_parser().parse_args(["eval", "dtu", "--data", str(small_dtu), "--no-cameras"])
    assert args.no_cameras
