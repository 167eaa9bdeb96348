"""``mvsam eval auto`` helpers that need no SAM run: the quick view subset and the covering id."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.demo.run import SCENE_DIR
from mvsam.evaluate.auto import best_id_iou, covering_id, spread_subset
from mvsam.scene import Scene


def test_spread_subset_keeps_view_zero_first_and_spreads_the_rest(tmp_path):
    scene = Scene.load(SCENE_DIR, cache_dir=tmp_path)
    names = [v.name for v in scene.views]
    assert [v.name for v in spread_subset(scene, 3).views] == [names[0], names[4], names[7]]
    assert [v.name for v in spread_subset(scene, 8).views] == names
    for bad in (1, 9):
        with pytest.raises(ValueError, match="--views must be between 2 and 8"):
            spread_subset(scene, bad)


def test_covering_id_and_best_id():
    ids = np.zeros((4, 6), dtype=np.int32)
    ids[:, :3], ids[:, 3:5] = 2, 5
    truth = np.zeros((4, 6), dtype=bool)
    truth[:, 2:5] = True  # 4 pixels of id 2, 8 of id 5
    assert covering_id(ids, truth) == 5
    assert best_id_iou(ids, truth) == pytest.approx(8 / 12)
    assert covering_id(np.zeros_like(ids), truth) == 0
