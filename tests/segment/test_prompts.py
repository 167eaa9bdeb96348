"""Prompt dataclasses and the CLI prompt-string parsing."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.io.images import write_mask_png
from mvsam.segment.prompts import (
    BoxPrompt,
    Click,
    MaskPrompt,
    group_prompts,
    parse_box,
    parse_click,
    parse_mask_prompt,
)


def test_parse_click_box_mask(tmp_path):
    click = parse_click("view=000000.jpg,x=800,y=500.5,label=0")
    assert click == Click("000000.jpg", 800.0, 500.5, positive=False)
    assert parse_click("view=3, x=1, y=2").view == "3" and parse_click("view=3,x=1,y=2").positive
    assert parse_box("view=a.png,x0=1,y0=2,x1=30,y1=40").as_array().tolist() == [1, 2, 30, 40]
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:4] = True
    write_mask_png(tmp_path / "m.png", mask)
    parsed = parse_mask_prompt("view=0,path=m.png", base=tmp_path)
    np.testing.assert_array_equal(parsed.mask, mask)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("view=0,x=1", "missing y"),
        ("view=0,x=a,y=2", "not a number"),
        ("view=0,x=1,y=2,label=2", "label must be 1"),
        ("view=0,x=1,y=2,colour=red", "unknown key"),
        ("view=0,x=1,x=2,y=2", "given twice"),
        ("view=0,x=1,y", "not key=value"),
        ("view=0,x=nan,y=1", "finite"),
    ],
)
def test_bad_click_strings(text, message):
    with pytest.raises(ValueError, match=message):
        parse_click(text)


def test_bad_box_and_missing_mask(tmp_path):
    with pytest.raises(ValueError, match="x1 > x0"):
        parse_box("view=0,x0=5,y0=0,x1=4,y1=3")
    with pytest.raises(FileNotFoundError):
        parse_mask_prompt("view=0,path=nope.png", base=tmp_path)


def test_group_prompts_checks_against_images():
    sizes = [(100, 50), (100, 50)]
    resolve = {"a.jpg": 0, "b.jpg": 1, 0: 0, 1: 1}.__getitem__
    grouped = group_prompts(
        [Click("a.jpg", 10, 20), Click(0, 5, 5, False), BoxPrompt(1, 0, 0, 50, 40)], resolve, sizes
    )
    assert sorted(grouped) == [0, 1]
    assert grouped[0].labels.tolist() == [1, 0] and grouped[0].has_positive
    assert grouped[1].box.tolist() == [0, 0, 50, 40] and len(grouped[1].points) == 0
    with pytest.raises(ValueError, match="outside its 100x50 image"):
        group_prompts([Click(0, 10, 60)], resolve, sizes)
    with pytest.raises(ValueError, match="two boxes"):
        group_prompts([BoxPrompt(0, 0, 0, 5, 5), BoxPrompt(0, 1, 1, 5, 5)], resolve, sizes)
    with pytest.raises(ValueError, match="is 3x3, the image is 100x50"):
        group_prompts([MaskPrompt(0, np.ones((3, 3), bool))], resolve, sizes)
    with pytest.raises(ValueError, match="empty"):
        group_prompts([MaskPrompt(0, np.zeros((50, 100), bool))], resolve, sizes)
    assert not group_prompts([Click(1, 1, 1, False)], resolve, sizes)[1].has_positive
