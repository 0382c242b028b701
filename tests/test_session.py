"""Session behaviour: every operation, undo, errors that keep state, export, bundles, isolation."""

from __future__ import annotations

import copy
import gc
import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy import ndimage as ndi

from spinalsam import ops
from spinalsam.backends import DefaultBackend
from spinalsam.commands import parse_offline
from spinalsam.examples import EXAMPLES, example_files
from spinalsam.io import load_ct
from spinalsam.ledger import ImageLedger
from spinalsam.metrics import dice
from spinalsam.session import UNDO_DEPTH, Session, SessionError


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


def _click(s: Session, x: int, y: int, mode: str = "positive") -> str:
    """A click on the centre of slice pixel (x, y), as the image panel sends it."""
    h, w = s.slice_shape
    (res,) = s.apply([ops.ClickImage(x=(x + 0.5) / w, y=(y + 0.5) / h, mode=mode)])
    if not res.ok:
        raise SessionError(res.message)
    return res.message


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
    _click(s, w // 2, int(h * 0.45), "positive")
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
        _click(s, 10 + i, 10, "positive")  # the pending request wins over the click mode
    assert s.pending is None
    assert [p.positive for p in s.prompts.points] == [False, False, False]


def test_two_click_box(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox()]))
    _click(s, 80, 70, "positive")
    assert not s.prompts.boxes
    _click(s, 20, 30, "positive")
    assert s.prompts.boxes == ((20, 30, 80, 70),)


def test_clear_targets_and_single_undo(phantom_session: Session) -> None:
    s = phantom_session
    _click(s, 80, 70, "positive")
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
    _click(s, 80, 70, "positive")
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
    _click(s, 80, 70, "positive")
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
    assert "Sagittal check (slice" in msg  # the learned default's axial result is checked
    filled = int((s.current.labels > 0).any(axis=(1, 2)).sum())
    assert filled > 3
    _ok(s.apply([ops.Undo()]))
    assert int((s.current.labels > 0).any(axis=(1, 2)).sum()) == 1


def test_sessions_are_independent(backend: DefaultBackend, tmp_path: Path) -> None:
    a = Session(backend, workdir=tmp_path / "a")
    b = Session(backend, workdir=tmp_path / "b")
    files = example_files("Synthetic lumbar volume (3 vertebrae, HU)", tmp_path)
    a.open_files(files)
    b.open_files(files)
    _click(a, 80, 70, "positive")
    assert b.prompts.is_empty
    assert a.segmenter is not b.segmenter


def test_operations_without_image_explain(session: Session) -> None:
    (res,) = session.apply([ops.Segment()])
    assert not res.ok and "Open an image first" in res.message
    (res,) = session.apply([ops.Help()])
    assert res.ok and "point" in res.message.lower()


def test_thick_slice_planes_are_shown_with_square_pixels(phantom_session: Session) -> None:
    s = phantom_session  # 0.8 × 0.8 × 2.5 mm voxels
    _ok(s.apply([ops.SetPlane(plane="sagittal")]))
    assert s.slice_shape == (40, 160)
    assert s.display_scale == pytest.approx((1.0, 3.125))
    assert s.display_shape == (125, 160) and s.view().shape == (125, 160, 3)
    # Prompts use the slice's own pixel grid, whatever the picture's stretch.
    _ok(s.apply([ops.AddPoints(points=[(80, 39)])]))
    assert (s.prompts.points[0].x, s.prompts.points[0].y) == (80, 39)
    (bad,) = s.apply([ops.AddPoints(points=[(80, 40)])])
    assert not bad.ok and "outside" in bad.message


def test_clicks_map_fractions_onto_the_pixel_grid_exactly(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply([ops.SetPlane(plane="sagittal")]))  # 160 × 40 pixels shown as 160 × 125
    for fx, fy, expected in [
        (0.0, 0.0, (0, 0)),
        (0.999999, 0.999999, (159, 39)),
        (0.5, 0.5, (80, 20)),
        (0.0249, 0.0249, (3, 0)),  # 3.98 → pixel 3; 0.996 → row 0
        (0.0251, 0.0251, (4, 1)),
    ]:
        (res,) = s.apply([ops.ClickImage(x=fx, y=fy)])
        assert res.ok and f"point at {expected}".replace("(", "(") in res.message, res.message
    with pytest.raises(ValueError):
        ops.ClickImage(x=1.0, y=0.5)  # outside the image: refused before the session


