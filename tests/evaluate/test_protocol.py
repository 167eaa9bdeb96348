"""The protocol's click derivation and the simulated correction click, on masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.evaluate.protocol import correction_click, protocol_clicks


def _disk(shape, center, radius):
    rows, cols = np.indices(shape)
    return (cols - center[0]) ** 2 + (rows - center[1]) ** 2 <= radius**2


def test_single_disk_first_click_at_its_centre_then_spread():
    mask = _disk((101, 121), (60, 50), 30)
    clicks = protocol_clicks(mask)
    assert clicks.labels.tolist() == [1, 1, 1, 0]
    np.testing.assert_allclose(clicks.points[0], (60, 50), atol=0.5)
    positives = clicks.points[:3]
    assert all(mask[int(y), int(x)] for x, y in positives)
    # the later clicks keep away from the first and from the boundary
    for x, y in positives[1:]:
        assert 8 < np.hypot(x - 60, y - 50) < 25
    # the negative click is in the background, about 5% of the box diagonal (>= 5 px) from the disk
    x, y = clicks.points[3]
    assert not mask[int(y), int(x)]
    distance = np.hypot(x - 60, y - 50) - 30
    assert 3 <= distance <= 7


def test_one_click_per_component_largest_first():
    mask = _disk((100, 200), (50, 50), 25) | _disk((100, 200), (150, 50), 15)
    clicks = protocol_clicks(mask)
    np.testing.assert_allclose(clicks.points[0], (50, 50), atol=0.5)
    np.testing.assert_allclose(clicks.points[1], (150, 50), atol=0.5)
    assert clicks.points[2][0] < 100  # the third goes back into the larger disk
    assert clicks.labels.tolist() == [1, 1, 1, 0]


def test_deterministic_and_tiny_components_ignored():
    mask = _disk((80, 80), (40, 40), 20)
    mask[2, 2] = True  # a one-pixel speck gets no click
    first, second = protocol_clicks(mask), protocol_clicks(mask.copy())
    np.testing.assert_array_equal(first.points, second.points)
    assert all(np.hypot(x - 40, y - 40) <= 20 for x, y in first.points[:3])


def test_bad_masks():
    with pytest.raises(ValueError, match="empty"):
        protocol_clicks(np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="HxW"):
        protocol_clicks(np.ones((4, 4, 3), bool))
    with pytest.raises(ValueError, match="bool or integer"):
        protocol_clicks(np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="positives"):
        protocol_clicks(np.ones((4, 4), bool), positives=0)


def test_correction_click_targets_largest_error():
    gt = np.zeros((60, 60), bool)
    gt[10:50, 10:50] = True
    pred = gt.copy()
    pred[10:30, 10:30] = False  # a 20x20 miss: positive click at its centre
    pred[52:55, 52:55] = True  # a small false positive
    click = correction_click(pred, gt)
    assert click.positive and click.error_pixels == 400
    assert 17 <= click.x <= 22 and 17 <= click.y <= 22
    wrong = gt.copy()
    wrong[0:8, :] = True  # false foreground band is the largest error: a negative click in it
    click = correction_click(wrong, gt)
    assert not click.positive and click.y < 8
    assert correction_click(gt, gt) is None
    with pytest.raises(ValueError, match="differs"):
        correction_click(gt, gt[:10])
