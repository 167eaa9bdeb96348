"""ObjectsPass: a forward multi-object pass that objects join on later frames (automatic video mode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mvsam.evaluate.metrics import iou
from mvsam.io.video import open_frames
from mvsam.segment.track import ObjectsPass, Tracker, TrackPrompt

SIZE = (240, 427)  # (height, width): half of DAVIS 480p
FRAMES = 4


@pytest.fixture(scope="module")
def clip(data_dir, tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """The first frames of car-turn at half size, and their ground-truth car masks."""
    root = data_dir / "davis2016_train8"
    folder = tmp_path_factory.mktemp("pass_clip")
    masks = []
    for index in range(FRAMES):
        with Image.open(root / "JPEGImages/480p/car-turn" / f"{index:05d}.jpg") as image:
            image.resize(SIZE[::-1], Image.BILINEAR).save(folder / f"{index:05d}.png")
        with Image.open(root / "Annotations/480p/car-turn" / f"{index:05d}.png") as mask:
            masks.append(np.asarray(mask.convert("L").resize(SIZE[::-1], Image.NEAREST)) > 127)
    return folder, masks


def _second_object(car: np.ndarray) -> np.ndarray:
    """A block of the scene left of the car (trees and road), disjoint from it."""
    block = np.zeros(SIZE, bool)
    block[40:140, 20:150] = True
    return block & ~car


def test_pass_matches_track_objects_and_takes_late_objects(mobile_sam_predictor, clip):
    folder, masks = clip
    tracker = Tracker(mobile_sam_predictor)
    other = _second_object(masks[0])
    prompts = {1: TrackPrompt(0, mask=masks[0]), 3: TrackPrompt(0, mask=other)}
    expected = list(tracker.track_objects(open_frames(folder), prompts))[1:]

    run = ObjectsPass(tracker, open_frames(folder), 0)
    run.add(1, masks[0])
    run.add(3, other)
    got = list(run.advance(FRAMES))
    assert [r.index for r in got] == list(range(1, FRAMES)) and run.frame == FRAMES - 1
    for mine, theirs in zip(got, expected, strict=True):
        for object_id in (1, 3):  # the same machinery, bit for bit
            assert np.array_equal(mine.objects[object_id].mask, theirs.objects[object_id].mask)
    assert min(iou(r.objects[1].mask, masks[r.index]) for r in got) > 0.8  # 0.85 measured

    # an object joining on frame 1 is carried from there; ids stay as given and masks disjoint
    late = ObjectsPass(tracker, open_frames(folder), 0)
    late.add(1, masks[0])
    (first,) = late.advance(2)
    late.add(7, _second_object(first.objects[1].mask))
    rest = list(late.advance(FRAMES))
    assert sorted(rest[-1].objects) == [1, 7] and late.lost() == []
    assert not (rest[-1].objects[1].mask & rest[-1].objects[7].mask).any()
    assert iou(rest[-1].objects[1].mask, masks[-1]) > 0.8
    assert late.resemblance(1, rest[-1].objects[1].mask) > late.resemblance(7, rest[-1].objects[1].mask)


def test_pass_bad_input(mobile_sam_predictor, clip):
    folder, masks = clip
    tracker = Tracker(mobile_sam_predictor)
    with pytest.raises(ValueError, match="out of range"):
        ObjectsPass(tracker, open_frames(folder), FRAMES)
    run = ObjectsPass(tracker, open_frames(folder), 0)
    with pytest.raises(ValueError, match="integers >= 1"):
        run.add(0, masks[0])
    with pytest.raises(ValueError, match="frames are 427x240"):
        run.add(1, np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="empty"):
        run.add(1, np.zeros(SIZE, bool))
    with pytest.raises(ValueError, match="cannot advance"):
        list(run.advance(FRAMES + 1))
    run.add(1, masks[0])
    with pytest.raises(ValueError, match="already in this pass"):
        run.add(1, masks[0])
    with pytest.raises(ValueError, match="no object 2"):
        run.reseat(2, masks[0])