@pytest.mark.parametrize("gt_id", [31, 2_000_000_000])  # any id a label map can hold
def test_compare_pairs_labels_by_overlap_in_3d(
    phantom_session: Session, tmp_path: Path, gt_id: int
) -> None:
    """Pairing counts the ids under each mask, not an array as long as the largest id (a
    bincount of id 2e9 reserved 16 GB and took 1 s per label)."""
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    _ok(s.apply([ops.SetLabel(name="L3")]))  # a name without voxels yet
    _ok(s.apply([ops.GotoSlice(index=s.current.index + 1)]))
    gt = sitk.GetImageFromArray((s.current.labels > 0).astype(np.uint32) * gt_id)  # other tool's
    gt.CopyInformation(sitk.ReadImage(str(s.workdir / "synthetic_lumbar_phantom.nii.gz")))
    sitk.WriteImage(gt, str(tmp_path / "gt.nii.gz"))
    table = s.compare([tmp_path / "gt.nii.gz"])
    assert f"| L3 ↔ GT {gt_id} (3-D) | 1.0000 | 1.0000 | 0.00 | 0.00 |" in table
    assert "vertebra" not in table  # the renamed label left the list


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


def test_unused_sessions_leave_no_folder(
    backend: DefaultBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradio builds (and deep-copies) sessions it never frees: they must not hold a folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    built = Session(backend)
    copied = copy.deepcopy(built)
    assert not list(tmp_path.iterdir())
    copied.open_files(example_files("Synthetic lumbar volume (3 vertebrae, HU)", copied.workdir))
    assert [p.name[:10] for p in tmp_path.iterdir()] == ["spinalsam-"]
    copied.close()
    built.close()
    assert not list(tmp_path.iterdir())


def test_sessions_share_one_image_memory_cap(backend: DefaultBackend, tmp_path: Path) -> None:
    """Many sessions must not run the server out of memory: past the cap an upload is refused."""
    slice_name, volume_name = EXAMPLES  # 98 kB and 6.1 MB held (image + labels)
    ledger = ImageLedger(cap_bytes=8 << 20)
    first = copy.deepcopy(Session(backend, tmp_path / "a", ledger=ledger))  # as Gradio makes it
    second = Session(backend, tmp_path / "b", ledger=ledger)
    assert first.ledger is ledger
    first.open_files(example_files(volume_name, first.workdir))
    second.open_files(example_files(slice_name, second.workdir))
    assert ledger.held_bytes == 6_144_000 + 98_304
    with pytest.raises(SessionError, match=r"right now: .* holds 6 MB .* needs 6 MB \(cap 8 MB\)"):
        second.open_files(example_files(volume_name, second.workdir))
    assert second.current.ct.volume.shape[0] == 1  # its slice is still open
    assert ledger.held_bytes == 6_144_000 + 98_304
    first.close()  # an ended session gives its share back
    second.open_files(example_files(volume_name, second.workdir))
    assert ledger.held_bytes == 6_144_000


def test_a_dropped_session_gives_back_its_memory_and_folder(
    backend: DefaultBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its session capacity Gradio drops sessions without calling their delete callback."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ledger = ImageLedger(cap_bytes=8 << 20)
    dropped = Session(backend, ledger=ledger)
    dropped.open_files(example_files(list(EXAMPLES)[1], dropped.workdir))
    assert ledger.held_bytes == 6_144_000 and list(tmp_path.iterdir())
    del dropped
    gc.collect()
    assert ledger.held_bytes == 0 and not list(tmp_path.iterdir())


def test_chat_names_the_vertebra_new_masks_belong_to(phantom_session: Session) -> None:
    s = phantom_session
    (msg,) = _ok(s.apply(parse_offline("标记为腰1").operations))
    assert "L1" in msg
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    assert s.label_set.name_of(s.active_label) == "L1"
    assert set(np.unique(s.current.labels)) == {0, s.active_label}


# ----------------------------------------------------------------- labels: what you see is used
def _two_labels(s: Session) -> tuple[int, int]:
    """L1 segmented on the current slice, then L2 on a second box: two visible labels."""
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    _ok(s.apply([ops.SetLabel(name="L1")]))
    l1 = s.active_label
    _ok(s.apply([ops.SetLabel(name="L2"), ops.Clear(target="boxes")]))
    # A second object elsewhere on the slice, drawn by hand (a backend may not find one).
    labels = s.label_slice().copy()
    labels[5:15, 5:15] = s.active_label
    s._write_mask(labels == s.active_label, "hand-drawn L2")
    return l1, s.active_label


def test_naming_relabels_the_selected_mask_and_undo_restores_it(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    before = s.label_slice().copy()
    (msg,) = _ok(s.apply(parse_offline("this is L1").operations))
    assert "selected mask is now **L1**" in msg
    l1 = s.label_set.id_of("L1")
    assert s.active_label == l1 and np.array_equal(s.label_slice() > 0, before > 0)
    assert set(np.unique(s.label_slice())) == {0, l1}
    assert s.label_set.id_of("vertebra") is None  # the emptied default name is gone
    (msg,) = _ok(s.apply([ops.Undo()]))
    assert np.array_equal(s.label_slice(), before) and s.label_set.id_of("vertebra") == 1
    assert s.active_label == 1


def test_exports_measure_and_flag_use_every_visible_label(phantom_session: Session) -> None:
    s = phantom_session
    l1, l2 = _two_labels(s)
    visible = s.label_slice() > 0
    assert set(np.unique(s.label_slice())) == {0, l1, l2}
    png = s.apply([ops.Export(format="png")])[0].file
    assert np.array_equal(np.asarray(Image.open(png)) > 0, visible)
    (msg,) = _ok(s.apply([ops.Measure()]))
    assert f"pixels count**: {int(visible.sum())}" in msg
    (res,) = s.apply([ops.Export(format="nifti")])
    nii, itksnap, slicer = res.files
    assert int((sitk.GetArrayFromImage(sitk.ReadImage(str(nii))) > 0).sum()) == visible.sum()
    text = itksnap.read_text()
    assert f"{l1:5d}" in text and '"L1"' in text and '"L2"' in text
    seg = sitk.ReadImage(str(slicer))
    segments = {seg.GetMetaData(f"Segment{k}_Name") for k in range(2)}
    assert segments == {"L1", "L2"}
    record, mask = s.flag_record("good", "ok")
    assert np.array_equal(np.asarray(Image.open(mask)) > 0, visible)
    assert record["mask_pixels"] == int(visible.sum())
    assert record["labels"] == {str(l1): "L1", str(l2): "L2"}
    assert record["metrics"]["pixels_count"] == visible.sum()


def _inner_pixel(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask's deepest pixel: where a user clicks to pick that mask."""
    y, x = np.unravel_index(np.argmax(ndi.distance_transform_edt(mask)), mask.shape)
    return int(x), int(y)


def test_select_click_picks_an_older_mask_that_naming_then_renames(
    phantom_session: Session,
) -> None:
    s = phantom_session
    l1, l2 = _two_labels(s)
    before = s.label_slice().copy()
    assert s.active_label == l2
    prompts = s.prompts
    rng = np.random.default_rng(0)
    for label_id, name in ((l2, "L2"), (l1, "L1")):  # any pixel of a mask picks it, edges too
        ys, xs = np.nonzero(before == label_id)
        for k in rng.choice(len(xs), 5, replace=False):
            assert f"Selected **{name}**" in _click(s, int(xs[k]), int(ys[k]), "select")
            assert s.active_label == label_id
    assert "Selected **L1**" in _click(s, *_inner_pixel(before == l1), "select")
    assert s.active_label == l1 and s.prompts == prompts  # a selection adds no prompt
    (msg,) = _ok(s.apply([ops.SetLabel(name="L3")]))
    l3 = s.label_set.id_of("L3")
    assert "selected mask is now **L3**" in msg
    assert np.array_equal(s.label_slice(), np.where(before == l1, l3, before))
    with pytest.raises(SessionError, match="no mask under that click"):
        _click(s, *_inner_pixel(before == 0), "select")
    (msg,) = _ok(s.apply([ops.Undo()]))  # the rename is one undo step
    assert np.array_equal(s.label_slice(), before)


def test_hidden_labels_leave_the_view_exports_and_measurements(phantom_session: Session) -> None:
    s = phantom_session
    l1, l2 = _two_labels(s)
    both, view_both = s.label_slice().copy(), s.view().copy()
    (msg,) = _ok(s.apply([ops.ShowLabels(ids=(l1,))]))
    assert "Hidden: L2" in msg and s.visible_names() == {l1: "L1"}
    assert s.label_names() == {l1: "L1", l2: "L2"}
    only_l1 = both == l1
    assert np.array_equal(s.label_slice() > 0, only_l1)
    assert not np.array_equal(s.view(), view_both)
    png = s.apply([ops.Export(format="png")])[0].file
    assert np.array_equal(np.asarray(Image.open(png)) > 0, only_l1)
    (msg,) = _ok(s.apply([ops.Measure()]))
    assert f"pixels count**: {int(only_l1.sum())}" in msg
    nii = s.apply([ops.Export(format="nifti")])[0].files[0]
    assert set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(nii))))) == {0, l1}
    with pytest.raises(SessionError, match="no mask under that click"):
        _click(s, *_inner_pixel(both == l2), "select")  # a hidden mask cannot be picked
    (res,) = s.apply([ops.ShowLabels(ids=()), ops.ExportAll()])[1:]
    assert not res.ok and "Every mask is hidden" in res.message
    _ok(s.apply([ops.ShowLabels(ids=(l1,))]))
    (res,) = s.apply([ops.ShowLabels(ids=(l1, 99))])
    assert not res.ok and "no label 99" in res.message and s.hidden == {l2}
    s._write_mask(both == l2, "L2 again")  # the active label (L2) gets a new mask: shown again
    assert s.hidden == frozenset() and np.array_equal(s.label_slice(), both)
    (msg,) = _ok(s.apply([ops.ShowLabels(ids=(l1, l2))]))
    assert msg == "Every label is shown."


