"""The app driven in headless Debian Chromium, as a clinician would use it.

The click-grid tests are the contract of the image panel: at any screen width, image size,
aspect (thick-slab planes) and zoom, a click lands on the image pixel under the cursor.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_ct import write_nifti, write_png

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP, PHONE = (1500, 1000), (400, 850)
# Corners, edge midpoints, the centre and two off-grid points, as fractions of the image.
GRID = [
    (0.002, 0.002),
    (0.5, 0.002),
    (0.998, 0.002),
    (0.002, 0.5),
    (0.5, 0.5),
    (0.998, 0.5),
    (0.002, 0.998),
    (0.5, 0.998),
    (0.998, 0.998),
    (0.137, 0.861),
    (0.771, 0.229),
]
VIEWER = "#ct-image .ssam-viewer"
SHARED_DICOM = Path(__file__).resolve().parents[1].parent / "shared/data/totalseg-example/dicom"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _new_page(browser, app_url: str, size: tuple[int, int] = DESKTOP):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(app_url)
    page.wait_for_selector("#upload", timeout=60_000)
    page.wait_for_selector(VIEWER, timeout=60_000)
    return page


@pytest.fixture
def page(browser, app_url: str):
    page = _new_page(browser, app_url)
    yield page
    page.close()


def _shot(page, name: str, tmp_path: Path, full_page: bool = True) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if out := os.environ.get("SPINALSAM_SCREENSHOT_DIR"):
        shutil.copy(path, Path(out) / path.name)


def _status(page) -> str:
    return page.locator("#status").inner_text()


def _pixels(status: str) -> int:
    match = re.search(r"ms: (\d+) px", status)
    assert match, status
    return int(match.group(1))


def _wait_status(page, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(
        f"document.querySelector('#status').innerText.includes({text!r})", timeout=timeout
    )


def _seq(page) -> str:
    return page.evaluate(f"document.querySelector({VIEWER!r}).dataset.seq || ''")


def _answered(page, before: str, timeout: int = 60_000) -> None:
    """Wait until the panel received a new answer from the server (its sequence changed)."""
    page.wait_for_function(
        f"b => (document.querySelector({VIEWER!r}).dataset.seq || '') !== b",
        arg=before,
        timeout=timeout,
    )


def _upload(page, files: list[str]) -> None:
    before = _seq(page)
    page.locator("#upload input[type=file]").set_input_files(files)
    _answered(page, before)
    assert "Opened" in _status(page), _status(page)


def _rect(page, selector: str = "#ct-image .ssam-img") -> dict[str, float]:
    return page.evaluate(
        f"""(() => {{ const r = document.querySelector({selector!r}).getBoundingClientRect();
        return {{left: r.left, top: r.top, width: r.width, height: r.height}}; }})()"""
    )


def _click(page, x: float, y: float) -> tuple[int, int]:
    """Click at client (x, y); the slice pixel the server placed the point on."""
    before = _seq(page)
    page.mouse.click(x, y)
    _answered(page, before)
    match = re.search(r"point at \((\d+), (\d+)\)", _status(page))
    assert match, _status(page)
    return int(match.group(1)), int(match.group(2))


def _error(page, point: tuple[int, int], x: float, y: float, grid: tuple[int, int]) -> float:
    """How far (image pixels) the placed pixel's centre is from the cursor, worst axis."""
    r = _rect(page)
    cursor_x = (x - r["left"]) / r["width"] * grid[0]
    cursor_y = (y - r["top"]) / r["height"] * grid[1]
    return max(abs(point[0] + 0.5 - cursor_x), abs(point[1] + 0.5 - cursor_y))


def _click_grid(page, grid: tuple[int, int], fractions=GRID, of: str = "img") -> float:
    """Click every fraction of the image (or of the visible stage); the worst error."""
    page.locator("#ct-image .ssam-stage").scroll_into_view_if_needed()
    worst = 0.0
    for fx, fy in fractions:
        target = _rect(page) if of == "img" else _rect(page, "#ct-image .ssam-stage")
        x, y = target["left"] + fx * target["width"], target["top"] + fy * target["height"]
        err = _error(page, _click(page, x, y), x, y, grid)
        assert err <= 1.0, (grid, fx, fy, err)
        worst = max(worst, err)
    return worst


