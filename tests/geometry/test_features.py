"""XFeat weights, extraction and matching on real photos (DTU scan 24)."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.geometry.features import (
    Features,
    extract_xfeat,
    load_lighterglue,
    load_xfeat,
    match_lighterglue,
    match_mutual_nn,
    overlap_counts,
)
from mvsam.io.images import read_rgb


@pytest.fixture(scope="module")
def dtu_image(data_dir):
    return read_rgb(sorted((data_dir / "dtu_scan24" / "image").iterdir())[10])


def test_every_weight_loads():
    model = load_xfeat()  # strict load: raises on any missing or unexpected weight
    assert sum(p.numel() for p in model.net.parameters()) > 600_000
    matcher = load_lighterglue()  # checks what the wrapper's strict=False load would hide
    assert matcher.net.conf.n_layers == 6
    assert all(bool(p.isfinite().all()) for p in matcher.net.parameters())


def test_keypoints_follow_a_shift_and_scale(dtu_image):
    """A crop shifted by (40, 24) pixels: matches must move by exactly that, at any detection size."""
    big = dtu_image[200:920, 300:1260]  # 960x720
    shifted = dtu_image[224:944, 340:1300]
    first = extract_xfeat(big, 480, 1024)
    second = extract_xfeat(shifted, 480, 1024)
    assert first.xy.shape[1] == 2 and first.descriptors.shape == (len(first.xy), 64)
    assert first.xy.min() >= 0 and first.xy[:, 0].max() <= 959 and first.xy[:, 1].max() <= 719
    pairs = match_mutual_nn(first, second, 0.82, 0.95)
    assert len(pairs) > 100
    offset = first.xy[pairs[:, 0]] - second.xy[pairs[:, 1]]
    assert np.allclose(np.median(offset, axis=0), [40, 24], atol=1.0), np.median(offset, axis=0)
    # the ratio test keeps only distinctive matches, a subset of the plain mutual ones
    plain = {tuple(p) for p in match_mutual_nn(first, second, 0.82)}
    assert {tuple(p) for p in pairs} <= plain
    glued = match_lighterglue(first, second)
    glued_offset = first.xy[glued[:, 0]] - second.xy[glued[:, 1]]
    assert len(glued) > 100 and np.allclose(np.median(glued_offset, axis=0), [40, 24], atol=1.0)


def test_empty_features_match_nothing():
    empty = Features(np.zeros((0, 2), np.float32), np.zeros((0, 64), np.float32), np.zeros(0), (10, 10))
    assert match_mutual_nn(empty, empty, 0.8).shape == (0, 2)
    assert match_lighterglue(empty, empty).shape == (0, 2)


def test_overlap_counts_rank_neighbouring_views_first(data_dir):
    """DTU's views are taken along arcs: neighbours in the sequence overlap, view 0 and view 24 (the
    middle of another arc) much less; the counts are symmetric with an empty diagonal."""
    paths = sorted((data_dir / "dtu_scan24" / "image").iterdir())
    features = [extract_xfeat(read_rgb(paths[i]), 480, 1024) for i in (0, 1, 2, 24, 25)]
    counts = overlap_counts(features, 256, 0.82, 0.95)
    assert counts.shape == (5, 5) and counts.dtype == np.int64
    assert np.array_equal(counts, counts.T) and not np.diagonal(counts).any()
    assert counts[0, 1] > 3 * counts[0, 3] and counts[3, 4] > 3 * counts[1, 3], counts
    # fewer keypoints than asked for (zero padding) match nothing extra
    few = [Features(f.xy[:100], f.descriptors[:100], f.scores[:100], f.size) for f in features[:2]]
    assert overlap_counts(few, 256, 0.82)[0, 1] <= 100