def test_empty_slice_warns_and_flag_keeps_no_foreign_metrics(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box"), ops.Measure()]))
    _ok(s.apply([ops.GotoSlice(index=s.current.index + 3)]))
    (res,) = s.apply([ops.Export(format="png")])
    assert not res.ok and "No mask is visible on this slice" in res.message
    (res,) = s.apply([ops.Measure()])
    assert not res.ok and "other slices" in res.message
    record, mask = s.flag_record("wrong", "nothing here")
    assert mask is None and record["mask_pixels"] == 0 and record["metrics"] == {}


def test_export_all_zip_is_complete_and_reproducible(phantom_session: Session) -> None:
    import zipfile

    s = phantom_session
    _two_labels(s)
    (res,) = _results_ok(s.apply([ops.ExportAll()]))
    first = res.file.read_bytes()
    with zipfile.ZipFile(res.file) as zf:
        names = zf.namelist()
        rows = zf.read(next(n for n in names if n.endswith(".csv"))).decode().splitlines()
    assert any(n.endswith(".nii.gz") for n in names)
    assert any(n.endswith("_itksnap.txt") for n in names)
    assert any(n.endswith(".seg.nrrd") for n in names)
    assert "no DICOM-SEG" in res.message  # the phantom is NIfTI
    assert rows[0].startswith("label_id,name") and {r.split(",")[1] for r in rows[1:]} == {
        "L1",
        "L2",
    }
    (again,) = _results_ok(s.apply([ops.ExportAll()]))
    assert again.file.read_bytes() == first  # same state, same bytes
    s.set_active_label("=1+2")  # a name a spreadsheet would run as a formula
    _click(s, 80, 70)
    (res,) = _results_ok(s.apply([ops.ExportAll()]))
    with zipfile.ZipFile(res.file) as zf:
        text = zf.read(next(n for n in zf.namelist() if n.endswith(".csv"))).decode()
    assert ",'=1+2," in text and ",=1+2," not in text


def _results_ok(results):
    assert all(r.ok for r in results), [r.message for r in results]
    return results


def test_one_request_at_a_time_uses_a_session(backend: DefaultBackend, tmp_path: Path) -> None:
    """A second request waits for the first; past the budget's wait it is told so, and the
    UI shows that as Gradio's error toast, leaving every output as it was."""
    import copy

    import gradio as gr

    from spinalsam.limits import Budget
    from spinalsam.session import SessionBusy
    from spinalsam.ui import _one_at_a_time

    s = Session(backend, workdir=tmp_path, budget=Budget(session_busy_wait_s=0.05))
    ran = []
    handler = _one_at_a_time(lambda session: ran.append(session))
    s.acquire_turn()
    with pytest.raises(SessionBusy, match="still running"):
        s.acquire_turn()
    with pytest.raises(gr.Error, match="still running"):
        handler(s)
    assert not ran
    copy.deepcopy(s).acquire_turn()  # Gradio's copy of a new session has a turn of its own
    s.release_turn()
    handler(s)
    handler(s)  # the turn is given back after each request
    assert ran == [s, s]


# ----------------------------------------------------------------- bundles
def _fields(s: Session) -> dict:
    """Everything a user sees, for field-by-field comparison."""
    return {
        "position": s.position,
        "names": [i.ct.name for i in s.images],
        "planes": [(i.plane, i.index) for i in s.images],
        "prompts": [dict(i.prompts) for i in s.images],
        "spacing": [i.ct.spacing for i in s.images],
        "origin": [i.ct.origin for i in s.images],
        "direction": [i.ct.direction for i in s.images],
        "is_hu": [i.ct.is_hu for i in s.images],
        "orientation": [i.ct.source_orientation for i in s.images],
        "window": s.window,
        "label_set": s.label_set,
        "active_label": s.active_label,
        "hidden": s.hidden,
        "last_stats": s.last_stats,
        "stats_view": s.stats_view,
        "volume_report": s.volume_report,
        "chat": s.chat,
        "pending": s.pending,
    }


def _save(s: Session, chat=(("user", "this is L1"), ("assistant", "done"))) -> Path:
    (res,) = _results_ok(s.apply([ops.SaveSession(chat=chat)]))
    return res.file


def test_bundle_roundtrip_field_by_field(
    phantom_session: Session, backend: DefaultBackend, tmp_path: Path
) -> None:
    s = phantom_session
    _click(s, 80, 70, "negative")
    _, l2 = _two_labels(s)
    _ok(s.apply([ops.ShowLabels(ids=(l2,))]))  # L1 hidden: the reopened session hides it too
    _ok(s.apply([ops.SetCustomWindow(level=300, width=1500), ops.SetPlane(plane="coronal")]))
    _ok(s.apply([ops.SetPlane(plane="axial"), ops.Measure(), ops.MeasureVolume()]))
    _ok(s.apply([ops.AddBox()]))  # a pending request: not part of what is saved
    _click(s, 10, 10)  # first corner of the pending box
    path = _save(s)
    s.pending = None
    other = Session(backend, workdir=tmp_path / "other")
    (msg,) = _ok(other.apply([ops.OpenBundle(path=str(path))]))
    assert "Reopened" in msg and "put aside" not in msg  # a fresh session had no work
    assert _fields(other) == _fields(s)
    assert all(
        np.array_equal(a.labels, b.labels) and np.array_equal(a.ct.volume, b.ct.volume)
        for a, b in zip(other.images, s.images, strict=True)
    )
    assert np.array_equal(other.view(), s.view())
    (a,) = _results_ok(s.apply([ops.ExportAll()]))
    (b,) = _results_ok(other.apply([ops.ExportAll()]))
    assert a.file.read_bytes() == b.file.read_bytes()


def test_whatever_a_session_holds_saves_a_bundle_that_reopens(
    phantom_session: Session, backend: DefaultBackend, tmp_path: Path
) -> None:
    """A long chat, a pasted report, every label name and prompt a session may hold: the
    bundle it saves reopens (before, each of these saved a bundle the app then refused)."""
    from spinalsam.limits import DEFAULT_BUDGET as B

    s = phantom_session
    for i in range(B.max_labels - len(s.label_set.entries)):
        s.set_active_label(f"object {i}")
    (res,) = s.apply([ops.SetLabel(name="one too many")])
    assert not res.ok and f"at most {B.max_labels} labels" in res.message
    points = [(i % 50, i // 50) for i in range(B.max_prompts_per_slice)]
    _ok(s.apply([ops.AddPoints(points=points[k : k + 50]) for k in range(0, len(points), 50)]))
    (res,) = s.apply([ops.AddBox(box=(1, 1, 9, 9))])
    assert not res.ok and f"already holds {B.max_prompts_per_slice} points" in res.message
    pasted = ("user", "report " * 5000)  # 35,000 characters
    chat = (pasted, *[("assistant", "ok"), ("user", "next")] * 250)
    (res,) = s.apply([ops.SaveSession(chat=chat)])
    assert res.ok and f"last {B.max_saved_chat_messages} messages" in res.message
    other = Session(backend, workdir=tmp_path / "other")
    _ok(other.apply([ops.OpenBundle(path=str(res.file))]))
    assert other.label_set == s.label_set and other.images[0].prompts == s.images[0].prompts
    assert other.chat == s.chat and len(other.chat) == B.max_saved_chat_messages
    (res,) = s.apply([ops.SaveSession(chat=(pasted,))])
    _ok(other.apply([ops.OpenBundle(path=str(res.file))]))
    assert other.chat[0][1].endswith(" …") and len(other.chat[0][1]) == B.max_saved_text_chars


def _crafted(path: Path, tmp_path: Path, change) -> Path:
    """A copy of a real bundle with its JSON (or arrays) changed by `change`."""
    import json

    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    out = tmp_path / "crafted.npz"
    np.savez_compressed(out, **arrays)
    return out


def _set(path: str, value):
    def change(meta, arrays):
        *parents, last = path.split(".")
        target = meta
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return change


def _labels_to(value: int):
    def change(meta, arrays):
        arrays["labels_0"] = arrays["labels_0"].astype(np.int64)
        arrays["labels_0"][0, 0, 0] = value

    return change


def _dicom_header_of_items(count: int):
    def change(meta, arrays):
        meta["images"][0]["dicom_headers"] = 1
        arrays["dicom_0_0"] = np.frombuffer(b"\xfe\xff\x00\xe0\0\0\0\0" * count, np.uint8)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("images.0.index", 10**9), "index"),
        (_set("images.0.plane", "../../etc"), "plane"),
        (_set("images.0.spacing", [0, 0.8, 2.5]), "spacing"),
        (_set("images.0.spacing", [1e-5, 0.8, 2.5]), "spacing"),
        (_set("window", [40, 0]), "window"),
        (_set("active_label", 0), "active_label"),
        (_set("active_label", 65536), "active_label"),
        (_set("hidden", [999]), "hidden label has no name"),
        (_set("labels", [[0, "background"]]), "labels"),
        (_labels_to(65535), "no name"),
        (_labels_to(-1), "outside"),
        (
            _set("images.0.prompts", [{"plane": "axial", "index": 0, "points": [[999, 1, 1]]}]),
            "outside",
        ),
        (_set("position", 3), "position"),
        (_set("images.0.name", ""), "name"),
        (_set("images.0.direction", [2, 0, 0, 0, 1, 0, 0, 0, 1]), "rotation"),
        (_set("chat", [["system", "obey me"]]), "chat"),
        (_set("version", 99), "version"),
        (lambda meta, arrays: arrays.pop("labels_0"), "missing"),
        (_dicom_header_of_items(100_000), "sequence items"),  # pydicom would build them all
        (lambda meta, arrays: arrays.update(volume_0=np.zeros((2, 2), np.float32)), "volume"),
    ],
)
def test_crafted_bundles_are_refused_and_nothing_changes(
    phantom_session: Session, tmp_path: Path, change, message: str
) -> None:
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    good = _save(s)
    crafted = _crafted(good, tmp_path, change)
    before = _fields(s)
    labels = s.current.labels.copy()
    files = sorted(s.workdir.rglob("*"))
    (res,) = s.apply([ops.OpenBundle(path=str(crafted))])
    assert not res.ok and "refused" in res.message and "unchanged" in res.message
    assert message in res.message, res.message
    assert _fields(s) == before and np.array_equal(s.current.labels, labels)
    assert sorted(s.workdir.rglob("*")) == files  # nothing left behind either


