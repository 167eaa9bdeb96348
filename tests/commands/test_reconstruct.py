"""``mvsam reconstruct`` end to end on four real photos (SfM + MVS), its cache, and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from mvsam.cli import main
from mvsam.export.ply import read_ply


def test_reconstruct_plain_photos(data_dir, tmp_path, capsys):
    images = sorted((data_dir / "llff_fern" / "images_8").iterdir())
    scene = tmp_path / "fern"
    scene.mkdir()
    for index in (0, 2, 4, 6):
        shutil.copy(images[index], scene / images[index].name)
    out = tmp_path / "out"
    argv = ["reconstruct", str(scene), "--out", str(out), "--depth-resolution", "256", "--planes", "48"]
    argv += ["--neighbors", "3"]
    assert main(argv) == 0
    views = json.loads((out / "views.json").read_text())
    assert [v["image"] for v in views] == [images[i].name for i in (0, 2, 4, 6)]
    for view in views:
        assert (view["width"], view["height"]) == (504, 378)
        K, pose = np.array(view["K"]), np.array(view["world_from_cam"])
        assert K.shape == (3, 3) and pose.shape == (4, 4)
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-6)
        depth = np.load(out / "depth" / f"{view['image'].rsplit('.', 1)[0]}.npy")
        assert depth.shape == (378, 504) and depth.dtype == np.float32
        assert 0.15 < np.mean(depth > 0) and np.all(depth >= 0)
    xyz, rgb = read_ply(out / "points.ply")
    assert len(xyz) > 1000 and rgb is not None
    first = capsys.readouterr().out
    assert "4/4 views with cameras" in first
    assert "SfM: 4 views registered by the mapper, 0 by PnP, 0 unregistered" in first
    assert all(view["registration"] == "registered" for view in views)
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "from cache: sfm, depth" in second and "SfM: 4 views registered" in second


def test_reconstruct_bad_input(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "scene not found" in capsys.readouterr().err
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    assert main(["reconstruct", str(folder), "--out", str(tmp_path / "o"), "--no-sfm"]) == 2
    assert "SfM is disabled" in capsys.readouterr().err
    assert main(["reconstruct", str(folder), "--out", str(tmp_path / "o"), "--neighbors", "0"]) == 2
    assert "--neighbors" in capsys.readouterr().err
