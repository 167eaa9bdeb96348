"""End to end in a real browser: Playwright for Python driving Debian's Chromium against uvicorn.

Screenshots are kept in ``$MVSAM_TEST_ARTIFACTS/browser`` (default: the test's temporary folder).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from mvsam.demo.run import ground_truth_instances
from mvsam.server import create_app

from .conftest import SPHERE, LiveServer, masks_of

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NEGATIVE = (300.0, 300.0)  # on the sphere's right edge: every view loses that part


def _shot(page, selector: str) -> np.ndarray:
    """An element's pixels as the user sees them (scrolled into view), HxWx3 int16."""
    png = page.locator(selector).screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _click_at(page, x: float, y: float, button: str = "left") -> None:
    """Click full-resolution pixel (x, y) of the 640x480 view shown large."""
    box = page.locator("#big-marks").bounding_box()
    page.mouse.click(
        box["x"] + (x + 0.5) * box["width"] / 640, box["y"] + (y + 0.5) * box["height"] / 480, button=button
    )


def _wait_updates(page, count: int) -> None:
    page.wait_for_function(
        f"document.body.dataset.updates === '{count}' && document.body.dataset.busy === '0'", timeout=300_000
    )
    page.wait_for_function(
        "[...document.querySelectorAll('.thumb img.overlay')].every("
        "img => img.dataset.version === document.body.dataset.overlayVersion)",
        timeout=60_000,
    )


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("MVSAM_TEST_ARTIFACTS", tmp_path)) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_page_click_negative_undo_export(make_workspace, tmp_path, artifacts):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with LiveServer(create_app(make_workspace(tmp_path / "out"))) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 950}, accept_downloads=True)
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + "/")
            page.wait_for_function("document.body.dataset.ready === 'true'", timeout=300_000)
            page.wait_for_function(
                "[...document.querySelectorAll('.thumb img.image')]"
                ".every(img => img.complete && img.naturalWidth)"
                " && document.getElementById('big-image').naturalWidth === 640"
            )
            page.screenshot(path=artifacts / "0_ready.png")
            before = [_shot(page, f'.thumb[data-index="{i}"] img.image') for i in range(8)]

            _click_at(page, SPHERE["x"], SPHERE["y"])
            _wait_updates(page, 1)
            page.screenshot(path=artifacts / "1_clicked.png")
            client = httpx.Client(base_url=server.url)
            (obj,) = client.get("/api/objects").json()
            assert obj["visible_views"] == list(range(8))
            ((prompt),) = obj["prompts"]
            assert prompt["view"] == 0 and prompt["label"] == 1
            assert abs(prompt["x"] - SPHERE["x"]) < 1.5 and abs(prompt["y"] - SPHERE["y"]) < 1.5
            masks = masks_of(client, obj["id"])
            for index in range(8):
                truth = ground_truth_instances(index) == 1
                assert (masks[index] & truth).sum() / (masks[index] | truth).sum() > 0.9
                # the thumbnail shows the overlay where the sphere is, and little elsewhere
                after = _shot(page, f'.thumb[data-index="{index}"] img.image')
                changed = np.abs(after - before[index]).sum(axis=2) > 40
                size = (changed.shape[1], changed.shape[0])
                inside = cv2.resize(truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
                near = cv2.dilate(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
                assert (changed & inside).sum() > 0.5 * inside.sum(), index
                assert (changed & ~near).sum() < 0.1 * changed.sum(), index

            _click_at(page, *NEGATIVE, button="right")
            _wait_updates(page, 2)
            page.screenshot(path=artifacts / "2_negative.png")
            labels = [p["label"] for p in client.get("/api/objects").json()[0]["prompts"]]
            assert labels == [1, 0]

            page.click("#undo")
            _wait_updates(page, 3)
            assert [p["label"] for p in client.get("/api/objects").json()[0]["prompts"]] == [1]
            undone = masks_of(client, obj["id"])
            assert all(np.array_equal(a, b) for a, b in zip(undone, masks, strict=True))

            with page.expect_download() as download:
                page.click("#export")
            archive = zipfile.ZipFile(download.value.path())
            assert {f"masks/1_object_1/{i}.png" for i in range(8)} <= set(archive.namelist())
            assert "coco.json" in archive.namelist()
            page.screenshot(path=artifacts / "3_final.png")
            three = page.locator("#three canvas").count() == 1 or "unavailable" in page.inner_text(
                "#three-note"
            )
            assert three
            assert errors == []
        finally:
            browser.close()