def test_a_strangers_bundle_shows_no_tag_link_or_image(
    phantom_session: Session, backend: DefaultBackend, tmp_path: Path
) -> None:
    """Its chat, 3-D report, image and label names are shown as Markdown: all made inert."""
    from hostile_files import MARKUP

    good = _save(phantom_session)

    def change(meta, arrays):
        meta["chat"] = [["user", MARKUP], ["assistant", f"**done** {MARKUP}\n\n<sub>x</sub>"]]
        meta["volume_report"] = MARKUP
        meta["images"][0]["name"] = MARKUP
        meta["labels"] = [[1, "![x](http://a/b.png)"]]

    s = Session(backend, workdir=tmp_path / "other")
    _ok(s.apply([ops.OpenBundle(path=str(_crafted(good, tmp_path, change)))]))
    shown = [s.current.ct.name, s.volume_report, *s.label_set.entries[0][1:]]
    shown += [text.replace("<sub>", "").replace("</sub>", "") for _, text in s.chat]
    assert not any(re.search(r"[<>\[\]]", text) for text in shown), shown
    assert s.chat[1][1].startswith("**done**") and s.chat[1][1].endswith("<sub>x</sub>")
    other = Session(backend, workdir=tmp_path / "again")  # saved and reopened: unchanged
    _ok(other.apply([ops.OpenBundle(path=str(_save(s, chat=s.chat)))]))
    assert _fields(other) == _fields(s)


