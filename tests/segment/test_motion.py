"""The static-object check on the demo scene's exact geometry and ground-truth instance masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mvsam.scene import Scene
from mvsam.segment.motion import check_static_object

DEMO = Path(__file__).resolve().parents[2] / "src" / "mvsam" / "demo" / "scene"


def test_static_object_is_seen_where_expected_and_a_vanished_one_is_flagged():
    scene = Scene.load(DEMO, cache_dir=None)
    sphere = [np.asarray(Image.open(DEMO / "instance" / f"{i}.png")) == 1 for i in range(len(scene.views))]
    check = check_static_object(scene, sphere, [0])
    assert (check.expected, check.seen, check.others, check.found) == (7, 7, 7, 7) and not check.moving
    # The sphere found only where it was clicked: what a moving object looks like to a static method.
    gone = [sphere[0]] + [np.zeros_like(mask) for mask in sphere[1:]]
    check = check_static_object(scene, gone, [0])
    assert (check.expected, check.seen, check.found) == (7, 0, 0) and check.moving
    assert "mvsam track" in check.message("clip/")
    assert check_static_object(scene, [np.zeros_like(m) for m in sphere], [0]) is None
