"""``mvsam eval geometry``: view choice, subsets of a posed scene, and SfM scored against its cameras."""

from __future__ import annotations

import json
import shutil

import pytest

from mvsam.cli import main
from mvsam.evaluate.geometry import choose_views


def test_choose_views():
    assert choose_views(49, every=5) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert choose_views(49, every=8) == [0, 8, 16, 24, 32, 40, 48]
    assert choose_views(49, limit=3) == [0, 24, 48]
    with pytest.raises(ValueError, match="every must be >= 1"):
        choose_views(10, every=0)
    with pytest.raises(ValueError, match="view limit >= 2"):
        choose_views(10, limit=1)


def test_eval_geometry_on_fern(data_dir, tmp_path, capsys):
    out = tmp_path / "geometry.json"
    argv = ["eval", "geometry", "--data", str(data_dir / "llff_fern"), "--image-subdir", "images_8"]
    argv += ["--every", "6", "--size", "320", "--features", "xfeat", "--keep", str(tmp_path / "subset")]
    assert main(argv + ["--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["indices"] == [0, 6, 12, 18]
    (run,) = report["runs"]
    assert run["features"] == "xfeat" and run["registered"] + run["pnp"] == 4 and not run["unregistered"]
    assert run["rotation_median_deg"] < 2.0 and run["rotation_max_deg"] < 4.0
    assert abs(run["focal_error_pct"]) < 10.0  # against poses_bounds.npy's focal, scaled to 320 px
    assert isinstance(run["distortion"], list)
    out_text = capsys.readouterr().out
    assert "xfeat" in out_text and "focal %" in out_text
    images = sorted((tmp_path / "subset" / "images").iterdir())
    assert len(images) == 4 and not (tmp_path / "subset" / "mask").exists()


def test_eval_geometry_needs_cameras(data_dir, tmp_path, capsys):
    for image in sorted((data_dir / "llff_fern" / "images_8").iterdir())[:2]:
        shutil.copy(image, tmp_path / image.name)  # plain photos: nothing to score against
    assert main(["eval", "geometry", "--data", str(tmp_path)]) == 2
    assert "has no cameras to compare with" in capsys.readouterr().err
