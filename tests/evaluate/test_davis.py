"""DAVIS runner on a tiny DAVIS-layout copy of one real sequence."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mvsam.cli import main
from mvsam.evaluate.davis import davis_sequences, evaluate_davis
from mvsam.sam import load_predictor
from mvsam.segment.track import Tracker

SIZE = (427, 240)  # (width, height)


@pytest.fixture(scope="module")
def davis(data_dir, tmp_path_factory):
    """car-turn's first 5 frames at half size in the DAVIS layout, plus an unannotated sequence."""
    source = data_dir / "davis2016_train8"
    root = tmp_path_factory.mktemp("davis")
    for kind, suffix, resample in [
        ("JPEGImages", "jpg", Image.BILINEAR),
        ("Annotations", "png", Image.NEAREST),
    ]:
        folder = root / kind / "480p" / "car-turn"
        folder.mkdir(parents=True)
        for index in range(5):
            with Image.open(source / kind / "480p/car-turn" / f"{index:05d}.{suffix}") as image:
                image.resize(SIZE, resample).save(folder / f"{index:05d}.png")
    (root / "JPEGImages/480p/no-annotations").mkdir()
    return root


@pytest.mark.slow
def test_davis_scores_real_sequence(davis, mobile_sam_checkpoint, tmp_path, capsys):
    tracker = Tracker(load_predictor("mobile_sam", checkpoint=mobile_sam_checkpoint, cache_dir=True))
    report = evaluate_davis(tracker, davis)
    (sequence,) = report.sequences
    assert sequence.name == "car-turn" and sequence.frames == 4
    assert 0.85 < sequence.j <= 1 and 0.85 < sequence.f <= 1
    assert report.jf == pytest.approx((report.j + report.f) / 2)
    assert report.fps > 0
    assert sequence.false_present == 0 and report.false_present == 0  # the car is never lost here
    assert "car-turn" in report.table() and "mean" in report.table()
    out = tmp_path / "davis.json"
    code = main(
        [
            "eval",
            "davis",
            "--data",
            str(davis),
            "--json",
            str(out),
            "--checkpoint",
            str(mobile_sam_checkpoint),
        ]
    )
    assert code == 0
    saved = json.loads(out.read_text())
    assert saved["sequences"][0]["name"] == "car-turn"
    assert saved["jf"] == pytest.approx(report.jf, abs=1e-6)  # cached embeddings: the same run
    assert "mean" in capsys.readouterr().out


def test_davis_rejects_bad_folders(davis, tmp_path, mobile_sam_checkpoint):
    assert davis_sequences(davis) == ["car-turn"]
    with pytest.raises(FileNotFoundError, match="not a DAVIS folder"):
        davis_sequences(tmp_path)
    tracker = Tracker(load_predictor("mobile_sam", checkpoint=mobile_sam_checkpoint, cache_dir=None))
    with pytest.raises(ValueError, match="unknown sequences"):
        evaluate_davis(tracker, davis, ["boat"])
    with pytest.raises(ValueError, match="step is a whole number"):
        evaluate_davis(tracker, davis, step=0)
