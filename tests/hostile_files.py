"""Hostile uploads of issue 12, built in a temp folder (never fetched): one builder per attack.

Shared by tests/test_bad_inputs.py (through `load_ct`), tests/test_attacks.py (through the running
server) and bench/attacks.py (RSS and time per attack). Each `Attack` names the files to upload
and a regex the refusal message must match; `canary` attacks reference a secret file that must
never show up in what the server sends back.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import SimpleITK as sitk
from fixtures_ct import synthetic_ct, write_dicom_series, write_enhanced_ct, write_zip
from PIL import Image
from pydicom.uid import DeflatedExplicitVRLittleEndian

__all__ = ["ATTACKS", "CANARY_SECRET", "MARKUP", "Attack", "huge_slice", "write_canary"]

CANARY_SECRET = b"SPINALSAM-CANARY-7f3a9c-DEEPSEEK_API_KEY=sk-not-a-real-key"
CT_SMALL = Path(pydicom.data.get_testdata_file("CT_small.dcm"))


def write_canary(folder: Path) -> Path:
    """A file the server must never read: its bytes, repeated, fill a whole image if leaked."""
    path = folder / "canary-secret.txt"
    path.write_bytes(CANARY_SECRET * 4096)
    return path


def _relative(canary: Path) -> str:
    """A `../` path that reaches the canary from any folder (extra `..` stop at the root)."""
    return "../" * 24 + str(canary).lstrip("/")


def _mha_referencing(tmp: Path, target: str, name: str = "scan.mha") -> list[Path]:
    header = (
        "ObjectType = Image\nNDims = 2\nDimSize = 64 64\nElementType = MET_UCHAR\n"
        "ElementSpacing = 1 1\n"
        f"ElementDataFile = {target}\n"
    )
    path = tmp / name
    path.write_text(header)
    return [path]


def mha_absolute(tmp: Path, canary: Path) -> list[Path]:
    return _mha_referencing(tmp, str(canary))


def mha_relative(tmp: Path, canary: Path) -> list[Path]:
    return _mha_referencing(tmp, _relative(canary))


def mha_environ(tmp: Path, canary: Path) -> list[Path]:
    return _mha_referencing(tmp, "/proc/self/environ")


def mha_list(tmp: Path, canary: Path) -> list[Path]:
    return _mha_referencing(tmp, f"LIST\n{canary}")


def mha_lowercase_key(tmp: Path, canary: Path) -> list[Path]:
    path = _mha_referencing(tmp, str(canary))[0]
    path.write_text(path.read_text().replace("ElementDataFile", "elementdatafile"))
    return [path]


def mhd_alone(tmp: Path, canary: Path) -> list[Path]:
    """A detached header uploaded without data, naming the canary by its plain file name."""
    return _mhd_pair(tmp, canary, canary.name)[:1]


def mhd_pair_other_name(tmp: Path, canary: Path) -> list[Path]:
    """A header + data file, but the header names a `../` path instead of the uploaded file."""
    return _mhd_pair(tmp, canary, _relative(canary))


def _mhd_pair(tmp: Path, canary: Path, target: str) -> list[Path]:
    (header,) = _mha_referencing(tmp, target, "scan.mhd")
    data = tmp / "scan.raw"
    data.write_bytes(bytes(64 * 64))
    return [header, data]


def _nrrd_detached(tmp: Path, target: str) -> list[Path]:
    path = tmp / "scan.nrrd"
    path.write_text(
        f"NRRD0004\ntype: uint8\ndimension: 2\nsizes: 64 64\nencoding: raw\ndata file: {target}\n\n"
    )
    return [path]


def nrrd_absolute(tmp: Path, canary: Path) -> list[Path]:
    return _nrrd_detached(tmp, str(canary))


def nrrd_relative(tmp: Path, canary: Path) -> list[Path]:
    return _nrrd_detached(tmp, _relative(canary))


def nifti_pair(tmp: Path, canary: Path) -> list[Path]:
    """A NIfTI-1 header with the `ni1` magic: ITK would read the pixels from scan.img."""
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((64, 64), np.uint8)), str(tmp / "scan.nii"))
    data = bytearray((tmp / "scan.nii").read_bytes()[:352])
    data[344:348] = b"ni1\x00"
    (tmp / "scan.img").write_bytes(canary.read_bytes()[:4096])
    (tmp / "scan.nii").write_bytes(bytes(data))
    return [tmp / "scan.nii"]


def _hdr_pair(tmp: Path, canary: Path) -> list[Path]:
    """A 64×64 NIfTI pair (`ni1`) whose scan.img holds 1,000 canary bytes, not 4,096 pixels."""
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((64, 64), np.uint8)), str(tmp / "scan.hdr"))
    (tmp / "scan.img").write_bytes(canary.read_bytes()[:1000])
    return [tmp / "scan.hdr", tmp / "scan.img"]


def hdr_alone(tmp: Path, canary: Path) -> list[Path]:
    """A pair's header uploaded alone; the canary lies beside it on disk as its scan.img."""
    return _hdr_pair(tmp, canary)[:1]


