"""Malformed and hostile uploads: load_ct raises CTLoadError with a helpful message, never else.

Each builder writes its file(s) into a fresh temp dir and returns what the UI would pass on.
"""

from __future__ import annotations

import re
import stat
import struct
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
import SimpleITK as sitk
from fixtures_ct import (
    png_bytes,
    synthetic_ct,
    synthetic_slice_u8,
    write_dicom_series,
    write_enhanced_ct,
    write_nifti,
    write_png,
    write_zip,
)
from hostile_files import (
    ATTACKS,
    CANARY_SECRET,
    Attack,
    dicom_mixed_orientations,
    mha_absolute,
    write_canary,
    zip_fails_after_unpack,
)
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pydicom.uid import BasicTextSRStorage, EncapsulatedPDFStorage, RTStructureSetStorage

from spinalsam.dicomseg import save_dicom_seg
from spinalsam.io import CTLoadError, load_ct, load_upload
from spinalsam.limits import DEFAULT_BUDGET, Budget

MAX_FILES = DEFAULT_BUDGET.max_files

CT_SMALL = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
TEXT = b"patient notes, definitely not an image\n" * 20

Builder = Callable[[Path], list[Path]]


def _write(path: Path, data: bytes) -> list[Path]:
    path.write_bytes(data)
    return [path]


def _truncated(path: Path, source: bytes, keep: float = 0.5) -> list[Path]:
    return _write(path, source[: int(len(source) * keep)])


def _nifti(path: Path, vol: np.ndarray, vector: bool = False) -> list[Path]:
    sitk.WriteImage(sitk.GetImageFromArray(vol, isVector=vector), str(path))
    return [path]


def truncated_dicom(tmp: Path) -> list[Path]:
    return _truncated(tmp / "slice.dcm", CT_SMALL.read_bytes(), 0.7)


def dicom_without_pixels(tmp: Path) -> list[Path]:
    ds = pydicom.dcmread(CT_SMALL)
    del ds.PixelData
    ds.save_as(tmp / "report.dcm")
    return [tmp / "report.dcm"]


def dicom_seg(tmp: Path) -> list[Path]:
    """A DICOM-SEG as the app exports it: 1-bit frames that GDCM shows as a 0/1 image."""
    ct = load_ct([CT_SMALL])
    labels = (ct.volume > 0).astype(np.uint8) * 20
    return [save_dicom_seg(labels, ct, {20: "L1"}, tmp / "L1_seg.dcm")]


def _non_image(tmp: Path, sop_class: str, modality: str) -> list[Path]:
    """A header-only DICOM object of `sop_class`, as a PACS exports it (no pixel data)."""
    ds = pydicom.dcmread(CT_SMALL, stop_before_pixels=True)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.Modality = modality
    ds.save_as(tmp / "object.dcm")
    return [tmp / "object.dcm"]


def enhanced_ct_shuffled(tmp: Path) -> list[Path]:
    """An Enhanced CT whose frames are not stored in position order (GDCM stacks them as stored)."""
    path = write_enhanced_ct(
        tmp / "e.dcm", write_dicom_series(tmp / "s", synthetic_ct((4, 20, 24)))
    )
    ds = pydicom.dcmread(path)
    frames = ds.PerFrameFunctionalGroupsSequence
    frames[1].PlanePositionSequence, frames[2].PlanePositionSequence = (
        frames[2].PlanePositionSequence,
        frames[1].PlanePositionSequence,
    )
    ds.save_as(path)
    return [path]


def truncated_nifti_gz(tmp: Path) -> list[Path]:
    write_nifti(tmp / "full.nii.gz", synthetic_ct((6, 40, 48)))
    return _truncated(tmp / "cut.nii.gz", (tmp / "full.nii.gz").read_bytes())


def truncated_nifti(tmp: Path) -> list[Path]:
    (full,) = _nifti(tmp / "full.nii", synthetic_ct((6, 40, 48)))
    return _truncated(tmp / "cut.nii", full.read_bytes())


def nifti_4d(tmp: Path) -> list[Path]:
    return _nifti(tmp / "fmri.nii.gz", np.zeros((3, 4, 8, 8), np.int16))