def _test_images(folder: Path) -> list[tuple[str, list[str], str | None, tuple[int, int]]]:
    """(name, files, plane, pixel grid) of the four shapes the panel must map exactly."""
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(0)
    wide = write_png(folder / "wide_1098x689.png", rng.integers(0, 255, (689, 1098), np.uint8))
    vol = rng.integers(-1000, 1500, (41, 512, 512)).astype(np.int16)
    slab = write_nifti(folder / "slab.nii.gz", vol, spacing=(0.7, 0.7, 5.0), orientation="LPS")
    return [
        ("128", [get_testdata_file("CT_small.dcm")], None, (128, 128)),
        ("512", [str(slab)], None, (512, 512)),
        ("1098x689", [str(wide)], None, (1098, 689)),
        ("512x41", [str(slab)], "coronal", (512, 41)),
    ]


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "400px"])
def test_clicks_land_on_the_pixel_under_the_cursor(browser, app_url, size, tmp_path) -> None:
    page = _new_page(browser, app_url, size)
    errors = {}
    try:
        for name, files, plane, grid in _test_images(tmp_path):
            _upload(page, files)
            if plane:
                before = _seq(page)
                page.locator("#plane").get_by_label(plane).check()
                _answered(page, before)
            errors[name] = _click_grid(page, grid)
            _shot(page, f"grid_{name}_{size[0]}px", tmp_path, full_page=False)
        # Zoomed in and panned: the mapping follows the image's on-screen rectangle.
        page.locator("#ct-image [data-zoom=in]").click()
        page.locator("#ct-image [data-zoom=in]").click()
        page.locator("#ct-image button[data-mode=pan]").click()
        stage = _rect(page, "#ct-image .ssam-stage")
        cx, cy = stage["left"] + stage["width"] / 2, stage["top"] + stage["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + 15, cy + 5, steps=4)
        page.mouse.up()
        page.locator("#ct-image button[data-mode=positive]").click()
        inner = [(0.1 + 0.2 * i, 0.15 + 0.17 * j) for i in range(5) for j in range(2)]
        errors["512x41 zoomed"] = _click_grid(page, (512, 41), inner, of="stage")
        _shot(page, f"grid_zoomed_{size[0]}px", tmp_path, full_page=False)
    finally:
        page.close()
    if out := os.environ.get("SPINALSAM_CLICK_REPORT"):
        report = Path(out)
        data = json.loads(report.read_text()) if report.exists() else {}
        data[f"{size[0]}px"] = errors
        report.write_text(json.dumps(data, indent=1))
    assert max(errors.values()) <= 1.0, errors


def test_box_drag_shows_a_preview_and_adds_the_box(page, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    _upload(page, [get_testdata_file("CT_small.dcm")])
    page.locator("#ct-image button[data-mode=box]").click()
    r = _rect(page)
    start = (r["left"] + 0.25 * r["width"], r["top"] + 0.25 * r["height"])
    end = (r["left"] + 0.75 * r["width"], r["top"] + 0.7 * r["height"])
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=5)
    preview = page.locator("#ct-image .ssam-box")
    assert preview.is_visible()  # the live preview while dragging
    box = preview.bounding_box()
    assert box and abs(box["width"] - (end[0] - start[0])) < 3
    before = _seq(page)
    page.mouse.up()
    _answered(page, before)
    assert not preview.is_visible()
    assert "Box [32, 32, 96, 89] added" in _status(page)


def _download(page) -> bytes:
    link = page.locator("#download a").first
    link.wait_for(timeout=30_000)
    href = link.get_attribute("href") or ""
    return page.request.get(href).body()


def _press(page, selector: str, expect: str) -> None:
    before = _status(page)
    page.locator(selector).click()
    page.wait_for_function(
        "([t, b]) => { const s = document.querySelector('#status').innerText;"
        " return s.includes(t) && s !== b; }",
        arg=[expect, before],
        timeout=120_000,
    )


def _chat(page, text: str) -> None:
    before = _seq(page)
    chat = page.locator("#chat-input textarea")
    chat.fill(text)
    chat.press("Enter")
    _answered(page, before)


def _label_shows(page, name: str) -> None:
    page.wait_for_function(
        "n => document.querySelector('#label-name input').value === n", arg=name, timeout=30_000
    )


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _new_user_run(browser, app_url: str, files: list[str], size, tmp_path: Path, tag: str):
    """Box → segment → "this is L1" → export all → save; reopen in a fresh session."""
    page = _new_page(browser, app_url, size)
    _upload(page, files)
    page.locator("#ct-image button[data-mode=box]").click()
    page.locator("#ct-image .ssam-stage").scroll_into_view_if_needed()
    r = _rect(page)
    page.mouse.move(r["left"] + 0.36 * r["width"], r["top"] + 0.3 * r["height"])
    page.mouse.down()
    page.mouse.move(r["left"] + 0.66 * r["width"], r["top"] + 0.62 * r["height"], steps=5)
    before = _seq(page)
    page.mouse.up()
    _answered(page, before)
    assert "Box" in _status(page)
    _press(page, "#segment", "Segmented")
    _chat(page, "this is L1")
    assert "selected mask is now L1" in _status(page), _status(page)
    _label_shows(page, "L1")  # the menu follows the chat
    _press(page, "#export-all", "Exported")
    exported = _members(_download(page))
    view = (page.locator(f"{VIEWER} .ssam-img").get_attribute("src"), _status(page).split("\n")[0])
    _shot(page, f"{tag}_segmented_{size[0]}px", tmp_path)
    page.get_by_text("Share: flag a result").click()
    _press(page, "#save-session", "Session saved")
    bundle = tmp_path / f"{tag}.npz"
    bundle.write_bytes(_download(page))
    page.close()

    again = _new_page(browser, app_url, size)
    again.get_by_text("Share: flag a result").click()
    before = _seq(again)
    again.locator("#open-session input[type=file]").set_input_files(str(bundle))
    _answered(again, before)
    assert "Reopened" in _status(again)
    reopened_view = (
        again.locator(f"{VIEWER} .ssam-img").get_attribute("src"),
        _status(again).split("\n")[0],
    )
    assert reopened_view == view  # the same picture and the same place
    _label_shows(again, "L1")
    _press(again, "#export-all", "Exported")
    assert _members(_download(again)) == exported  # identical files, byte for byte
    _shot(again, f"{tag}_reopened_{size[0]}px", tmp_path)
    again.close()
    return exported


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "400px"])
def test_new_user_run_on_ct_small(browser, app_url, size, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    files = _new_user_run(
        browser, app_url, [get_testdata_file("CT_small.dcm")], size, tmp_path, "ct_small"
    )
    assert any(n.endswith(".nii.gz") for n in files) and any(n.endswith(".csv") for n in files)
    assert any(n.endswith("_seg.dcm") for n in files)  # DICOM source: DICOM-SEG included
    names = next(v for n, v in files.items() if n.endswith("_itksnap.txt")).decode()
    assert '"L1"' in names


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "400px"])
def test_new_user_run_on_shared_dicom_series(browser, app_url, size, tmp_path: Path) -> None:
    if not SHARED_DICOM.is_dir():
        pytest.skip(f"shared DICOM series not found at {SHARED_DICOM}")
    files = sorted(str(p) for p in SHARED_DICOM.glob("*.dcm"))
    exported = _new_user_run(browser, app_url, files, size, tmp_path, "dicom_series")
    assert any(n.endswith("_seg.dcm") for n in exported)


