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


def test_first_masks_need_only_the_clicked_view(tmp_path, mobile_sam_predictor, monkeypatch):
    """The clicked view's mask before geometry and the other embeddings: the one segment() starts from."""
    from mvsam.demo.run import ground_truth_instances
    from mvsam.evaluate.metrics import iou
    from mvsam.segment.prompts import Click

    scene = Scene.load(SCENE_DIR, cache_dir=tmp_path / "cache")  # loader cameras, no depth yet
    encoded = []
    encode = mobile_sam_predictor.encode

    def recording(image):
        encoded.append(image.shape)
        return encode(image)

    monkeypatch.setattr(mobile_sam_predictor, "encode", recording)
    segmenter = Segmenter(scene, mobile_sam_predictor, progress=False)
    clicks = [Click(0, 265.0, 267.0), Click(0, 60.0, 60.0, positive=False)]  # scene.json's sphere click
    first = segmenter.first_masks(clicks)
    assert list(first) == [0] and len(encoded) == 1
    assert first[0].shape == (480, 640) and first[0].dtype == bool
    assert iou(first[0], ground_truth_instances(0) == 1) > 0.9  # the sphere
    assert first[0][267, 265] and not first[0][60, 60]
    with pytest.raises(InputError, match="positive"):
        segmenter.first_masks([Click(0, 60.0, 60.0, positive=False)])
    scene.geometry(GeometrySettings(triangulate=False), progress=False)
    segmenter.segment(clicks)
    assert len(encoded) == 8  # prepare() kept the clicked view's embedding
    assert iou(segmenter.mask(0), first[0]) >= segmenter.config.anchor_iou