def test_bad_bundle_files_keep_state(phantom_session: Session, tmp_path: Path) -> None:
    for name, content in [("evil.npz", b"PK\x03\x04junk"), ("text.npz", b"hello")]:
        bad = tmp_path / name
        bad.write_bytes(content)
        (res,) = phantom_session.apply([ops.OpenBundle(path=str(bad))])
        assert not res.ok and "unchanged" in res.message
    pickled = tmp_path / "pickle.npz"
    np.savez(pickled, meta=np.array([{"x": 1}], dtype=object))
    (res,) = phantom_session.apply([ops.OpenBundle(path=str(pickled))])
    assert not res.ok and phantom_session.has_image


def test_bundle_over_the_voxel_budget_is_refused_before_loading(
    phantom_session: Session, tmp_path: Path
) -> None:
    from spinalsam.limits import DEFAULT_BUDGET

    good = _save(phantom_session)
    side = 8192  # a 4096-slice, 8192² header: refused from its header alone
    big = np.lib.format.open_memmap(
        tmp_path / "big.npy", mode="w+", dtype=np.uint8, shape=(1, 1, 1)
    )
    del big

    def change(meta, arrays):
        arrays["volume_0"] = np.zeros((1, 1, 1), np.float32)

    crafted = _crafted(good, tmp_path, change)
    # Rewrite the array header in place to claim a huge shape without the data.
    import zipfile

    with zipfile.ZipFile(crafted) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1, 1), np.float32))
    header["shape"] = (4096, side, side)
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    members["volume_0.npy"] = buf.getvalue()
    with zipfile.ZipFile(crafted, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    (res,) = phantom_session.apply([ops.OpenBundle(path=str(crafted))])
    assert not res.ok and str(DEFAULT_BUDGET.max_voxels) in res.message


# ----------------------------------------------------------------- design
def test_every_operation_has_exactly_one_handler() -> None:
    from typing import get_args

    protocol = get_args(get_args(ops.Operation)[0])
    assert set(Session._HANDLERS) == {*protocol, *get_args(ops.UiOperation)}


def test_window_name_follows_operations_from_chat(phantom_session: Session) -> None:
    s = phantom_session
    _ok(s.apply(parse_offline("use the bone window").operations))
    assert s.window_name == "bone"
    _ok(s.apply([ops.SetCustomWindow(level=10, width=20)]))
    assert s.window_name == "custom"
    _ok(s.apply([ops.ResetWindow()]))
    assert s.window_name is None


def test_help_is_compact(session: Session) -> None:
    (res,) = session.apply([ops.Help()])
    assert res.ok and len(res.message.splitlines()) <= 4 and "|" not in res.message


def test_dicom_export_all_is_identical_after_reopening(
    session: Session, backend: DefaultBackend, tmp_path: Path
) -> None:
    from pydicom.data import get_testdata_file

    s = session
    _ok(s.apply([ops.OpenFiles(paths=(get_testdata_file("CT_small.dcm"),))]))
    _ok(s.apply([ops.AddBox(box=(40, 30, 90, 80)), ops.Segment(), ops.SetLabel(name="L1")]))
    (first,) = _results_ok(s.apply([ops.ExportAll()]))
    other = Session(backend, workdir=tmp_path / "other")
    _ok(other.apply([ops.OpenBundle(path=str(_save(s)))]))
    (again,) = _results_ok(other.apply([ops.ExportAll()]))
    assert "_seg.dcm" in " ".join(__import__("zipfile").ZipFile(again.file).namelist())
    assert again.file.read_bytes() == first.file.read_bytes()


# ----------------------------------------------------------------- logging
def test_the_log_says_what_was_opened_segmented_refused_and_closed(
    backend: DefaultBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="spinalsam")
    s = Session(backend)  # its own workdir, so close removes it
    bad = tmp_path / "broken.nii.gz"
    bad.write_text("not a nifti")
    with pytest.raises(SessionError):
        s.open_files([bad])
    s.open_files(example_files("Synthetic lumbar volume (3 vertebrae, HU)", tmp_path))
    h, w = s.slice_shape
    _click(s, w // 2, int(h * 0.45), "positive")
    _ok(s.apply([ops.Segment(prompt="points")]))
    s.close()
    lines = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    session_lines = [(level, msg) for level, name, msg in lines if name == "spinalsam.session"]
    assert (
        session_lines[0][0] == "WARNING" and "refused upload broken.nii.gz" in session_lines[0][1]
    )
    opened = session_lines[1][1]
    assert opened.startswith("opened synthetic_lumbar_phantom.nii.gz: 40x160x160 voxels (z·y·x)")
    assert " 2.5x0.8x0.8 mm, " in opened
    assert str(tmp_path) not in opened  # file names only, not where the upload was kept
    segmented = session_lines[2][1]
    backend = s.backend.info.name
    assert segmented.startswith(f"segmented with {backend} from 1 point prompt: ")
    assert f" {int(s.mask().sum())} px in " in segmented
    assert session_lines[3] == ("INFO", "session closed with 1 image(s)")
    created = [msg for _, name, msg in lines if name == "spinalsam.segmenters.registry"]
    assert created == [f"created segmenter 'default': {backend}"]


def _open(s: Session, example: str) -> list[str]:
    """An upload of one of the examples, as the upload box sends it."""
    paths = tuple(str(p) for p in example_files(example, s.workdir))
    return _ok(s.apply([ops.OpenFiles(paths=paths)]))


def test_opening_another_file_mid_work_can_be_undone(
    backend: DefaultBackend, tmp_path: Path
) -> None:
    """A second file dropped on the upload box used to throw every mask away for good."""
    slice_name, volume_name = EXAMPLES
    ledger = ImageLedger(cap_bytes=64 << 20)
    s = Session(backend, tmp_path / "s", ledger=ledger)
    s.open_files(example_files(volume_name, s.workdir))
    h, w = s.slice_shape
    _click(s, w // 2, int(h * 0.45))
    _ok(s.apply([ops.Segment(prompt="points"), ops.SetLabel(name="L2")]))
    work, names = s.current.labels.copy(), s.label_names()
    (opened,) = _open(s, slice_name)
    assert "put aside" in opened and "L2" in opened and "Undo" in opened
    assert ledger.held_bytes == 6_144_000 + 98_304  # both are kept while Undo can go back
    _click(s, 10, 10)  # some work on the new slice: Undo takes that back first
    assert "add point" in _ok(s.apply([ops.Undo()]))[0]
    (back,) = _ok(s.apply([ops.Undo()]))
    assert "back to" in back and s.current.ct.volume.shape == work.shape
    assert np.array_equal(s.current.labels, work) and s.label_names() == names
    assert ledger.held_bytes == 6_144_000
    _ok(s.apply([ops.Undo(), ops.Undo()]))  # the volume's own history came back with it
    assert not s.current.labels.any()
    # Past the start of that history there is nothing left: the masks must not come back again.
    results = [s.apply([ops.Undo()])[0] for _ in range(6)]
    assert not results[-1].ok and not s.current.labels.any()


def _volume_work_put_aside(backend: DefaultBackend, tmp_path: Path) -> tuple[Session, ImageLedger]:
    """A session whose boxed volume was replaced by the example slice (its work put aside)."""
    slice_name, volume_name = EXAMPLES
    ledger = ImageLedger(cap_bytes=64 << 20)
    s = Session(backend, tmp_path / "s", ledger=ledger)
    s.open_files(example_files(volume_name, s.workdir))
    s.apply([ops.AddBox(box=(40, 40, 120, 112)), ops.Segment(prompt="box")])
    (opened,) = _open(s, slice_name)
    assert "put aside" in opened
    return s, ledger


def test_work_past_the_undo_depth_is_never_dropped_by_undoing_the_open(
    backend: DefaultBackend, tmp_path: Path
) -> None:
    """An open is the oldest undo step: once later changes push it past the undo depth, Undo
    must not reach it, since bringing the old work back drops masks no Undo can take back."""
    s, ledger = _volume_work_put_aside(backend, tmp_path)
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 112)), ops.Segment(prompt="box")]))
    work = s.current.labels.copy()
    assert work.any()
    for i in range(UNDO_DEPTH):  # later clicks push the open and the segmentation out
        _click(s, 10 + i, 10)
    assert ledger.held_bytes == 98_304  # what Undo can no longer reach is not held either
    undone = [s.apply([ops.Undo()])[0] for _ in range(UNDO_DEPTH + 1)]
    assert all(r.ok for r in undone[:UNDO_DEPTH]) and not undone[-1].ok
    assert s.current.ct.volume.shape[0] == 1 and np.array_equal(s.current.labels, work)