def nifti_vector(tmp: Path) -> list[Path]:
    return _nifti(tmp / "field.nii.gz", np.zeros((4, 8, 8, 3), np.float32), vector=True)


def nifti_zero_dim(tmp: Path) -> list[Path]:
    (path,) = _nifti(tmp / "empty.nii", np.zeros((4, 8, 8), np.int16))
    data = bytearray(path.read_bytes())
    struct.pack_into("<h", data, 46, 0)  # dim[3] (slices) = 0
    return _write(path, bytes(data))


def nifti_huge_header(tmp: Path) -> list[Path]:
    """A tiny file whose header claims 30000 × 30000 pixels: refused before reading data."""
    (path,) = _nifti(tmp / "claims.nii", np.zeros((1, 8, 8), np.int16))
    data = bytearray(path.read_bytes())
    struct.pack_into("<2h", data, 42, 30000, 30000)  # dim[1], dim[2]
    return _write(path, bytes(data))


def _nifti_pixdim(tmp: Path, value: float) -> list[Path]:
    """A volume whose header gives no usable voxel size: ITK showed it as 1 mm."""
    (path,) = _nifti(tmp / "nosize.nii", np.zeros((4, 8, 8), np.int16) - 1000)
    data = bytearray(path.read_bytes())
    struct.pack_into("<3f", data, 80, value, value, value)  # pixdim[1..3]
    return _write(path, bytes(data))


def png_text_bomb(tmp: Path) -> list[Path]:
    """A 64² PNG with a 5 MB compressed text chunk (Pillow's limit on inflated text)."""
    info = PngInfo()
    info.add_text("comment", "x" * (5 << 20), zip=True)
    Image.new("L", (64, 64)).save(tmp / "text.png", pnginfo=info)
    return [tmp / "text.png"]


def nifti_all_nan(tmp: Path) -> list[Path]:
    return _nifti(tmp / "nan.nii.gz", np.full((2, 8, 8), np.nan, np.float32))


def nifti_too_many_slices(tmp: Path) -> list[Path]:
    return _nifti(tmp / "tall.nii.gz", np.zeros((2001, 1, 1), np.int16))


def huge_png(tmp: Path) -> list[Path]:
    Image.new("1", (20000, 20000)).save(tmp / "huge.png")  # ~50 KB on disk, 400 Mpx decoded
    return [tmp / "huge.png"]


def png_bad_header_crc(tmp: Path) -> list[Path]:
    data = bytearray(png_bytes(synthetic_slice_u8()))
    data[29] ^= 0xFF  # the IHDR chunk's CRC
    return _write(tmp / "crc.png", bytes(data))


def png_bad_data_crc(tmp: Path) -> list[Path]:
    data = bytearray(png_bytes(synthetic_slice_u8()))
    at = data.find(b"IDAT")
    (length,) = struct.unpack(">I", data[at - 4 : at])
    data[at + 4 + length] ^= 0xFF  # the IDAT chunk's CRC: Pillow decodes it without verify()
    return _write(tmp / "crc2.png", bytes(data))


def truncated_jpeg(tmp: Path) -> list[Path]:
    write_png(tmp / "full.jpg", synthetic_slice_u8(), "RGB")
    return _truncated(tmp / "cut.jpg", (tmp / "full.jpg").read_bytes())


def zip_traversal(tmp: Path) -> list[Path]:
    inner = tmp / "a" / "b"
    inner.mkdir(parents=True)
    return [write_zip(inner / "evil.zip", {"../../evil.dcm": CT_SMALL})]


def zip_absolute(tmp: Path) -> list[Path]:
    return [write_zip(tmp / "abs.zip", {"/tmp/evil.dcm": CT_SMALL})]


def zip_symlink(tmp: Path) -> list[Path]:
    with zipfile.ZipFile(tmp / "link.zip", "w") as zf:
        info = zipfile.ZipInfo("slice.dcm")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return [tmp / "link.zip"]


def zip_bomb(tmp: Path) -> list[Path]:
    data = bytearray(write_zip(tmp / "src.zip", {"a.dcm": b"x" * 100}).read_bytes())
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 0xFFFF0000)  # declares ~4 GiB unpacked
    return _write(tmp / "bomb.zip", bytes(data))


