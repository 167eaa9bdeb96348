"""The shared segmentation toolkit: one IoU convention, sampling, prompts from footprints, candidates."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.segment.auto import choose_keyframes, whole_masks
from mvsam.segment.candidates import choose_candidate
from mvsam.segment.masks import (
    EMPTY_IOU,
    components,
    interior_points,
    keep_large_components,
    mask_iou,
    pairwise_overlap,
    peak_points,
    sample_at_centres,
    scale_points,
)
from mvsam.segment.prompting import (
    PromptSettings,
    footprint_prompt,
    image_mask_to_low_res_logits,
    mask_to_low_res_logits,
    working_size,
)


def _square(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_iou_convention_and_known_pixels():
    empty = np.zeros((4, 4), bool)
    a, b = _square((4, 4), 0, 2, 0, 2), _square((4, 4), 0, 2, 0, 4)
    assert mask_iou(empty, empty) == EMPTY_IOU == 1.0
    assert mask_iou(a, empty) == 0.0
    assert mask_iou(a, b) == pytest.approx(0.5)
    assert mask_iou(a, b, known=_square((4, 4), 0, 4, 0, 2)) == 1.0  # disagreement only where unknown
    with pytest.raises(ValueError, match="differ in shape"):
        mask_iou(a, np.zeros((3, 4), bool))
    assert pairwise_overlap(np.stack([a, b]), np.stack([b])).tolist() == [[4], [8]]


def test_components_sampling_and_resampling():
    mask = _square((40, 40), 5, 25, 5, 25) | _square((40, 40), 30, 32, 30, 32)
    assert [int(c.sum()) for c in components(mask)] == [400, 4]
    assert keep_large_components(mask, 10).sum() == 400
    points = interior_points(mask, 3)
    assert points.shape == (3, 2) and mask[points[:, 1].astype(int), points[:, 0].astype(int)].all()
    assert np.allclose(points[0], [14.5, 14.5], atol=0.6)  # deepest first
    assert sample_at_centres(np.arange(36).reshape(6, 6), (2, 2)).tolist() == [[7, 10], [25, 28]]
    assert np.allclose(scale_points([[0, 0], [3, 1]], (4, 2), (8, 4)), [[0.5, 0.5], [6.5, 2.5]])


def test_peak_points_visit_each_part_of_the_shape():
    two_parts = _square((40, 60), 5, 35, 5, 25) | _square((40, 60), 10, 30, 40, 56)  # 20 and 16 wide
    points = peak_points(two_parts, 3)
    assert abs(points[0][0] - 14.5) <= 1 and 14 <= points[0][1] <= 25  # on the deeper part's middle line
    assert abs(points[1][0] - 47.5) <= 1 and 17 <= points[1][1] <= 22  # then the other part's centre
    assert two_parts[points[:, 1].astype(int), points[:, 0].astype(int)].all()
    assert peak_points(np.zeros((8, 8), bool), 3).shape == (0, 2)


def test_image_mask_low_res_logits_follow_the_encoder_layout():
    mask = _square((480, 640), 120, 360, 160, 480)  # the middle quarter of a 4:3 image
    logits = image_mask_to_low_res_logits(mask, (768, 1024))  # the encoder's resized 4:3 input
    assert logits.shape == (256, 256) and logits.dtype == np.float32
    assert logits[96, 128] == pytest.approx(8.0) and logits[10, 10] == pytest.approx(-8.0)
    assert logits[200:, :].max() == pytest.approx(-8.0)  # the padding below the image is background
    inside = logits > 0
    rows, cols = np.nonzero(inside)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (48, 143, 64, 191)


def test_footprint_prompt_structure_and_coordinates():
    assert working_size((480, 640)) == (256, 192)
    foreground = _square((192, 256), 50, 90, 100, 160)
    prompt = footprint_prompt(foreground, ~foreground, (640, 480), PromptSettings())
    assert prompt.labels.tolist() == [1, 1, 1, 0, 0]
    x0, y0, x1, y1 = prompt.box
    assert x0 < 100 * 2.5 < 160 * 2.5 < x1 and y0 < 50 * 2.5 < 90 * 2.5 < y1  # box holds the object
    inside = prompt.points[:3]
    assert ((inside[:, 0] > 250) & (inside[:, 0] < 400) & (inside[:, 1] > 125) & (inside[:, 1] < 225)).all()
    outside = prompt.points[3:] / 2.5
    assert not foreground[outside[:, 1].astype(int), outside[:, 0].astype(int)].any()
    assert footprint_prompt(np.zeros((192, 256), bool), np.ones((192, 256), bool), (640, 480)) is None
    logits = mask_to_low_res_logits(foreground)
    assert logits.shape == (256, 256) and (logits[:192, :256] > 0).sum() == foreground.sum()
    with pytest.raises(ValueError):
        PromptSettings(positive_points=0)


def test_candidate_choice_prefers_agreement_over_score():
    target = _square((8, 8), 2, 6, 2, 6)
    logits = np.full((3, 256, 256), -1.0, dtype=np.float32)
    logits[0, :8, :8] = 1.0  # everything, scored highest
    logits[1, 2:6, 2:6] = 1.0  # the target
    logits[2, 2:4, 2:4] = 1.0  # a part
    best, agreement = choose_candidate(logits, np.array([0.99, 0.80, 0.90]), target)
    assert best == 1 and agreement == 1.0


def test_whole_masks_and_keyframes():
    whole, part, on_top = (
        _square((20, 20), 0, 10, 0, 10),
        _square((20, 20), 0, 5, 0, 10),
        _square((20, 20), 0, 2, 0, 2),
    )
    kept = whole_masks([(whole, 0.95), (part, 0.95), (on_top, 0.95)], containment=0.8, share=0.2)
    assert [int(m.sum()) for m, _ in kept] == [100, 4]  # the half is a part; the small square lies on it
    centres = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]], dtype=float)
    assert choose_keyframes(centres, 2) == [0, 3]