def hdr_short_img(tmp: Path, canary: Path) -> list[Path]:
    """Header and data uploaded together, the data shorter than announced (ITK pads zeros)."""
    return _hdr_pair(tmp, canary)


def analyze_as_nii(tmp: Path, canary: Path) -> list[Path]:
    """An Analyze 7.5 header (no NIfTI magic) named .nii."""
    (path,) = nifti_pair(tmp, canary)
    data = bytearray(path.read_bytes())
    data[344:348] = bytes(4)
    path.write_bytes(bytes(data))
    return [path]


def nifti_tiny_spacing(tmp: Path, canary: Path) -> list[Path]:
    """33 KB, 64×64×4 voxels at (1e-5, 1, 1) mm: once stretched the display to 6.4M rows."""
    img = sitk.GetImageFromArray(synthetic_ct((4, 64, 64)))
    img.SetSpacing((1e-5, 1.0, 1.0))
    sitk.WriteImage(img, str(tmp / "thin.nii"))
    return [tmp / "thin.nii"]


def nifti_extreme_ratio(tmp: Path, canary: Path) -> list[Path]:
    """Within the spacing range but a 2500:1 ratio: the display grid must stay bounded."""
    img = sitk.GetImageFromArray(synthetic_ct((4, 64, 64)))
    img.SetSpacing((0.02, 0.02, 50.0))
    sitk.WriteImage(img, str(tmp / "ratio.nii.gz"))
    return [tmp / "ratio.nii.gz"]


def dicom_pixel_spacing(tmp: Path, canary: Path) -> list[Path]:
    ds = pydicom.dcmread(CT_SMALL)
    ds.PixelSpacing = [100, 1e-4]
    ds.save_as(tmp / "spacing.dcm")
    return [tmp / "spacing.dcm"]


def mha_compressed_huge(tmp: Path, canary: Path) -> list[Path]:
    """About 1 MB on disk, 8192×8192×8 voxels (512 MiB) once inflated."""
    header = (
        "ObjectType = Image\nNDims = 3\nDimSize = 8192 8192 8\nElementType = MET_UCHAR\n"
        "ElementSpacing = 1 1 1\nCompressedData = True\n"
    )
    packed = zlib.compress(bytes(8192 * 8192 * 8), 9)
    path = tmp / "huge.mha"
    with path.open("wb") as fh:
        fh.write(header.encode())
        fh.write(f"CompressedDataSize = {len(packed)}\nElementDataFile = LOCAL\n".encode())
        fh.write(packed)
    return [path]


def nifti_gz_bomb(tmp: Path, canary: Path) -> list[Path]:
    """A .nii.gz whose header claims 4096×4096×400 float64 (50 GiB) from a few MB."""
    img = sitk.GetImageFromArray(np.zeros((2, 8, 8), np.float64))
    sitk.WriteImage(img, str(tmp / "plain.nii"))
    data = bytearray((tmp / "plain.nii").read_bytes()[:352])
    struct.pack_into("<4h", data, 40, 3, 4096, 4096, 400)
    path = tmp / "bomb.nii.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(bytes(data))
        fh.write(bytes(64 << 20))
    return [path]


def dicom_deflate_bomb(tmp: Path, canary: Path) -> list[Path]:
    """A deflated DICOM whose dataset inflates to more than the budget (1.1 GiB of zeros)."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.save_as(tmp / "plain.dcm", enforce_file_format=True)
    meta = pydicom.filereader.read_file_meta_info(tmp / "plain.dcm")
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = pydicom.filebase.DicomBytesIO()
    buf.write(b"\x00" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(buf, meta)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    path = tmp / "deflated.dcm"
    with path.open("wb") as fh:
        fh.write(buf.getvalue())
        zeros = bytes(64 << 20)
        for _ in range(18):  # 1.1 GiB, just over the budget
            fh.write(deflater.compress(zeros))
        fh.write(deflater.flush())
    return [path]


def dicom_frames_lie(tmp: Path, canary: Path) -> list[Path]:
    """NumberOfFrames = 2000 with one frame of pixel data."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.NumberOfFrames = 2000
    ds.save_as(tmp / "frames.dcm")
    return [tmp / "frames.dcm"]


