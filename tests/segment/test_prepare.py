"""Segmenter.prepare: the prompted views are embedded first, and the order changes no embedding."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.demo.run import SCENE_DIR
from mvsam.errors import InputError
from mvsam.geometry import GeometrySettings
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter


def test_prepare_embeds_the_first_views_first(tmp_path, mobile_sam_predictor, monkeypatch):
    scene = Scene.load(SCENE_DIR, cache_dir=tmp_path / "cache")
    scene.geometry(GeometrySettings(triangulate=False), progress=False)
    order = []
    encode = mobile_sam_predictor.encode

    def recording(image):
        embedding = encode(image)
        order.append(next(i for i, v in enumerate(scene.views) if np.array_equal(v.load_image(), image)))
        return embedding

    monkeypatch.setattr(mobile_sam_predictor, "encode", recording)
    first = Segmenter(scene, mobile_sam_predictor, progress=False)
    first.prepare(first=[scene.views[5].name, 2, 5])
    assert order == [5, 2, 0, 1, 3, 4, 6, 7]
    plain = Segmenter(scene, mobile_sam_predictor, progress=False)
    plain.prepare()
    assert order[8:] == list(range(8))
    for index in range(8):
        np.testing.assert_array_equal(
            first.embedding(index).features.numpy(), plain.embedding(index).features.numpy()
        )
    with pytest.raises(InputError):
        Segmenter(scene, mobile_sam_predictor, progress=False).prepare(first=["no_such_view.jpg"])
