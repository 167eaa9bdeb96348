"""``mvsam auto`` end to end on the bundled demo scene: every output file, and bad input as one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image
from plyfile import PlyData

from mvsam.cli import main
from mvsam.demo.run import SCENE_DIR
from mvsam.export.instances import read_id_png
from mvsam.sam.masks import decode_rle


def test_auto_writes_ids_coco_ply_and_report(tmp_path, mobile_sam_checkpoint, mobile_sam_predictor, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "embeddings").symlink_to(mobile_sam_predictor.cache.folder)  # reuse the session's embeddings
    out = tmp_path / "out"
    argv = ["auto", str(SCENE_DIR), "--out", str(out), "--cache-dir", str(cache)]
    argv += ["--checkpoint", str(mobile_sam_checkpoint), "--points-per-side", "4", "--keyframes", "2"]
    assert main([*argv, "--fill-rounds", "0"]) == 0
    printed = capsys.readouterr().out
    assert "objects over 8 views" in printed and "instances.ply" in printed

    report = json.loads((out / "report.json").read_text())
    objects = report["objects"]
    assert [o["id"] for o in objects] == list(range(1, len(objects) + 1)) and len(objects) >= 4
    assert report["mode"] == "multiview" and 0.3 < report["coverage"] <= 1 and report["consistency"] > 0.7
    assert len(report["keyframes"]) == 2 and report["seconds"]["total"] > 0
    coco = json.loads((out / "instances.json").read_text())
    assert len(coco["images"]) == 8
    for image in coco["images"]:
        stem = image["file_name"].rsplit(".", 1)[0]
        png = Image.open(out / "ids" / f"{stem}.png")
        assert png.mode == "P" and png.size == (640, 480)  # 8-bit with the DAVIS palette
        id_map = read_id_png(out / "ids" / f"{stem}.png")
        rebuilt = np.zeros_like(id_map)
        for annotation in coco["annotations"]:
            if annotation["image_id"] == image["id"]:
                mask = decode_rle(annotation["segmentation"])
                x, y, w, h = annotation["bbox"]
                rows, cols = np.nonzero(mask)
                assert (x, y, w, h) == (cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
                rebuilt[mask] = annotation["object_id"]
        assert np.array_equal(rebuilt, id_map)  # the RLEs decode back to the PNG
        assert (out / "overlays" / f"{stem}.jpg").is_file()
    vertex = PlyData.read(str(out / "instances.ply"))["vertex"]
    instances = set(np.unique(vertex["instance"]).tolist())
    assert instances <= {o["id"] for o in objects} and len(instances) >= 4
    for obj in objects:
        if obj["id"] in instances:
            xyz = np.stack([vertex[k][vertex["instance"] == obj["id"]] for k in "xyz"], axis=1)
            assert np.allclose(obj["centroid"], xyz.mean(axis=0), atol=1e-3)


def test_auto_bad_input_is_one_line(tmp_path, capsys):
    out = ["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    assert main(["auto", str(tmp_path / "missing"), *out]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["auto", str(SCENE_DIR), *out, "--points-per-side", "0"]) == 2
    assert "points_per_side" in capsys.readouterr().err
    # two photos without cameras or depth, forced to multi-view mode: no geometry to associate with
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(2):
        shutil.copy(SCENE_DIR / "color" / f"{k}.jpg", photos / f"{k}.jpg")
    assert main(["auto", str(photos), *out, "--mode", "multiview", "--no-sfm"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("mvsam auto: error:") and "camera" in last