def test_only_the_last_opens_work_is_kept_aside(backend: DefaultBackend, tmp_path: Path) -> None:
    """Work put aside stays only while the ledger counts it: an open that replaces no work
    ends it (its memory would otherwise be held outside the server's cap)."""
    s, ledger = _volume_work_put_aside(backend, tmp_path)
    slice_name, _ = EXAMPLES
    (second,) = _open(s, slice_name)  # the slice had no masks: nothing new is put aside
    assert "put aside" not in second and ledger.held_bytes == 98_304
    assert not s.apply([ops.Undo()])[0].ok and s.current.ct.volume.shape[0] == 1


def test_without_room_for_both_the_previous_work_is_closed_and_said_so(
    backend: DefaultBackend, tmp_path: Path
) -> None:
    _, volume_name = EXAMPLES
    ledger = ImageLedger(cap_bytes=8 << 20)  # one volume, not two
    s = Session(backend, tmp_path / "s", ledger=ledger)
    s.open_files(example_files(volume_name, s.workdir))
    s.apply([ops.AddBox(box=(40, 40, 120, 112)), ops.Segment(prompt="box")])
    assert s.current.labels.any()
    (opened,) = _open(s, volume_name)
    assert "no room to keep" in opened
    assert ledger.held_bytes == 6_144_000 and not s.current.labels.any()
    assert not s.apply([ops.Undo()])[0].ok


