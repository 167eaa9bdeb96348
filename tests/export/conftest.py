"""Result folders built from the demo scene's exact instance maps (no SAM needed)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvsam.demo.run import SCENE_DIR, ground_truth_instances
from mvsam.geometry import GeometrySettings


def write_ids_result(folder: Path, scene: Path, cache: Path, views: range = range(8)) -> Path:
    """An ``auto``-style result: ``ids/<stem>.png`` from the ground truth and a report naming the scene."""
    (folder / "ids").mkdir(parents=True)
    for view in views:
        Image.fromarray(ground_truth_instances(view).astype(np.uint8)).save(folder / "ids" / f"{view}.png")
    source = {
        "command": "test",
        "scene": str(scene),
        "cache_dir": str(cache),
        "geometry": asdict(GeometrySettings(triangulate=False)),  # depth is provided; skip SfM points
    }
    (folder / "report.json").write_text(
        json.dumps({"source": source, "objects": [{"id": i} for i in (1, 2, 3, 4)]})
    )
    return folder


@pytest.fixture(scope="session")
def make_ids_result():
    return write_ids_result


@pytest.fixture(scope="module")
def ids_result(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ids_result")
    return write_ids_result(root / "result", SCENE_DIR, root / "cache")
