"""The running app through its public API (gradio_client): the same calls a script would make."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from spinalsam.flags import FlagStore

pytestmark = pytest.mark.slow

CT_SMALL = "CT vertebra slice (pydicom CT_small.dcm, HU)"


@pytest.fixture
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False, download_files=False)


def _status(result: tuple) -> str:
    """The status markdown of the view outputs [image, slider, plane, status, …]."""
    return result[3]


def _chat(client: Client, text: str) -> str:
    out = client.predict(text, [], api_name="/chat")
    return out[5]  # [textbox, chatbot, image, slider, plane, status, shown, download, label]


def test_open_click_segment_export(client: Client) -> None:
    assert "CT_small" in _status(client.predict(CT_SMALL, api_name="/load_example"))
    assert "point" in _chat(client, "add a positive point at (64, 60)").lower()
    status = _chat(client, "generate point mask")
    assert "Segmented" in status, status
    pixels = int(status.split("ms: ")[1].split(" px")[0])
    assert pixels > 20
    out = client.predict(api_name="/export_png")
    assert out[5] is not None  # a file to download (after [image, slider, plane, status, shown])
    mask = np.asarray(Image.open(_path(out[5][0])))
    assert int((mask > 0).sum()) == pixels
    out = client.predict(api_name="/export_all")
    assert "Exported" in _status(out)
    with zipfile.ZipFile(_path(out[5][0])) as zf:
        names = zf.namelist()
    assert any(n.endswith(".nii.gz") for n in names) and any(n.endswith(".csv") for n in names)
    assert any(n.endswith("_seg.dcm") for n in names)  # CT_small is DICOM
    shown = client.predict([], api_name="/show_labels")  # untick every label: all hidden
    assert "Hidden: vertebra" in _status(shown) and shown[4]["value"] == []
    assert "Every mask is hidden" in _status(client.predict(api_name="/export_png"))


def _path(file: dict | str) -> str:
    return file["path"] if isinstance(file, dict) else file


def test_upload_through_api_and_measure(client: Client) -> None:
    from pydicom.data import get_testdata_file

    out = client.predict([handle_file(get_testdata_file("CT_small.dcm"))], api_name="/open_files")
    assert "Hounsfield" in _status(out)
    _chat(client, "add a box from (30, 30) to (100, 100) and generate the box mask")
    status = _status(client.predict(api_name="/measure"))
    assert "hu mean" in status


def test_concurrent_sessions_keep_their_own_prompts(app_url: str) -> None:
    a = Client(app_url, verbose=False, download_files=False)
    b = Client(app_url, verbose=False, download_files=False)

    def run(client: Client, point: tuple[int, int]) -> str:
        client.predict(CT_SMALL, api_name="/load_example")
        _chat(client, f"add a point at ({point[0]}, {point[1]})")
        return _chat(client, "segment it")

    with ThreadPoolExecutor(2) as pool:
        sa, sb = pool.map(run, [a, b], [(64, 60), (20, 110)])
    assert "Segmented" in sa and "Segmented" in sb
    # Each session segmented from exactly its one point: undoing twice empties its prompts.
    for client in (a, b):
        client.predict(api_name="/undo")
        client.predict(api_name="/undo")
        assert "Nothing to segment" in _chat(client, "segment it")


def _png_bytes(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def _hostile_files(folder: Path) -> dict[str, bytes]:
    """At least 20 malformed or hostile uploads, each by name → content."""
    from pydicom.data import get_testdata_file

    dicom = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    zip_traversal = io.BytesIO()
    with zipfile.ZipFile(zip_traversal, "w") as zf:
        zf.writestr("../../evil.dcm", dicom)
        zf.writestr("/abs/evil2.dcm", dicom)
    empty_zip = io.BytesIO()
    zipfile.ZipFile(empty_zip, "w").close()
    text_zip = io.BytesIO()
    with zipfile.ZipFile(text_zip, "w") as zf:
        zf.writestr("notes.txt", "hello")
    huge = Image.new("1", (20000, 20000))
    nifti_header = bytearray(348)
    struct.pack_into("<i", nifti_header, 0, 348)
    struct.pack_into("<8h", nifti_header, 40, 4, 4, 4, 4, 3, 1, 1, 1)  # 4-D
    struct.pack_into("<h", nifti_header, 70, 4)  # int16
    struct.pack_into("<4s", nifti_header, 344, b"n+1\0")
    four_d = gzip.compress(bytes(nifti_header) + b"\0" * 4 + b"\0" * (4 * 4 * 4 * 3 * 2))
    return {
        "empty.dcm": b"",
        "empty.png": b"",
        "truncated.dcm": dicom[: len(dicom) // 3],
        "header_only.dcm": dicom[:600],
        "text.nii.gz": b"this is not a nifti file",
        "text.nii": b"plain text",
        "text.dcm": b"plain text pretending to be DICOM",
        "garbage.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 100,
        "truncated.png": _png_bytes(Image.new("L", (64, 64), 128))[:60],
        "truncated.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 50,
        "huge.png": _png_bytes(huge, optimize=True),
        "four_d.nii.gz": four_d,
        "traversal.zip": zip_traversal.getvalue(),
        "empty.zip": empty_zip.getvalue(),
        "text_only.zip": text_zip.getvalue(),
        "corrupt.zip": b"PK\x03\x04" + b"\0" * 64,
        "program.exe": b"MZ\x90\x00" + b"\0" * 64,
        "script.py": b"import os; os.system('rm -rf /')",
        "image.svg": b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        "random.nii.gz": gzip.compress(np.random.default_rng(0).bytes(2000)),
        "bad.mha": b"ObjectType = Image\nNDims = 3\nDimSize = 10 10\n",
    }


def test_hostile_uploads_keep_server_and_session(client: Client, tmp_path: Path) -> None:
    client.predict(CT_SMALL, api_name="/load_example")
    _chat(client, "add a point at (64, 60)")
    files = _hostile_files(tmp_path)
    assert len(files) >= 20
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        try:
            status = _status(client.predict([handle_file(str(path))], api_name="/open_files"))
        except AppError as exc:  # Gradio itself refuses extensions the upload box does not accept
            assert "Invalid file type" in str(exc), (name, exc)
            continue
        assert "⚠️" in status and "Could not open" in status, (name, status)
        assert "CT_small" in status, (name, status)  # still showing the previous image
    assert not (tmp_path.parent / "evil.dcm").exists()
    assert "Segmented" in _chat(client, "segment it")  # the earlier prompt survived


def test_offtopic_and_help_in_chat(client: Client) -> None:
    out = client.predict("tell me a joke", [], api_name="/chat")
    history = out[1]
    assert history[-1]["role"] == "assistant"
    assert "offline" in str(history[-1]["content"]).lower()
    out = client.predict("help", [], api_name="/chat")
    assert "point" in str(out[1][-1]["content"]).lower()


def test_chat_names_the_label_and_the_dropdown_follows(client: Client) -> None:
    client.predict(CT_SMALL, api_name="/load_example")
    out = client.predict("this is L1", [], api_name="/chat")
    assert "**L1**" in out[5] and out[8] == "L1"


def test_session_bundle_roundtrip_via_api(app_url: str) -> None:
    a = Client(app_url, verbose=False, download_files=False)
    a.predict(CT_SMALL, api_name="/load_example")
    _chat(a, "add a box from (30, 30) to (100, 100) and generate the box mask")
    history = [
        {"role": "user", "content": [{"type": "text", "text": "add a box"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Added box."}]},
    ]
    saved = a.predict(history, api_name="/save_session")[1]
    b = Client(app_url, verbose=False, download_files=False)
    out = b.predict(handle_file(_path(saved[0])), [], api_name="/open_session")
    assert "Reopened" in _status(out)
    assert [m["content"] for m in out[5]] == [m["content"] for m in history]  # chat came back
    assert "Segmented" in _chat(b, "generate box mask")  # the box came back with the bundle


def test_crafted_bundle_is_refused_and_the_session_kept(client: Client, tmp_path: Path) -> None:
    client.predict(CT_SMALL, api_name="/load_example")
    _chat(client, "add a point at (64, 60)")
    evil = tmp_path / "evil.npz"
    np.savez(evil, meta=np.array('{"version": 2, "images": [{"name": "x"}]}'))
    out = client.predict(handle_file(str(evil)), [], api_name="/open_session")
    assert "refused" in _status(out) and "unchanged" in _status(out)
    assert "CT_small" in _status(out)  # still showing the previous image
    assert "Segmented" in _chat(client, "segment it")


def test_flag_stores_prompts_mask_and_metrics(client: Client, app_workdir: Path) -> None:
    client.predict(CT_SMALL, api_name="/load_example")
    _chat(client, "add a box from (30, 30) to (100, 100) and generate the box mask")
    client.predict(api_name="/measure")
    assert "Thanks" in client.predict("needs correction", "left pedicle missing", api_name="/flag")
    stored = FlagStore(app_workdir / "flagged").rows()
    rows = str(stored)
    assert "left pedicle missing" in rows and "needs correction" in rows
    assert "[30, 30, 100, 100]" in rows and "CT_small" in rows and "hu_mean" in rows
    assert stored[-1]["has_mask"] == 1  # the visible mask went with the flag


def test_answers_beside_the_image_keep_the_status_header(client: Client) -> None:
    """Save, DICOM-SEG and flag answer in the status too: the line saying which file, slice
    and label is on screen stays above their message instead of vanishing."""
    client.predict(CT_SMALL, api_name="/load_example")
    _chat(client, "add a box from (30, 30) to (100, 100) and generate the box mask")
    for status in (
        client.predict([], api_name="/save_session")[0],
        client.predict(api_name="/export_dicom_seg")[0],
        client.predict("good", "", api_name="/flag"),
    ):
        assert status.startswith("**CT_small.dcm** · axial slice 0/0"), status
