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


def _wait_status(page, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"document.querySelector('#status').innerText.includes({text!r})", timeout=timeout
    )


def test_volume_propagate_planes_and_export(page, tmp_path: Path) -> None:
    page.locator("#example input").click()
    page.get_by_role("option", name=re.compile("Synthetic lumbar volume")).click()
    page.locator("#load-example").click()
    _wait_status(page, "Opened")
    chat = page.locator("#chat-input textarea")
    chat.fill("这是腰2")  # naming the vertebra in chat also sets the label dropdown
    chat.press("Enter")
    _wait_status(page, "labelled L2")
    page.get_by_text("Vertebra labels, 3-D measurements").click()
    assert page.locator("#label-name input").input_value() == "L2"
    chat.fill("add a box from (40, 40) to (120, 112) and generate the box mask")
    chat.press("Enter")
    _wait_status(page, "Segmented")
    page.locator("#propagate").click()
    _wait_status(page, "Propagated")
    page.evaluate("document.activeElement.blur()")  # keys go to the page, not the chat box
    page.keyboard.press("ArrowUp")
    _wait_status(page, "Axial slice 21")
    page.keyboard.press("ArrowDown")
    _wait_status(page, "Axial slice 20")
    _shot(page, "volume_axial", tmp_path)
    for plane in ("sagittal", "coronal"):
        page.locator("#plane").get_by_label(plane).check()
        _wait_status(page, f"{plane} slice")
        _shot(page, f"volume_{plane}", tmp_path)
    page.locator("#export-nifti").click()
    _wait_status(page, "Label map saved as NIfTI")
    link = page.locator("#download a").first
    link.wait_for(timeout=30_000)
    assert "labels.nii.gz" in (link.get_attribute("href") or "")