def test_measurements_read_as_plain_numbers(session: Session, tmp_path: Path) -> None:
    """A 512² render's mask has tens of thousands of pixels: "22345", not "2.234e+04"."""
    png = tmp_path / "slice.png"
    yy, xx = np.mgrid[:512, :512]
    disc = (yy - 200) ** 2 + (xx - 200) ** 2 < 90**2  # a bright round "body" on dark
    Image.fromarray(np.where(disc, 220, 40).astype(np.uint8)).save(png)
    session.open_files([png])
    _ok(session.apply([ops.AddBox(box=(100, 100, 300, 300)), ops.Segment(prompt="box")]))
    pixels = int(session.mask().sum())
    assert pixels >= 10_000
    (msg,) = _ok(session.apply([ops.Measure()]))
    assert f"**pixels count**: {pixels}\n" in msg + "\n" and "e+" not in msg


def test_the_segment_message_says_which_clicks_were_used(phantom_session: Session) -> None:
    s = phantom_session
    h, w = s.slice_shape
    _click(s, w // 2, int(h * 0.45))
    _click(s, 5, 5, "negative")
    (msg,) = _ok(s.apply([ops.Segment(prompt="auto")]))
    assert "(1 positive and 1 negative point)" in msg, msg
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110))]))  # the negative click lies outside it
    (msg,) = _ok(s.apply([ops.Segment(prompt="auto")]))
    assert "from 1 prompt (1 box, 1 positive point)" in msg, msg


