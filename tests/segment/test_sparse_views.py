"""A handful of unposed phone photos (instant-ngp fox at 480 px): SfM from XFeat, one click on the head.

Writes an overlay grid (mask in green, click in yellow) to ``$MVSAM_TEST_ARTEFACTS`` (default: the test's
tmp folder) to check by eye that the head is in every view and the wallpaper in none.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mvsam.evaluate.metrics import iou
from mvsam.sam.predictor import Prompt
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter
from mvsam.segment.prompts import Click

HEAD = (338.0, 302.0)  # on the fox's head in 0001.jpg at 480 px wide


def overlay_grid(segmenter: Segmenter, click_view: int, path: Path) -> Path:
    tiles = []
    for index, view in enumerate(segmenter.scene.views):
        image = view.load_image().copy()
        mask = segmenter.mask(index)
        image[mask] = (0.5 * image[mask] + [0, 127, 0]).astype(np.uint8)
        if index == click_view:
            cv2.circle(image, (int(HEAD[0]), int(HEAD[1])), 8, (255, 255, 0), -1)
        tiles.append(cv2.resize(image, (240, round(240 * view.height / view.width))))
    grid = np.concatenate(tiles, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid[..., ::-1])
    return path


def test_one_click_on_the_fox_head(data_dir, tmp_path, mobile_sam_predictor):
    folder = tmp_path / "fox"
    folder.mkdir()
    for source in sorted((data_dir / "ngp_fox" / "images").iterdir())[:26:5]:  # 6 photos, no cameras
        image = cv2.imread(str(source))
        height, width = image.shape[:2]
        small = cv2.resize(image, (480, round(height * 480 / width)), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / source.name), small, [cv2.IMWRITE_JPEG_QUALITY, 95])
    scene = Scene.load(folder, cache_dir=tmp_path / "cache").geometry(progress=False)
    assert all(view.camera is not None for view in scene.views)
    segmenter = Segmenter(scene, mobile_sam_predictor, progress=False)
    result = segmenter.segment([Click(0, *HEAD)])
    artefacts = Path(os.environ.get("MVSAM_TEST_ARTEFACTS", tmp_path))
    print("overlay grid:", overlay_grid(segmenter, 0, artefacts / "fox_one_click.png"))
    prediction = mobile_sam_predictor.predict_batch(
        [(segmenter.embedding(0), Prompt(points=np.array([HEAD]), labels=np.array([1])))], multimask=True
    )[0]
    own = prediction.masks[int(np.argmax(prediction.scores))]
    assert iou(segmenter.mask(0), own) >= 0.95  # the clicked view is SAM's own best answer
    assert all(view.visible and view.geometry == "3d" for view in result.views)
    for index, view in enumerate(scene.views):
        share = segmenter.mask(index).mean()
        assert 0.1 < share < 0.6, (view.name, share)  # the fox and its plaque, not the wallpaper
    for index in range(len(scene.views)):  # the wallpaper: at least one image corner stays outside
        mask = segmenter.mask(index)
        assert not (mask[:20, :20].any() and mask[-20:, -20:].any() and mask[:20, -20:].any())
