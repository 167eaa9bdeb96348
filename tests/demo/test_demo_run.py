"""``mvsam demo`` end to end on the bundled scene, through the CLI."""

from __future__ import annotations

import json

import numpy as np

from mvsam.cli import main
from mvsam.io.images import read_mask_png


def test_demo_command_segments_the_sphere_in_every_view(mobile_sam_checkpoint, tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--checkpoint", str(mobile_sam_checkpoint), "--points-per-side", "4"]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["click_iou"] >= 0.95
    assert len(report["multiview_ious"]) == 8
    assert min(report["multiview_ious"].values()) >= 0.9
    assert report["multiview_mean_iou"] >= 0.95
    masks = sorted((out / "multiview" / "masks").glob("*.png"))
    assert [m.stem for m in masks] == [str(i) for i in range(8)]
    assert read_mask_png(masks[3]).shape == (480, 640)
    assert np.any(read_mask_png(masks[3]))
    assert (out / "multiview" / "object.ply").stat().st_size > 1000
    assert (out / "click" / "0_overlay.png").is_file()
    assert report["automatic_masks"] >= 1
    assert "mean IoU with ground truth" in capsys.readouterr().out