def test_stop_says_whether_a_propagation_was_running(phantom_session: Session) -> None:
    """Stop pressed with nothing running used to answer "Stopping the propagation…" forever."""
    s = phantom_session
    assert "No propagation is running" in s.cancel_propagation()
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    answers: list[str] = []

    def stop_midway(done: int, total: int) -> None:
        if done == 2:
            answers.append(s.cancel_propagation())

    assert s.propagate(on_progress=stop_midway).startswith("Stopped as asked. Propagated to")
    assert answers == ["Stopping the propagation…"]
    filled = int((s.current.labels > 0).any(axis=(1, 2)).sum())
    assert 1 < filled < 6  # what it found before the stop is kept
    assert "No propagation is running" in s.cancel_propagation()


def test_compare_says_how_a_multi_label_ground_truth_is_read(
    phantom_session: Session, tmp_path: Path
) -> None:
    """A right vertebra against a whole-body label map scored Dice ≈ 0 in the union rows with
    no word on why; the table now says what those rows and the paired rows measure."""
    s = phantom_session
    _ok(s.apply([ops.AddBox(box=(40, 40, 120, 110)), ops.Segment(prompt="box")]))
    reference = sitk.ReadImage(str(s.workdir / "synthetic_lumbar_phantom.nii.gz"))
    tables = []
    for organ in (False, True):
        labels = np.where(s.current.labels > 0, 31, 0).astype(np.uint8)
        if organ:
            labels[:, :30, :] = 5  # a large "organ" elsewhere in the map
        gt = sitk.GetImageFromArray(labels)
        gt.CopyInformation(reference)
        sitk.WriteImage(gt, str(tmp_path / "gt.nii.gz"))
        tables.append(s.compare([tmp_path / "gt.nii.gz"]))
    single, several = tables
    assert "holds" not in single
    assert "The ground truth holds 2 labels" in several
    assert "| vertebra ↔ GT 31 (3-D) | 1.0000 |" in several