def zip_empty(tmp: Path) -> list[Path]:
    return [write_zip(tmp / "empty.zip", {})]


def zip_only_text(tmp: Path) -> list[Path]:
    return [write_zip(tmp / "notes.zip", {"readme.txt": TEXT, "b.txt": TEXT})]


def zip_corrupt(tmp: Path) -> list[Path]:
    return _write(tmp / "broken.zip", b"PK\x03\x04" + bytes(200))


def zip_too_many_entries(tmp: Path) -> list[Path]:
    return [write_zip(tmp / "many.zip", {f"{i}.dcm": b"" for i in range(MAX_FILES + 1)})]


def mixed_series(tmp: Path) -> list[Path]:
    """One series UID whose slices differ in size: they cannot form one volume."""
    files = write_dicom_series(tmp / "a", synthetic_ct((3, 20, 24)))
    odd = write_dicom_series(tmp / "b", synthetic_ct((1, 16, 16)), origin=(-20, -15, 60))
    return files + odd


def too_many_files(tmp: Path) -> list[Path]:
    paths = [tmp / f"{i:04d}.dcm" for i in range(MAX_FILES + 1)]
    for p in paths:
        p.write_bytes(b"x")
    return paths


def dicom_and_png(tmp: Path) -> list[Path]:
    return [CT_SMALL, write_png(tmp / "a.png", synthetic_slice_u8())]


def two_pngs(tmp: Path) -> list[Path]:
    return [write_png(tmp / f"{i}.png", synthetic_slice_u8()) for i in range(2)]


def text_series(tmp: Path) -> list[Path]:
    return _write(tmp / "a.dcm", TEXT) + _write(tmp / "b.dcm", TEXT)


CASES: list[tuple[str, Builder, str]] = [
    ("zero_byte_dcm", lambda t: _write(t / "empty.dcm", b""), r"empty \(0 bytes\)"),
    ("zero_byte_png", lambda t: _write(t / "empty.png", b""), r"empty \(0 bytes\)"),
    ("text_as_nii_gz", lambda t: _write(t / "scan.nii.gz", TEXT), r"damaged or incomplete"),
    ("text_as_nii", lambda t: _write(t / "scan.nii", TEXT), r"not a valid NIfTI"),
    ("text_as_dcm", lambda t: _write(t / "scan.dcm", TEXT), r"not a valid DICOM"),
    ("text_as_png", lambda t: _write(t / "scan.png", TEXT), r"not a readable image"),
    ("text_as_mha", lambda t: _write(t / "scan.mha", TEXT), r"damaged or not really a MHA"),
    ("exe", lambda t: _write(t / "setup.exe", b"MZ" + bytes(100)), r"not a supported file type"),
    ("tar_gz", lambda t: _write(t / "scan.tar.gz", TEXT), r"not a supported file type"),
    ("directory", lambda t: [t], r"is a folder"),
    ("missing", lambda t: [t / "gone.nii.gz"], r"was not found"),
    ("no_files", lambda t: [], r"No file was given"),
    ("truncated_dicom", truncated_dicom, r"damaged or incomplete"),
    ("dicom_without_pixels", dicom_without_pixels, r"without image \(pixel\) data"),
    ("dicom_seg", dicom_seg, r"'L1_seg\.dcm' is a DICOM segmentation \(DICOM-SEG\), not a CT"),
    ("rt_struct", lambda t: _non_image(t, RTStructureSetStorage, "RTSTRUCT"), r"RT Structure Set"),
    ("dicom_sr", lambda t: _non_image(t, BasicTextSRStorage, "SR"), r"Basic Text SR"),
    ("dicom_pdf", lambda t: _non_image(t, EncapsulatedPDFStorage, "DOC"), r"Encapsulated PDF"),
    (  # the SOP class is looked up, never echoed: a stranger's file cannot put a link in
        "dicom_sop_class_markup",
        lambda t: _non_image(t, "![t](http://127.0.0.1:7919/t.png) Encapsulated", "DOC"),
        r"'object\.dcm' is a DICOM file without image \(pixel\) data",
    ),
    (
        "enhanced_ct_shuffled",
        enhanced_ct_shuffled,
        r"frames of 'e\.dcm' are not stored in position order",
    ),
    ("truncated_nifti_gz", truncated_nifti_gz, r"damaged or incomplete"),
    ("truncated_nifti", truncated_nifti, r"is incomplete: it holds \d+ of the \d+ bytes"),
    ("nifti_4d", nifti_4d, r"4-D series"),
    ("nifti_vector", nifti_vector, r"3 values per voxel"),
    ("nifti_zero_dim", nifti_zero_dim, r"empty dimension"),
    ("nifti_huge_header", nifti_huge_header, r"too large \(30000 × 30000 pixels\)"),
    ("nifti_all_nan", nifti_all_nan, r"no valid values"),
    ("nifti_spacing_nan", lambda t: _nifti_pixdim(t, float("nan")), r"spacing of nan × nan × nan"),
    ("nifti_spacing_zero", lambda t: _nifti_pixdim(t, 0.0), r"spacing of 0 × 0 × 0 mm"),
    ("png_text_bomb", png_text_bomb, r"not a readable image"),
    ("nifti_too_many_slices", nifti_too_many_slices, r"2001 slices; at most 2000"),
    ("huge_png", huge_png, r"too large.*4096 × 4096"),
    ("png_bad_header_crc", png_bad_header_crc, r"damaged, incomplete"),
    ("png_bad_data_crc", png_bad_data_crc, r"damaged, incomplete"),
    ("truncated_jpeg", truncated_jpeg, r"damaged, incomplete"),
    ("zip_traversal", zip_traversal, r"unsafe file name \('\.\./\.\./evil\.dcm'\)"),
    ("zip_absolute", zip_absolute, r"unsafe file name"),
    ("zip_symlink", zip_symlink, r"symbolic link"),
    ("zip_bomb", zip_bomb, r"would unpack to 4\.0 GiB"),
    ("zip_empty", zip_empty, r"holds no DICOM files"),
    ("zip_only_text", zip_only_text, r"'notes\.zip' holds no readable DICOM image"),
    ("zip_corrupt", zip_corrupt, r"not a readable zip"),
    ("zip_too_many_entries", zip_too_many_entries, r"2001 entries"),
    ("too_many_files", too_many_files, r"Too many files \(2001\)"),
    ("dicom_and_png", dicom_and_png, r"all DICOM slices of one series"),
    ("two_pngs", two_pngs, r"all DICOM slices of one series"),
    ("text_series", text_series, r"None of the 2 files is a readable DICOM image"),
]


