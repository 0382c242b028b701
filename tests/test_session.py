"""Session behaviour: every operation, undo, errors that keep state, export, bundles, isolation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from spinalsam import ops
from spinalsam.backends import DefaultBackend
from spinalsam.bundle import load_bundle, save_bundle
from spinalsam.commands import parse_offline
from spinalsam.examples import example_files
from spinalsam.io import load_ct
from spinalsam.metrics import dice
from spinalsam.session import Session, SessionError


@pytest.fixture
def backend() -> DefaultBackend:
    return DefaultBackend(reason="tests use the embedded default")


@pytest.fixture
def session(backend: DefaultBackend, tmp_path: Path) -> Session:
    return Session(backend, workdir=tmp_path)


@pytest.fixture
def phantom_session(session: Session, tmp_path: Path) -> Session:
    session.open_files(example_files("Synthetic lumbar volume (3 vertebrae, HU)", tmp_path))
    return session


def _ok(results) -> list[str]:
    assert all(r.ok for r in results), [r.message for r in results]
    return [r.message for r in results]


def test_open_example_ct_small(session: Session, tmp_path: Path) -> None:
    msg = session.open_files(
        example_files("CT vertebra slice (pydicom CT_small.dcm, HU)", tmp_path)
    )
    assert "Hounsfield" in msg and "128×128" in msg
    assert session.slice_image().is_hu
    assert session.slice_image().spacing == pytest.approx((0.661468, 0.661468))


def test_point_click_segment_undo(phantom_session: Session) -> None:
    s = phantom_session
    h, w = s.slice_shape
    s.click(w // 2, int(h * 0.45), "positive")
    assert len(s.prompts.points) == 1
    _ok(s.apply([ops.Segment(prompt="points")]))
    assert s.mask().sum() > 100
    _ok(s.apply([ops.Undo()]))
    assert not s.mask().any() and len(s.prompts.points) == 1  # undo removed the mask only
    _ok(s.apply([ops.Undo()]))
    assert s.prompts.is_empty


def test_box_segment_matches_phantom(phantom_session: Session, tmp_path: Path) -> None:
    s = phantom_session
    labels = load_ct([tmp_path / "synthetic_lumbar_phantom.nii.gz"])  # image itself, for shape
    assert labels.volume.shape == s.current.ct.volume.shape
    from spinalsam.phantom import make_spine_phantom

    _, gt = make_spine_phantom(shape=(40, 160, 160), n_vertebrae=3)
    gt_slice = gt[s.current.index] > 0
    ys, xs = np.nonzero(gt_slice)
    box = [int(xs.min()) - 5, int(ys.min()) - 5, int(xs.max()) + 5, int(ys.max()) + 5]
    _ok(
        s.apply(
            ops.parse_operations(
                [{"op": "add_box", "box": box}, {"op": "segment", "prompt": "box"}]
            )
        )
    )
    assert dice(s.mask(), gt_slice) > 0.85


def test_pending_clicks_from_chat_operation(phantom_session: Session) -> None:
    s = phantom_session
    (msg,) = _ok(s.apply([ops.AddPoints(count=3, label="negative")]))
    assert "3 negative points" in msg
    for i in range(3):
        s.click(10 + i, 10, "positive")  # the pending request wins over the click mode
    assert s.pending is None
    assert [p.positive for p in s.prompts.points] == [False, False, False]


def test_two_click_box(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox()]))
    s.click(80, 70, "positive")
    assert not s.prompts.boxes
    s.click(20, 30, "positive")
    assert s.prompts.boxes == ((20, 30, 80, 70),)


def test_clear_targets_and_single_undo(phantom_session: Session) -> None:
    s = phantom_session
    s.click(80, 70, "positive")
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment()]))
    _ok(s.apply([ops.Clear(target="points")]))
    assert not s.prompts.points and s.prompts.boxes and s.mask().any()
    _ok(s.apply([ops.Clear(target="all")]))
    assert s.prompts.is_empty and not s.mask().any()
    _ok(s.apply([ops.Undo()]))  # "clear all" is one step
    assert s.prompts.boxes and s.mask().any()


def test_coordinates_outside_image_are_rejected(phantom_session: Session) -> None:
    s = phantom_session
    (res,) = s.apply([ops.AddPoints(points=[(5000, 5)])])
    assert not res.ok and "outside" in res.message
    assert s.prompts.is_empty


def test_navigation_and_errors_keep_state(phantom_session: Session) -> None:
    s = phantom_session
    s.click(80, 70, "positive")
    start = s.current.index
    _ok(s.apply([ops.NextImage()]))
    assert s.current.index == start + 1 and s.prompts.is_empty  # prompts are per slice
    (bad,) = s.apply([ops.GotoSlice(index=999)])
    assert not bad.ok and "0–39" in bad.message
    _ok(s.apply([ops.GotoSlice(index=start)]))
    assert len(s.prompts.points) == 1


def test_bad_file_keeps_previous_image_and_prompts(
    phantom_session: Session, tmp_path: Path
) -> None:
    s = phantom_session
    s.click(80, 70, "positive")
    bad = tmp_path / "broken.nii.gz"
    bad.write_text("not a nifti")
    with pytest.raises(SessionError, match="Could not open"):
        s.open_files([bad])
    assert s.current.ct.name.startswith("synthetic_lumbar_phantom")
    assert len(s.prompts.points) == 1


def test_window_presets(phantom_session: Session, session: Session, tmp_path: Path) -> None:
    before = phantom_session.slice_image().display.copy()
    (msg,) = _ok(phantom_session.apply([ops.SetWindow(preset="lung")]))
    assert "Lung window" in msg
    assert not np.array_equal(before, phantom_session.slice_image().display)
    png = tmp_path / "gray.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)).save(png)
    session.open_files([png])
    (msg,) = _ok(session.apply([ops.SetWindow(preset="bone")]))
    assert "8-bit" in msg
    assert np.array_equal(session.slice_image().display, np.asarray(Image.open(png)))


def test_export_png_and_nifti_roundtrip(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    png = s.apply([ops.Export(format="png")])[0].file
    assert png is not None and np.array_equal(np.asarray(Image.open(png)) > 0, s.mask())
    nii = s.apply([ops.Export(format="nifti")])[0].file
    written = sitk.ReadImage(str(nii))
    source = sitk.ReadImage(str(s.workdir / "synthetic_lumbar_phantom.nii.gz"))
    assert written.GetSize() == source.GetSize()
    assert written.GetSpacing() == pytest.approx(source.GetSpacing())
    assert int(sitk.GetArrayFromImage(written).astype(bool).sum()) == int(s.mask().sum())


def test_measure_and_compare(phantom_session: Session, tmp_path: Path) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    (msg,) = _ok(s.apply([ops.Measure()]))
    assert "area mm2" in msg and "hu mean" in msg
    gt = sitk.GetImageFromArray((s.current.labels > 0).astype(np.uint8))
    gt.CopyInformation(sitk.ReadImage(str(s.workdir / "synthetic_lumbar_phantom.nii.gz")))
    sitk.WriteImage(gt, str(tmp_path / "gt.nii.gz"))
    table = s.compare([tmp_path / "gt.nii.gz"])
    assert "| this slice | 1.0000 | 1.0000 | 0.00 | 0.00 |" in table


def test_propagate_is_one_undo_step(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    (msg,) = _ok(s.apply([ops.Propagate()]))
    assert "Propagated" in msg
    filled = int((s.current.labels > 0).any(axis=(1, 2)).sum())
    assert filled > 3
    _ok(s.apply([ops.Undo()]))
    assert int((s.current.labels > 0).any(axis=(1, 2)).sum()) == 1


def test_bundle_roundtrip(
    phantom_session: Session, backend: DefaultBackend, tmp_path: Path
) -> None:
    s = phantom_session
    s.click(80, 70, "negative")
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    path = save_bundle(s, tmp_path)
    other = Session(backend, workdir=tmp_path / "other")
    msg = load_bundle(other, path)
    assert "Reopened" in msg
    assert other.current.index == s.current.index
    assert other.prompts == s.prompts
    assert np.array_equal(other.current.labels, s.current.labels)
    assert other.current.ct.spacing == pytest.approx(s.current.ct.spacing)


def test_bad_bundle_keeps_state(phantom_session: Session, tmp_path: Path) -> None:
    bad = tmp_path / "evil.npz"
    np.savez(bad, meta=np.array("{not json"))
    with pytest.raises(SessionError, match="not a valid"):
        load_bundle(phantom_session, bad)
    assert phantom_session.has_image


def test_sessions_are_independent(backend: DefaultBackend, tmp_path: Path) -> None:
    a = Session(backend, workdir=tmp_path / "a")
    b = Session(backend, workdir=tmp_path / "b")
    files = example_files("Synthetic lumbar volume (3 vertebrae, HU)", tmp_path)
    a.open_files(files)
    b.open_files(files)
    a.click(80, 70, "positive")
    assert b.prompts.is_empty
    assert a.segmenter is not b.segmenter


def test_operations_without_image_explain(session: Session) -> None:
    (res,) = session.apply([ops.Segment()])
    assert not res.ok and "Open an image first" in res.message
    (res,) = session.apply([ops.Help()])
    assert res.ok and "point" in res.message.lower()


def test_thick_slice_planes_are_shown_with_square_pixels(phantom_session: Session) -> None:
    s = phantom_session  # 0.8 × 0.8 × 2.5 mm voxels
    s.set_plane("sagittal")
    assert s.slice_shape == (40, 160)
    assert s.display_scale == pytest.approx((1.0, 3.125))
    assert s.display_shape == (125, 160) and s.view().shape == (125, 160, 3)
    # Display-pixel coordinates (clicks, chat) map back onto voxels.
    _ok(s.apply([ops.AddPoints(points=[(80, 124)])]))
    assert (s.prompts.points[0].x, s.prompts.points[0].y) == (80, 39)
    (bad,) = s.apply([ops.AddPoints(points=[(80, 125)])])
    assert not bad.ok


def test_compare_pairs_labels_by_overlap_in_3d(phantom_session: Session, tmp_path: Path) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    s.set_active_label("L2")
    gt = sitk.GetImageFromArray((s.current.labels > 0).astype(np.uint8) * 31)  # other tool's id
    gt.CopyInformation(sitk.ReadImage(str(s.workdir / "synthetic_lumbar_phantom.nii.gz")))
    sitk.WriteImage(gt, str(tmp_path / "gt.nii.gz"))
    table = s.compare([tmp_path / "gt.nii.gz"])
    assert "| vertebra ↔ GT 31 (3-D) | 1.0000 | 1.0000 | 0.00 | 0.00 |" in table
    assert "L2" not in table  # a label without voxels is not compared


def test_undo_returns_to_the_slice_it_changes(phantom_session: Session) -> None:
    s = phantom_session
    start = s.current.index
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    _ok(s.apply([ops.GotoSlice(index=start + 5)]))
    (msg,) = _ok(s.apply([ops.Undo()]))
    assert s.current.index == start and not s.mask().any()
    assert f"axial slice {start}" in msg


def test_close_removes_only_its_own_workdir(backend: DefaultBackend, tmp_path: Path) -> None:
    own = Session(backend)
    own.open_files(example_files("Synthetic lumbar volume (3 vertebrae, HU)", own.workdir))
    own.close()
    assert not own.workdir.exists()
    given = Session(backend, workdir=tmp_path)
    given.close()
    assert tmp_path.exists()


def test_chat_names_the_vertebra_new_masks_belong_to(phantom_session: Session) -> None:
    s = phantom_session
    (msg,) = _ok(s.apply(parse_offline("标记为腰1").operations))
    assert "L1" in msg
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    assert s.label_set.name_of(s.active_label) == "L1"
    assert set(np.unique(s.current.labels)) == {0, s.active_label}
