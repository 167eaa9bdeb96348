"""View depth storage: full-size arrays as given, or working-resolution depth upsampled when read."""

from __future__ import annotations

import dataclasses

import numpy as np

from mvsam.geometry.mvs import upsample_depth
from mvsam.scene import LowResDepth, View


def _low_res(seed: int) -> LowResDepth:
    """12x16 depth with holes (0) and edges, and a confidence in [0, 1]."""
    rng = np.random.default_rng(seed)
    depth = rng.uniform(1.0, 3.0, (12, 16)).astype(np.float32)
    depth[rng.uniform(size=depth.shape) < 0.3] = 0
    return LowResDepth(depth, rng.uniform(size=depth.shape).astype(np.float32))


def test_low_res_depth_reads_as_its_upsampling_and_is_replaced_by_a_set_depth():
    source = _low_res(0)
    view = View("a.jpg", "a.jpg", 64, 48, depth_source=source)

    assert view.has_depth and view.has_valid_depth
    expected_depth, expected_confidence = upsample_depth(source.depth, source.confidence, 64, 48)
    np.testing.assert_array_equal(view.depth, expected_depth)
    np.testing.assert_array_equal(view.depth_confidence, expected_confidence)
    assert view.depth is view.depth  # two reads in a row: one upsampling
    copy = dataclasses.replace(view)
    assert copy.depth_source is source  # not a full-size copy
    view.depth = None
    assert not view.has_depth and view.depth is None and view.depth_source is None
    given = np.ones((48, 64), np.float32)
    view.depth = given
    assert view.depth is given and view.has_valid_depth


def test_has_valid_depth_agrees_with_the_upsampled_depth():
    for seed in range(20):  # sparse depth: a few positive low-res pixels, or none
        source = _low_res(seed)
        keep = np.random.default_rng(100 + seed).uniform(size=source.depth.shape) < 0.02 * (seed % 3)
        sparse = LowResDepth(np.where(keep, source.depth, 0).astype(np.float32), source.confidence)
        view = View("a.jpg", "a.jpg", 50, 37, depth_source=sparse)
        assert view.has_valid_depth == bool(np.any(view.depth > 0))
    assert not View("b.jpg", "b.jpg", 4, 3).has_valid_depth