@pytest.mark.parametrize(("builder", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_ct_load_error(tmp_path: Path, builder: Builder, message: str) -> None:
    paths = builder(tmp_path)
    with pytest.raises(CTLoadError, match=message) as info:
        load_ct(paths)
    assert "Traceback" not in str(info.value)


def test_zip_traversal_writes_nothing_outside(tmp_path: Path) -> None:
    with pytest.raises(CTLoadError):
        load_ct(zip_traversal(tmp_path))
    tmp_root = Path(tempfile.gettempdir())
    assert not list(tmp_path.rglob("evil.dcm"))
    assert not (tmp_root / "evil.dcm").exists()
    assert not (tmp_root.parent / "evil.dcm").exists()


def test_palette_png_loads(tmp_path: Path) -> None:
    gray = synthetic_slice_u8()
    ct = load_ct([write_png(tmp_path / "pal.png", gray, "P")])
    np.testing.assert_array_equal(ct.volume[0], gray)


def test_sixteen_bit_png_loads(tmp_path: Path) -> None:
    ct = load_ct([write_png(tmp_path / "deep.png", synthetic_slice_u8(), "I;16")])
    assert ct.volume.max() == 255 and not ct.is_hu


def test_nan_nifti_loads_with_nan_replaced_by_minimum(tmp_path: Path) -> None:
    vol = synthetic_ct((3, 16, 16)).astype(np.float32)
    vol[1, :4, :4] = np.nan
    vol[2, 0, 0] = np.inf
    ct = load_ct([write_nifti(tmp_path / "nan.nii.gz", vol)])
    assert np.isfinite(ct.volume).all()
    finite = np.isfinite(vol)
    assert (ct.volume[~finite] == vol[finite].min()).all()
    np.testing.assert_array_equal(ct.volume[finite], vol[finite])
    assert ct.is_hu


def test_upload_within_limits_but_over_slice_area_is_refused_by_header(tmp_path: Path) -> None:
    """A 9000×8000 PNG is under Pillow's own bomb limit, so our header check must catch it."""
    Image.new("1", (9000, 8000)).save(tmp_path / "wide.png")
    with pytest.raises(CTLoadError, match=r"\(9000 × 8000 pixels\)"):
        load_ct([tmp_path / "wide.png"])


def _valid_file(tmp: Path, ext: str) -> Path:
    if ext == "dcm":
        return CT_SMALL
    if ext == "zip":
        series = write_dicom_series(tmp / "s", synthetic_ct((3, 16, 16)))
        return write_zip(tmp / "ok.zip", {f.name: f for f in series})
    if ext in ("png", "jpg"):
        return write_png(tmp / f"ok.{ext}", synthetic_slice_u8(), "RGB")
    return write_nifti(tmp / f"ok.{ext}", synthetic_ct((3, 16, 16)))


FORMATS = ["png", "jpg", "nii.gz", "nii", "mha", "nrrd", "dcm", "zip"]


@pytest.mark.parametrize("ext", FORMATS)
def test_every_truncation_is_refused(tmp_path: Path, ext: str) -> None:
    data = _valid_file(tmp_path, ext).read_bytes()
    for keep in (0.05, 0.4, 0.8, 0.99):
        cut = tmp_path / f"cut{keep}.{ext}"
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(CTLoadError):
            load_ct([cut])


@pytest.mark.parametrize("ext", FORMATS)
def test_flipped_bytes_never_escape_as_other_errors(tmp_path: Path, ext: str) -> None:
    """Random damage either still decodes (pixel bytes) or is a CTLoadError, never a crash."""
    data = _valid_file(tmp_path, ext).read_bytes()
    rng = np.random.default_rng(7)
    for k in range(4):
        damaged = np.frombuffer(data, np.uint8).copy()
        damaged[rng.integers(0, len(data), 16)] ^= 0xFF
        path = tmp_path / f"flip{k}.{ext}"
        path.write_bytes(damaged.tobytes())
        try:
            ct = load_ct([path])
        except CTLoadError as exc:
            assert str(exc)
        else:
            assert ct.volume.dtype == np.float32 and np.isfinite(ct.volume).all()


# --- issue 12: hostile headers (the same files tests/test_attacks.py sends to the server) -----


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_hostile_upload_is_refused_or_bounded(tmp_path: Path, attack: Attack) -> None:
    canary = write_canary(tmp_path)
    upload = tmp_path / "upload"
    upload.mkdir()
    paths = attack.build(upload, canary)
    if not attack.accepted:
        with pytest.raises(CTLoadError, match=attack.message) as info:
            load_upload(paths)
        assert CANARY_SECRET.decode() not in str(info.value)
        return
    (ct,) = load_upload(paths)
    assert re.search(attack.message, f"{ct.name}, spacing {_spacing(ct)}")
    assert CANARY_SECRET not in ct.volume.astype(np.uint8).tobytes()


def _spacing(ct) -> str:
    return " × ".join(f"{s:.3g}" for s in ct.spacing) if ct.spacing else "none"


def test_mixed_orientations_keep_the_largest_group(tmp_path: Path) -> None:
    (upload,) = dicom_mixed_orientations(tmp_path, write_canary(tmp_path))
    ct = load_ct([upload])
    assert ct.volume.shape == (4, 20, 20)
    assert "2 slice(s) of another orientation or size were left out" in ct.name


def test_mixed_sizes_in_one_series_are_split(tmp_path: Path) -> None:
    ct = load_ct(mixed_series(tmp_path))
    assert ct.volume.shape == (3, 20, 24) and "left out" in ct.name


@pytest.mark.parametrize("opener", ["upload", "bundle"])
def test_a_zip_with_too_many_entries_is_refused_before_its_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opener: str
) -> None:
    """The count comes from the end record: the directory (one object per entry) is never
    parsed. Uploads and session bundles (also zips) are both checked this way."""
    from spinalsam.bundle import BundleError, read_bundle

    (upload,) = zip_too_many_entries(tmp_path)
    bundle = write_zip(tmp_path / "many.npz", {f"{i}.npy": b"" for i in range(2 * MAX_FILES + 2)})
    bloated = tmp_path / "bloated.zip"  # the end record's count lies; its directory size tells
    data = bytearray(write_zip(tmp_path / "src.zip", {f"{i}": b"" for i in range(3)}).read_bytes())
    struct.pack_into("<HHL", data, len(data) - 14, 1, 1, 5 << 20)
    bloated.write_bytes(bytes(data))
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: pytest.fail("parsed"))
    if opener == "upload":
        with pytest.raises(CTLoadError, match=r"2001 entries; at most 2000"):
            load_ct([upload])
        with pytest.raises(CTLoadError, match="oversized directory"):
            load_ct([bloated])
    else:
        with pytest.raises(BundleError, match=r"4002 entries; at most 4001"):
            read_bundle(bundle, tmp_path)


