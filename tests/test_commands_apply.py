"""Chat operations that the protocol added (redo, typed window values, DICOM-SEG export) applied
by the session: what a parsed message really does to the user's work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spinalsam.backends import DefaultBackend
from spinalsam.commands import Router
from spinalsam.phantom import make_spine_phantom
from spinalsam.session import Session


@pytest.fixture
def session(tmp_path: Path) -> Session:
    volume, _ = make_spine_phantom(shape=(6, 96, 96), n_vertebrae=1)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(volume.astype("int16")), str(path))
    s = Session(DefaultBackend(), workdir=tmp_path / "work")
    s.open_files([path])
    return s


def _chat(session: Session, text: str) -> list[str]:
    result = Router(None).parse(text)
    return [r.message for r in session.apply(result.operations)]


def test_undo_then_redo_restores_the_prompt(session: Session) -> None:
    _chat(session, "add a point at (40, 40)")
    assert len(session.prompts.points) == 1
    _chat(session, "undo")
    assert len(session.prompts.points) == 0
    assert "Redid" in _chat(session, "redo")[0]
    assert len(session.prompts.points) == 1
    assert "Nothing to redo" in _chat(session, "ctrl+y")[0]


def test_a_new_change_forgets_what_undo_took_back(session: Session) -> None:
    _chat(session, "add a point at (40, 40)")
    _chat(session, "undo twice")
    _chat(session, "add a point at (50, 50)")
    assert "Nothing to redo" in _chat(session, "重做")[0]


def test_typed_window_values_set_the_window(session: Session) -> None:
    messages = _chat(session, "W1500 L300")
    assert "level 300" in messages[0] and "width 1500" in messages[0]
    assert tuple(session.window) == (300, 1500)
    _chat(session, "窗宽400窗位50")
    assert tuple(session.window) == (50, 400)


def test_repeated_moves_step_through_the_volume(session: Session) -> None:
    start = session.current.index
    _chat(session, "go down 2 slices")
    assert session.current.index == start + 2
    _chat(session, "往上翻两层")
    assert session.current.index == start


def test_dicom_seg_export_of_a_nifti_source_is_a_clear_message(session: Session) -> None:
    _chat(session, "add a box from (20, 20) to (80, 80) and generate the box mask")
    assert np.any(session.label_slice())
    (message,) = _chat(session, "export as dicom seg")
    assert message and "Traceback" not in message