def enhanced_ct_frames_lie(tmp: Path, canary: Path) -> list[Path]:
    """An Enhanced (multi-frame) CT of 4 frames announcing 2000: GDCM would pad 1996 frames."""
    path = write_enhanced_ct(
        tmp / "enhanced.dcm", write_dicom_series(tmp / "s", synthetic_ct((4, 20, 24)))
    )
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 2000
    ds.save_as(path)
    return [path]


def dicom_sequence_items(tmp: Path, canary: Path) -> list[Path]:
    """200,000 empty sequence items (1.6 MB): pydicom builds each one while parsing the header,
    +130 MB and 2.4 s here, about 80 GB at the upload cap, before any other check runs."""
    items = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" * 200_000
    end = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    # A private SQ element of undefined length after the pixel data (explicit VR little endian).
    sequence = b"\xe1\x7f\x01\x10SQ\x00\x00\xff\xff\xff\xff" + items + end
    path = tmp / "items.dcm"
    path.write_bytes(CT_SMALL.read_bytes() + sequence)
    return [path]


def dicom_size_lie(tmp: Path, canary: Path) -> list[Path]:
    """A 4000×4000 header (within the side limit) with 32 KB of pixel data."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.Rows = ds.Columns = 4000
    ds.save_as(tmp / "size.dcm")
    return [tmp / "size.dcm"]


def dicom_huge_header(tmp: Path, canary: Path) -> list[Path]:
    ds = pydicom.dcmread(CT_SMALL)
    ds.Rows = ds.Columns = 8192
    ds.save_as(tmp / "huge.dcm")
    return [tmp / "huge.dcm"]


def dicom_duplicate_positions(tmp: Path, canary: Path) -> list[Path]:
    files = sorted(write_dicom_series(tmp / "s", synthetic_ct((4, 20, 24))))
    ds = pydicom.dcmread(files[1])
    ds.ImagePositionPatient = pydicom.dcmread(files[2]).ImagePositionPatient
    ds.save_as(files[1])
    return [write_zip(tmp / "dupes.zip", {f.name: f for f in files})]


def dicom_gap(tmp: Path, canary: Path) -> list[Path]:
    files = sorted(write_dicom_series(tmp / "s", synthetic_ct((5, 20, 24))))
    del files[2]
    return files


def dicom_mixed_orientations(tmp: Path, canary: Path) -> list[Path]:
    """Axial and coronal slices under one series UID in one zip: never merged into one volume."""
    axial = write_dicom_series(tmp / "a", synthetic_ct((4, 20, 20)))
    coronal = write_dicom_series(tmp / "c", synthetic_ct((20, 2, 20)), orientation="LSA")
    members = {f"ax{i}.dcm": f for i, f in enumerate(axial)}
    members |= {f"co{i}.dcm": f for i, f in enumerate(coronal)}
    return [write_zip(tmp / "mixed.zip", members)]


def zip_fails_after_unpack(tmp: Path, canary: Path) -> list[Path]:
    """Unpacks fine (64 MiB of zeros, highly compressible) and then holds no DICOM."""
    return [write_zip(tmp / "junk.zip", {f"{i}.dcm": bytes(16 << 20) for i in range(4)})]


def picture_stack(tmp: Path, canary: Path) -> list[Path]:
    """12 one-colour 4096² PNGs, 16 KB each on disk: 12 × 64 MiB decoded, over the voxel
    budget together though each picture alone is within it."""
    first = tmp / "page00.png"
    Image.new("L", (4096, 4096)).save(first, optimize=True)
    pages = [first]
    for i in range(1, 12):
        pages.append(tmp / f"page{i:02d}.png")
        pages[-1].write_bytes(first.read_bytes())
    return pages


def zip_many_entries(tmp: Path, canary: Path) -> list[Path]:
    """60,000 empty entries (5 MB): `zipfile` builds an object per entry of the directory
    before any count can be checked (400,000 took 5.7 s and +220 MB; 1 GiB holds 12 million)."""
    with zipfile.ZipFile(tmp / "many.zip", "w") as zf:
        for i in range(60_000):
            zf.writestr(str(i), b"")
    return [tmp / "many.zip"]


MARKUP = (
    '<img src=x onerror="document.title=1">![t](http://127.0.0.1:7919/track.png)'
    "[click me](https://evil.example/login)\u202e\x1b[2J"
)


def dicom_description_markup(tmp: Path, canary: Path) -> list[Path]:
    """A DICOM whose SeriesDescription (the image's name in the app) is HTML and Markdown: an
    image beacon every viewer's browser fetched, and a disguised link, in the status line."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so the bidi override is stored as is
    ds.SeriesDescription = MARKUP
    ds.save_as(tmp / "report.dcm")
    return [tmp / "report.dcm"]


def huge_slice(tmp: Path) -> tuple[Path, tuple[int, int]]:
    """A 4096² CT slice (0.1 mm pixels) and a click on its vertebra, in the slice's own pixels
    (chat coordinates; the display grid is bounded to 2048²).

    One click on such a slice took 138 s before segmentation was bounded to 1024² pixels.
    """
    small = synthetic_ct((1, 512, 512))
    big = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)
    img = sitk.GetImageFromArray(big)
    img.SetSpacing((0.1, 0.1, 1.0))
    path = tmp / "huge_slice.nii.gz"
    sitk.WriteImage(img, str(path), True)
    return path, (int(0.6 * 4096), int(0.65 * 4096))  # the ring's centre


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[[Path, Path], list[Path]]  # (temp folder, canary file) → upload
    message: str  # regex the refusal must match; "" when the upload is accepted
    canary: bool = False  # the file references the canary: its bytes must never come back
    slow: bool = False  # builds or sends hundreds of MB
    accepted: bool = False  # opens (bounded or split); `message` then matches the status


