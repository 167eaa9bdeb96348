"""``mvsam segment`` end to end on the bundled demo scene."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from mvsam.cli import main
from mvsam.demo.run import SCENE_DIR, ground_truth_instances
from mvsam.evaluate.metrics import iou
from mvsam.export.ply import read_ply


def test_segment_writes_every_view(tmp_path, mobile_sam_checkpoint, mobile_sam_predictor, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "embeddings").symlink_to(mobile_sam_predictor.cache.folder)  # reuse the session's embeddings
    out = tmp_path / "out"
    argv = ["segment", str(SCENE_DIR), "--prompt", "view=0.jpg,x=265,y=267,label=1", "--out", str(out)]
    argv += ["--cache-dir", str(cache), "--checkpoint", str(mobile_sam_checkpoint), "--iterations", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "object visible in 8/8 views" in printed
    # the clicked view's mask is written and printed first, before geometry and the other views
    assert printed.index("first mask of 0.jpg:") < printed.index("object visible")
    first = np.asarray(Image.open(out / "first_masks" / "0.png")) > 0
    assert iou(first, ground_truth_instances(0) == 1) > 0.9
    for view in range(8):
        mask = np.asarray(Image.open(out / "masks" / f"{view}.png"))
        assert mask.shape == (480, 640) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        assert iou(mask > 0, ground_truth_instances(view) == 1) > 0.9
    xyz, rgb = read_ply(out / "object.ply")
    assert len(xyz) > 100 and rgb is not None
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "dense" and 1 <= report["iterations"] <= 2
    assert len(report["views"]) == 8 and report["views"][0]["prompted"]
    assert all(v["visible"] and 0 < v["score"] <= 1.2 for v in report["views"])
    assert {"geometry", "encode", "decode", "vote", "total"} <= set(report["seconds"])
    assert report["first_masks"] == ["0.jpg"] and report["seconds"]["first_masks"] > 0


def test_segment_bad_prompts_exit_with_a_message(tmp_path, capsys):
    base = ["segment", str(SCENE_DIR), "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    assert main([*base, "--prompt", "view=0.jpg,x=265"]) == 2
    assert "missing y" in capsys.readouterr().err
    assert main(base) == 2
    assert "give at least one --prompt" in capsys.readouterr().err
    assert main([*base, "--mask-prompt", f"view=0,path={tmp_path / 'none.png'}"]) == 2
    assert "mask not found" in capsys.readouterr().err