def test_failed_zip_is_deleted_at_once(tmp_path: Path) -> None:
    workdir = tmp_path / "session"
    (upload,) = zip_fails_after_unpack(tmp_path, write_canary(tmp_path))
    with pytest.raises(CTLoadError, match="holds no readable DICOM"):
        load_ct([upload], workdir=workdir)
    assert not list(workdir.iterdir())


def test_new_zip_replaces_the_previous_unpack(tmp_path: Path) -> None:
    workdir = tmp_path / "session"
    series = write_dicom_series(tmp_path / "s", synthetic_ct((3, 16, 16)))
    upload = write_zip(tmp_path / "ok.zip", {f.name: f for f in series})
    first = load_ct([upload], workdir=workdir)
    second = load_ct([upload], workdir=workdir)
    assert not Path(first.dicom_files[0]).exists() and Path(second.dicom_files[0]).exists()
    assert len(list(workdir.iterdir())) == 1


def test_budget_is_the_one_limit(tmp_path: Path) -> None:
    """Every size check reads the budget it is given, not a constant of its own."""
    small = Budget(max_voxels=1000)
    path = write_nifti(tmp_path / "v.nii.gz", synthetic_ct((3, 16, 24)))
    with pytest.raises(CTLoadError, match=r"1,152 voxels; at most 1,000"):
        load_ct([path], small)
    with pytest.raises(CTLoadError, match=r"spacings from 1 to 2 mm"):
        load_ct([path], Budget(min_spacing_mm=1, max_spacing_mm=2))
    with pytest.raises(CTLoadError, match=r"16 × 16 pixels are supported"):
        load_ct([path], Budget(max_side_px=16))


