"""The app driven in headless Debian Chromium, as a clinician would use it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url: str):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(app_url)
    page.wait_for_selector("#upload", timeout=60_000)
    yield page
    page.close()


def _shot(page, name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if out := os.environ.get("SPINALSAM_SCREENSHOT_DIR"):
        shutil.copy(path, Path(out) / path.name)


def _status(page) -> str:
    return page.locator("#status").inner_text()


def _pixels(status: str) -> int:
    match = re.search(r"ms: (\d+) px", status)
    assert match, status
    return int(match.group(1))


def test_upload_click_segment(page, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    page.locator("#upload input[type=file]").set_input_files(get_testdata_file("CT_small.dcm"))
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Opened')", timeout=60_000
    )
    image = page.locator("#ct-image img")
    image.wait_for(timeout=30_000)
    box = image.bounding_box()
    assert box is not None
    # The vertebral body of CT_small is near the image centre.
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.47)
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Positive point')", timeout=30_000
    )
    page.locator("#segment").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Segmented')", timeout=60_000
    )
    assert _pixels(_status(page)) > 20
    _shot(page, "segmented", tmp_path)


def test_chat_command_changes_image_state(page, tmp_path: Path) -> None:
    page.locator("#load-example").click()
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Opened')", timeout=60_000
    )
    chat = page.locator("#chat-input textarea")
    chat.fill("add a box from (30, 30) to (100, 100) and generate the box mask")
    chat.press("Enter")
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Segmented')", timeout=60_000
    )
    assert _pixels(_status(page)) > 20
    chat.fill("undo")
    chat.press("Enter")
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Undid')", timeout=60_000
    )
    _shot(page, "chat", tmp_path)