ATTACKS: list[Attack] = [
    Attack("mha_absolute_reference", mha_absolute, r"keeps its pixels in another file", True),
    Attack("mha_relative_reference", mha_relative, r"keeps its pixels in another file", True),
    Attack("mha_proc_environ", mha_environ, r"keeps its pixels in another file", True),
    Attack("mha_list", mha_list, r"keeps its pixels in another file", True),
    Attack("mha_lowercase_key", mha_lowercase_key, r"keeps its pixels in another file", True),
    Attack("mhd_without_its_data", mhd_alone, r"upload that file together", True),
    Attack("mhd_pair_naming_a_path", mhd_pair_other_name, r"plain file name", True),
    Attack("nrrd_absolute_reference", nrrd_absolute, r"detached NRRD", True),
    Attack("nrrd_relative_reference", nrrd_relative, r"detached NRRD", True),
    Attack("nifti_pair_header", nifti_pair, r"separate \.img file", True),
    Attack("analyze_as_nii", analyze_as_nii, r"not a single-file NIfTI", True),
    Attack("hdr_without_its_img", hdr_alone, r"upload that file together", True),
    Attack("hdr_with_a_short_img", hdr_short_img, r"'scan\.img' is incomplete", True),
    Attack("nifti_spacing_1e-5", nifti_tiny_spacing, r"spacing of 1e-05 × 1 × 1 mm"),
    Attack(
        "nifti_spacing_ratio_2500",
        nifti_extreme_ratio,
        r"spacing 0\.02 × 0\.02 × 50",
        accepted=True,
    ),
    Attack("dicom_pixel_spacing_100_1e-4", dicom_pixel_spacing, r"spacing of 100 × 0\.0001 mm"),
    Attack("mha_compressed_8192x8192x8", mha_compressed_huge, r"too large \(8192 × 8192"),
    Attack("nifti_gz_bomb", nifti_gz_bomb, r"too large \(4096 × 4096|voxels; at most"),
    Attack("dicom_deflate_bomb", dicom_deflate_bomb, r"deflated DICOM that inflates", slow=True),
    Attack("dicom_frames_2000_of_1", dicom_frames_lie, r"announces 2000 frame"),
    Attack("enhanced_ct_frames_2000_of_4", enhanced_ct_frames_lie, r"announces 2000 frame"),
    Attack("dicom_200000_sequence_items", dicom_sequence_items, r"sequence items"),
    Attack("dicom_4000x4000_32kb", dicom_size_lie, r"holds only 32,768 bytes of pixel data"),
    Attack("dicom_8192x8192_header", dicom_huge_header, r"8192 × 8192 pixels"),
    Attack("dicom_duplicate_positions", dicom_duplicate_positions, r"share a position"),
    Attack("dicom_missing_slice", dicom_gap, r"not evenly spaced"),
    Attack(
        "dicom_mixed_orientations", dicom_mixed_orientations, r"another orientation", accepted=True
    ),
    Attack("zip_fails_after_unpack", zip_fails_after_unpack, r"holds no readable DICOM"),
    Attack("zip_60000_empty_entries", zip_many_entries, r"holds 60000 entries; at most 2000"),
    Attack("picture_stack_12x4096x4096", picture_stack, r"12 pictures hold 201,326,592 pixels"),
    Attack(
        "dicom_description_markup",
        dicom_description_markup,
        r"‹img src=x onerror=\"document\.title=1\"›!\(t\)\(http://127\.0\.0\.1:7919/track\.png\)"
        r"\(click me\)\(https://evil\.example/login\)\(2J(\*\*|,)",  # no bidi, no ESC
        accepted=True,
    ),
]