def test_upload_click_segment(page, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    _upload(page, [get_testdata_file("CT_small.dcm")])
    r = _rect(page)
    # The vertebral body of CT_small is near the image centre.
    assert _click(page, r["left"] + r["width"] * 0.5, r["top"] + r["height"] * 0.47) == (64, 60)
    page.keyboard.press("Enter")  # Enter segments
    _wait_status(page, "Segmented")
    assert _pixels(_status(page)) > 20
    page.keyboard.press("n")  # N picks Point −
    negative = page.locator("#ct-image button[data-mode=negative]")
    assert negative.get_attribute("aria-pressed") == "true"
    _click(page, r["left"] + 2, r["top"] + 2)
    assert "Negative point at (0, 0)" in _status(page)
    page.keyboard.press("u")  # U undoes
    _wait_status(page, "Undid")
    _shot(page, "segmented", tmp_path)
    page.keyboard.press("s")  # S picks Select: a click on the mask selects it, adds no point
    before = _seq(page)
    # (58, 26) lies 16 px deep inside the mask the shipped weights give for that click.
    page.mouse.click(r["left"] + r["width"] * 58.5 / 128, r["top"] + r["height"] * 26.5 / 128)
    _answered(page, before)
    assert "Selected vertebra (label 1)" in _status(page), _status(page)
    shown = page.locator("#shown-labels input[type=checkbox]")
    assert shown.count() == 1 and shown.first.is_checked()
    before = _seq(page)
    shown.first.uncheck()  # hide the only label: the picture loses its overlay
    _answered(page, before)
    assert "Hidden: vertebra" in _status(page)


def test_a_bad_file_does_not_block_the_next_upload(page, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"not dicom")
    before = _seq(page)
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.wait_for_function(
        "document.querySelector('#status').innerText.includes('Could not open')",
        timeout=60_000,
    )
    assert _seq(page) == before  # nothing was open, the panel stays empty
    _upload(page, [get_testdata_file("CT_small.dcm")])
    assert "broken.dcm" not in page.locator("#upload").inner_text()


def test_chat_command_changes_image_state(page, tmp_path: Path) -> None:
    page.locator("#load-example").click()
    _wait_status(page, "Opened")
    _chat(page, "add a box from (30, 30) to (100, 100) and generate the box mask")
    assert _pixels(_status(page)) > 20
    _chat(page, "use the bone window")
    page.wait_for_function(
        "document.querySelector('#window input').value === 'bone'", timeout=30_000
    )  # the window menu follows the chat
    _chat(page, "undo")
    assert "Undid" in _status(page)
    _shot(page, "chat", tmp_path)


def test_volume_propagate_planes_and_export(page, tmp_path: Path) -> None:
    page.locator("#example input").click()
    page.get_by_role("option", name=re.compile("Synthetic lumbar volume")).click()
    page.locator("#load-example").click()
    _wait_status(page, "Opened")
    _chat(page, "这是腰2")  # naming the vertebra in chat also sets the label dropdown
    assert "labelled L2" in _status(page)
    _label_shows(page, "L2")
    _chat(page, "add a box from (40, 40) to (120, 112) and generate the box mask")
    assert "Segmented" in _status(page)
    page.locator("#propagate").click()
    _wait_status(page, "Propagated")
    page.evaluate("document.activeElement.blur()")  # keys go to the page, not the chat box
    page.keyboard.press("ArrowUp")
    _wait_status(page, "Axial slice 21")
    page.keyboard.press("ArrowDown")
    _wait_status(page, "Axial slice 20")
    page.locator("#ct-image .ssam-stage").hover()
    page.mouse.wheel(0, -100)  # the wheel steps slices too
    _wait_status(page, "Axial slice 21")
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


def test_keys_act_on_the_image_after_typing_in_the_chat(page) -> None:
    """A click on the image takes the keyboard from the chat box: Enter segments, N picks
    Point − (before, Enter sent an empty chat message and N was typed into the chat box)."""
    page.locator("#load-example").click()
    _wait_status(page, "Opened")
    _chat(page, "bone window")  # the chat box has the keyboard now
    r = _rect(page)
    _click(page, r["left"] + r["width"] * 0.5, r["top"] + r["height"] * 0.47)
    page.keyboard.press("Enter")
    _wait_status(page, "Segmented")
    page.keyboard.press("n")
    negative = page.locator("#ct-image button[data-mode=negative]")
    assert negative.get_attribute("aria-pressed") == "true"
    assert page.locator("#chat-input textarea").input_value() == ""
    assert "" not in page.locator("#chat .message").all_inner_texts()  # no empty bubble


def _leaving_is_held_back(page) -> bool:
    """Whether the page cancels a `beforeunload` (the browser then asks "Leave site?").

    Headless Chromium closes and reloads without showing that dialog, so the test sends the
    event itself, as the page's last act (Gradio's own listener closes the page's connection);
    what the browser does with a cancelled event is the browser's job."""
    return page.evaluate(
        """(() => { const e = new Event("beforeunload", {cancelable: true});
        window.dispatchEvent(e); return e.defaultPrevented; })()"""
    )


@pytest.mark.parametrize(
    ("keys", "asks"), [((), False), (("Enter",), True), (("Enter", "u"), False)]
)
def test_leaving_the_page_with_masks_asks_first(browser, app_url, keys, asks) -> None:
    """A reload or a closed tab ends the session: with masks on it the browser asks first
    (a point alone is quickly redone; an undone mask is no work)."""
    page = _new_page(browser, app_url)
    page.locator("#load-example").click()
    _wait_status(page, "Opened")
    r = _rect(page)
    _click(page, r["left"] + r["width"] * 0.5, r["top"] + r["height"] * 0.47)
    for key, answer in zip(keys, ("Segmented", "Undid"), strict=False):
        page.keyboard.press(key)
        _wait_status(page, answer)
    assert _leaving_is_held_back(page) == asks
    page.close()


def test_slices_step_from_the_image_toolbar_on_a_phone(browser, app_url) -> None:
    """A phone has no wheel or arrow keys and the slider sits far below the image: the image's
    own toolbar steps through the slices (and shows its buttons only for volumes)."""
    page = _new_page(browser, app_url, (390, 844))
    try:
        page.locator("#load-example").click()
        _wait_status(page, "Opened")  # CT_small: one slice, nothing to step through
        step_up = page.locator("#ct-image button[data-step='1']")
        assert not step_up.is_visible()
        page.locator("#example input").click()
        page.get_by_role("option", name=re.compile("Synthetic lumbar volume")).click()
        page.locator("#load-example").click()
        _wait_status(page, "Opened synthetic")
        start = int(re.search(r"axial slice (\d+)/", _status(page)).group(1))
        step_up.click()
        _wait_status(page, f"Axial slice {start + 1} ")
        page.locator("#ct-image button[data-step='-1']").click()
        _wait_status(page, f"Axial slice {start} ")
        box = step_up.bounding_box()
        assert box and box["x"] + box["width"] <= 390  # on screen, beside the other tools
    finally:
        page.close()


def test_a_tap_on_the_empty_panel_opens_the_file_chooser_on_a_phone(browser, app_url) -> None:
    """At 390×844 the upload box is two screens below the empty image panel that says "Open a
    CT file": a tap on the panel itself opens the file chooser."""
    from pydicom.data import get_testdata_file

    page = _new_page(browser, app_url, (390, 844))
    try:
        assert page.locator("#upload").bounding_box()["y"] > 844  # not on the first screen
        before = _seq(page)
        with page.expect_file_chooser(timeout=10_000) as chooser:
            page.locator("#ct-image .ssam-stage").click()
        chooser.value.set_files(get_testdata_file("CT_small.dcm"))
        _answered(page, before)
        assert "Opened" in _status(page)
    finally:
        page.close()


ACTIONS = [
    "segment",
    "segment-points",
    "segment-box",
    "undo",
    "clear",
    "propagate",
    "measure",
    "export-png",
    "export-nifti",
    "export-all",
]


def _rows(page, ids: list[str]) -> int:
    """How many rows the elements with `ids` take on the page (distinct top edges)."""
    return page.evaluate(
        """ids => new Set(ids.map(i => Math.round(
        document.getElementById(i).getBoundingClientRect().top))).size""",
        ids,
    )


def _inside_viewport(page, selector: str) -> bool:
    size = page.viewport_size
    r = _rect(page, selector)
    return (
        r["left"] >= 0
        and r["top"] >= 0
        and r["left"] + r["width"] <= size["width"]
        and r["top"] + r["height"] <= size["height"]
    )


def test_a_phone_keeps_the_actions_compact_and_the_chat_near_the_image(browser, app_url) -> None:
    """At 390×844 the action buttons sit two or three to a row, the chat box is less than one
    screen below the image, and a chat command brings the image back into view so its effect
    is seen (the chat used to sit 2,000 px below, one button a row)."""
    page = _new_page(browser, app_url, (390, 844))
    try:
        page.locator("#load-example").click()
        _wait_status(page, "Opened")
        assert _rows(page, ACTIONS) <= 4
        image, chat = _rect(page, "#ct-image .ssam-stage"), _rect(page, "#chat-input")
        # The image's lower edge and the whole chat box fit on one screen.
        assert chat["top"] + chat["height"] - (image["top"] + image["height"]) <= 844
        page.locator("#chat-input textarea").scroll_into_view_if_needed()
        assert not _inside_viewport(page, "#ct-image .ssam-img")  # the chat box is below it
        _chat(page, "use the bone window")
        page.wait_for_function(
            "document.querySelector('#window input').value === 'bone'", timeout=30_000
        )
        page.wait_for_timeout(300)  # a smooth scroll, if the browser animates it
        assert _inside_viewport(page, "#ct-image .ssam-img")
    finally:
        page.close()


@pytest.mark.parametrize(
    ("size", "min_panel"),
    [((1366, 768), 520), ((1920, 1080), 820), ((2560, 1440), 1200)],
    ids=["laptop", "1920", "2560"],
)
def test_the_image_panel_uses_the_screen(browser, app_url, size, min_panel) -> None:
    """The panel takes the width the screen offers (Gradio's default caps the app at 1536 px:
    an 800 px image on a 2560 screen, 514 px on a 1366 laptop) while the image and the status
    with its answer stay whole inside the window."""
    page = _new_page(browser, app_url, size)
    try:
        page.locator("#load-example").click()
        _wait_status(page, "Opened")
        assert _rect(page, "#ct-image .ssam-stage")["width"] >= min_panel
        page.locator("#ct-image").scroll_into_view_if_needed()
        assert _inside_viewport(page, "#ct-image .ssam-img")
        assert _inside_viewport(page, "#status")
    finally:
        page.close()