def test_a_stack_of_pictures_is_held_to_the_voxel_budget_together(tmp_path: Path) -> None:
    """Each picture alone is small; the stack is counted as one volume, from the headers."""
    pages = [write_png(tmp_path / f"{name}.png", synthetic_slice_u8()) for name in "cab"]
    h, w = synthetic_slice_u8().shape
    assert [ct.name for ct in load_upload(pages)] == ["a.png", "b.png", "c.png"]
    with pytest.raises(CTLoadError, match=rf"3 pictures hold {3 * h * w:,} pixels together"):
        load_upload(pages, Budget(max_voxels=3 * h * w - 1))


def test_dicom_without_pixel_spacing_has_no_spacing(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT_SMALL)
    del ds.PixelSpacing
    ds.save_as(tmp_path / "nospacing.dcm")
    assert load_ct([tmp_path / "nospacing.dcm"]).spacing is None


def test_the_canary_attack_is_real_without_the_header_check(tmp_path: Path) -> None:
    """SimpleITK alone follows ElementDataFile: this is what `headers.check_metaimage` stops."""
    canary = write_canary(tmp_path)
    (path,) = mha_absolute(tmp_path, canary)
    leaked = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).tobytes()
    assert CANARY_SECRET in leaked
    with pytest.raises(CTLoadError, match="keeps its pixels in another file"):
        load_ct([path])


def test_compressed_dicom_announcing_more_frames_than_fragments(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small_RLE.dcm"))
    ds.NumberOfFrames = 5
    ds.save_as(tmp_path / "frames.dcm")
    with pytest.raises(
        CTLoadError, match="announces 5 frames but holds compressed data for only 1"
    ):
        load_ct([tmp_path / "frames.dcm"])
