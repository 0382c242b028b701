"""Header checks that run before any decoder (SimpleITK, GDCM, pydicom) reads a file's pixels.

Why a separate pass: decoders trust the file. A MetaImage header saying
`ElementDataFile = /proc/self/environ` makes ITK read that file as pixels, a detached NRRD
(`data file:`) or a NIfTI pair (`ni1` magic) does the same, a deflated DICOM inflates without
bound inside pydicom, and a DICOM announcing 2000 frames with one frame of pixel data is padded
silently. Here each header is parsed with plain byte reads, only as far as needed, and anything
that would make a decoder read another file, invent data or allocate beyond the budget is refused
with a message the user can act on.

All functions raise `HeaderError` (a `ValueError`); `spinalsam.io` turns it into `CTLoadError`.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import parse_fragments
from pydicom.uid import DeflatedExplicitVRLittleEndian

__all__ = [
    "DicomFacts",
    "HeaderError",
    "check_metaimage",
    "check_nifti_magic",
    "check_nifti_pair_magic",
    "check_nrrd",
    "check_zip_directory",
    "consistent_slices",
    "dicom_facts",
    "frame_planes",
    "metaimage_data_file",
    "nrrd_data_file",
    "paired_data_name",
    "scan_dicom_bytes",
    "sequence_items",
]

_HEADER_BYTES = 64 * 1024  # text headers longer than this are not images we accept
_CHUNK = 1 << 20
_PIXEL_TAG = 0x7FE00010
# The item tag (FFFE,E000) as little- and big-endian files store it.
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class HeaderError(ValueError):
    """A header that is refused; the message is shown to the user as is."""


def _text_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(_HEADER_BYTES)


def metaimage_data_file(path: Path) -> str:
    """The `ElementDataFile` value of a MetaImage header (`LOCAL`: the pixels follow it)."""
    for raw in _text_head(path).split(b"\n"):
        line = raw.decode("latin-1").strip()
        key, sep, value = line.partition("=")
        if not line:
            continue
        if not sep:
            raise HeaderError(
                f"'{path.name}' is damaged or not really a MHA file (no valid MetaImage header)."
            )
        if key.strip().lower() == "elementdatafile":
            return value.strip()
    raise HeaderError(
        f"'{path.name}' has no 'ElementDataFile' line in its header; it is not a complete "
        "MetaImage."
    )


def check_metaimage(path: Path) -> None:
    """Accept only a MetaImage whose pixels are inside the same file (`ElementDataFile = LOCAL`).

    MetaIO reads `key = value` lines up to `ElementDataFile`; any other value names a file (or a
    list or pattern of files) on the server, which is exactly the arbitrary-file-read attack.
    """
    value = metaimage_data_file(path)
    if value != "LOCAL":
        raise HeaderError(
            f"'{path.name}' keeps its pixels in another file ('ElementDataFile = {value[:60]}'); "
            "only .mha files with the data inside (ElementDataFile = LOCAL) are accepted. Save "
            "the image as one .mha or .nii.gz file, or upload a .mhd header with its data file."
        )


def nrrd_data_file(path: Path) -> str | None:
    """The `data file:` of a NRRD header, or None when the data is attached to the header."""
    head = _text_head(path)
    if not head.startswith(b"NRRD000"):
        raise HeaderError(f"'{path.name}' is not a valid NRRD file (no NRRD magic).")
    for raw in head.split(b"\n")[1:]:
        line = raw.decode("latin-1").strip()
        if not line:
            return None  # the blank line ends the header; the data follows in this file
        if line.startswith("#") or ":=" in line:
            continue  # comments and key/value pairs do not change where data is read from
        field, _, value = line.partition(":")
        if field.strip().lower().replace(" ", "") == "datafile":
            return value.strip()
    raise HeaderError(f"'{path.name}' has no complete NRRD header (no blank line ending it).")


def check_nrrd(path: Path) -> None:
    """Accept only an attached NRRD: a `data file:` field makes teem read other files."""
    if nrrd_data_file(path) is not None:
        raise HeaderError(
            f"'{path.name}' is a detached NRRD header that points to other files; upload "
            "a single .nrrd with the data attached (or a .nii.gz), or a .nhdr with its data file."
        )


def paired_data_name(path: Path) -> str | None:
    """The one data file a detached header (.mhd / .nhdr / .hdr) names; None when the data is
    inside.

    Only a plain file name is accepted: the caller then looks it up among the files of the same
    upload and nowhere else. Paths, lists and file-name patterns are refused.
    """
    suffix = path.suffix.lower()
    if suffix == ".hdr":  # a NIfTI/Analyze pair: the reader takes the .img of the same stem
        return f"{path.stem}.img"
    value = metaimage_data_file(path) if suffix == ".mhd" else nrrd_data_file(path)
    if value is None or value == "LOCAL":
        return None
    plain = value not in (".", "..") and not any(c in value for c in "/\\%:* \t")
    if not plain or value.upper() == "LIST":
        raise HeaderError(
            f"'{path.name}' names its data as '{value[:60]}'; a header may only name one data "
            "file by its plain file name, uploaded together with it."
        )
    return value


_NIFTI1_MAGIC = b"n+1\x00"
_NIFTI2_MAGIC = b"n+2\x00\r\n\x1a\n"


def check_nifti_magic(raw: bytes, name: str) -> None:
    """A single-file NIfTI says so in its magic; `ni1`/`ni2` or none means a separate .img file."""
    if raw[344:348] == _NIFTI1_MAGIC or raw[4:12] == _NIFTI2_MAGIC:
        return
    if raw[344:347] == b"ni1" or raw[4:7] == b"ni2":
        raise HeaderError(
            f"'{name}' is a NIfTI header whose data is in a separate .img file; upload a "
            "single-file NIfTI (.nii or .nii.gz)."
        )
    raise HeaderError(
        f"'{name}' is not a single-file NIfTI (no 'n+1'/'n+2' magic; an Analyze .hdr/.img "
        "pair?). Save it as .nii or .nii.gz."
    )


def check_nifti_pair_magic(raw: bytes, name: str) -> bool:
    """A .hdr of a pair says `ni1`/`ni2`, or nothing (Analyze 7.5); True for Analyze.

    Analyze stores no orientation, so the caller says the volume is shown as stored.
    """
    if raw[344:348] == _NIFTI1_MAGIC or raw[4:12] == _NIFTI2_MAGIC:
        raise HeaderError(
            f"'{name}' is a single-file NIfTI with its pixels inside; rename it to .nii and "
            "upload it alone."
        )
    return not (raw[344:347] == b"ni1" or raw[4:7] == b"ni2")


# A central-directory record is 46 bytes plus the entry's name, extra field and comment; real
# archives stay far below this per entry, and a directory past it is refused unread.
_MAX_ZIP_RECORD = 1024


def check_zip_directory(path: Path, max_entries: int) -> None:
    """Refuse a zip announcing more than `max_entries` entries, from its end record alone.

    `zipfile.ZipFile` builds an object for every entry of the central directory before anyone
    can count them: 400,000 empty entries (33 MB) took 5.7 s and 220 MB, and a 1 GiB upload
    holds 30 times that. The end record states the count and the directory's size; both are
    checked (a directory larger than its count can need is refused too, since the reader walks
    the bytes, not the count).
    """
    with path.open("rb") as fh:
        end = zipfile._EndRecData(fh)  # the stdlib's own reader of the (zip64) end record
    if end is None:
        raise HeaderError(f"'{path.name}' is not a readable zip archive (damaged?).")
    entries, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if entries > max_entries or size > max_entries * _MAX_ZIP_RECORD:
        shown = f"{entries} entries" if entries > max_entries else "an oversized directory"
        raise HeaderError(f"'{path.name}' holds {shown}; at most {max_entries} are allowed.")


def scan_dicom_bytes(path: Path, limit: int, max_items: int) -> int:
    """One pass over a DICOM file's dataset bytes before any parser sees them: the bytes a
    deflated file inflates to (0 when it is not deflated), counted without keeping them and
    stopping past `limit`, so that a deflate bomb costs at most `limit` bytes of work.

    The dataset's sequence items are counted on the way (raw or inflated bytes) and refused
    past `max_items`: pydicom builds every item of a sequence while parsing, ~700 bytes each,
    so 8-byte empty items (1.6 MB of them: +130 MB, 2.4 s) would cost 80 GB at the upload cap
    before any other check could run.
    """
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:  # not a DICOM with a file meta header: nothing is deflated
        meta = {}
    deflated = meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
    total = items = 0
    tail = b""
    with path.open("rb") as fh:
        if inflater is not None:  # preamble, "DICM", the group-length element, the group
            fh.seek(132 + 12 + int(meta.get("FileMetaInformationGroupLength", 0)))
        while chunk := fh.read(_CHUNK):
            while chunk:
                data = chunk
                if inflater is not None:
                    data = inflater.decompress(chunk, _CHUNK)
                    chunk = inflater.unconsumed_tail
                    total += len(data)
                else:
                    chunk = b""
                if total > limit:
                    raise HeaderError(
                        f"'{path.name}' is a deflated DICOM that inflates to more than "
                        f"{limit / 2**20:.0f} MiB and was not opened."
                    )
                # A tag of 4 bytes never lies wholly in the 3 bytes carried over: no double count.
                window = tail + data
                items += sequence_items(window)
                tail = window[-3:]
                if items > max_items:
                    raise HeaderError(
                        f"'{path.name}' holds more than {max_items:,} DICOM sequence items "
                        "(a CT file needs a few per slice) and was not opened."
                    )
    return total


def sequence_items(data: bytes) -> int:
    """How many DICOM sequence items `data` holds, counted by their tag without parsing."""
    return sum(data.count(tag) for tag in _ITEM_TAGS)


@dataclass(frozen=True)
class DicomFacts:
    """What one DICOM file's header says about its image, checked against its pixel data."""

    rows: int
    columns: int
    frames: int
    orientation: tuple[float, ...] | None  # ImageOrientationPatient (6 values)
    position: tuple[float, float, float] | None  # ImagePositionPatient
    pixel_spacing: tuple[float, float] | None  # (row, column) mm
    modality: str
    series_uid: str
    description: str
    has_pixels: bool  # False: a report or structured document, not an image
    looks_like_dicom: bool  # SOPClassUID present: a DICOM file, not random bytes
    sop_class: str = ""  # SOP Class UID (dataset, else file meta): what kind of object it is
    rescales: tuple[tuple[float, float], ...] | None = None  # per-frame (slope, intercept)
    # when an enhanced multi-frame file gives its frames different ones (GDCM applies one)


def dicom_facts(path: Path) -> DicomFacts:
    """Parse the header (pixel data deferred) and check the pixel data matches it.

    Raises `HeaderError` when the file announces more frames or pixels than it holds: decoders
    would pad the difference with zeros (a made-up image), or allocate a huge empty volume.
    """
    try:
        ds = pydicom.dcmread(path, defer_size="1 KB", force=True)
        element = ds._dict.get(_PIXEL_TAG)  # the raw element: its length, value not loaded
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        first = _frame_items(ds)[0] if "PerFrameFunctionalGroupsSequence" in ds else None
        spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        facts = DicomFacts(
            rows=rows,
            columns=columns,
            frames=frames,
            orientation=_floats(_geometry(ds, first, _ORIENTATION), 6),
            position=_floats(_geometry(ds, first, _POSITION), 3),  # type: ignore[arg-type]
            pixel_spacing=_floats(spacing or _geometry(ds, first, _SPACING), 2),  # type: ignore[arg-type]
            modality=str(ds.get("Modality", "") or "").upper(),
            series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
            description=str(ds.get("SeriesDescription", "") or "").strip(),
            has_pixels=any(
                t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
            ),
            looks_like_dicom="SOPClassUID" in ds,
            sop_class=str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID", "")),
        )
        if element is not None:
            _check_pixel_length(ds, element, facts, path)
        if first is not None and element is not None:
            facts = replace(facts, rescales=_checked_frames(ds, facts, path))
    except HeaderError:
        raise
    except Exception as exc:  # force=True parses arbitrary bytes; garbage fails in many ways
        raise HeaderError(f"'{path.name}' is not a valid DICOM file.") from exc
    if element is not None and (rows < 1 or columns < 1):
        raise HeaderError(f"'{path.name}' declares an image of {columns} × {rows} pixels.")
    return facts


# Where an enhanced (multi-frame) file keeps each frame's geometry and rescale: a functional
# group sequence, in the frame's own item or else in the shared one. (sequence, attribute)
_POSITION = ("PlanePositionSequence", "ImagePositionPatient")
_ORIENTATION = ("PlaneOrientationSequence", "ImageOrientationPatient")
_SPACING = ("PixelMeasuresSequence", "PixelSpacing")
_SLOPE = ("PixelValueTransformationSequence", "RescaleSlope")
_INTERCEPT = ("PixelValueTransformationSequence", "RescaleIntercept")


def _frame_items(ds: pydicom.Dataset) -> list[pydicom.Dataset]:
    return list(ds.PerFrameFunctionalGroupsSequence) or [pydicom.Dataset()]


def _geometry(ds: pydicom.Dataset, frame: pydicom.Dataset | None, where: tuple[str, str]) -> object:
    """An attribute of a classic file's top level, or else of an enhanced file's `frame`."""
    sequence, keyword = where
    if keyword in ds or frame is None:
        return ds.get(keyword)
    shared = ds.get("SharedFunctionalGroupsSequence") or [pydicom.Dataset()]
    for group in (frame, shared[0]):
        items = group.get(sequence) or []
        if items and keyword in items[0]:
            return items[0].get(keyword)
    return None


Plane = tuple[tuple[float, ...] | None, tuple[float, ...] | None, tuple[float, ...] | None]


def frame_planes(ds: pydicom.Dataset) -> list[Plane]:
    """(position, orientation, (row, column) spacing) of each frame, None where absent: a
    classic file's one frame from its top level, an enhanced file's from its functional groups.
    """
    frames = _frame_items(ds) if "PerFrameFunctionalGroupsSequence" in ds else [None]
    return [
        (
            _floats(_geometry(ds, f, _POSITION), 3),
            _floats(_geometry(ds, f, _ORIENTATION), 6),
            _floats(_geometry(ds, f, _SPACING), 2),
        )
        for f in frames
    ]


def _checked_frames(
    ds: pydicom.Dataset, facts: DicomFacts, path: Path
) -> tuple[tuple[float, float], ...] | None:
    """Refuse an enhanced file whose frames GDCM would stack wrongly; return the per-frame
    rescales when the frames differ in them (GDCM applies one to all), else None.

    GDCM takes the frames in stored order and one orientation, so a single orientation and
    positions that run monotonically with even gaps are required, as for a classic series.
    """
    frames = _frame_items(ds)
    if len(frames) != facts.frames:
        raise HeaderError(
            f"'{path.name}' describes {len(frames)} frame(s) but announces {facts.frames}; the "
            "file is incomplete or its header is wrong."
        )
    if len({_orientation_key(_floats(_geometry(ds, f, _ORIENTATION), 6)) for f in frames}) > 1:
        raise HeaderError(
            f"'{path.name}' holds frames of several orientations; export one orientation, or "
            "the series as classic single-frame slices."
        )
    if facts.frames > 1:
        positions = [_floats(_geometry(ds, f, _POSITION), 3) for f in frames]
        if facts.orientation is None or any(p is None for p in positions):
            raise HeaderError(_NO_GEOMETRY)
        depth = _depths(facts.orientation, positions)  # type: ignore[arg-type]
        steps = np.diff(depth)
        if not ((steps > 0).all() or (steps < 0).all()):
            raise HeaderError(
                f"The frames of '{path.name}' are not stored in position order, which this "
                "server cannot stack; export the series as classic single-frame slices."
            )
        _check_even_gaps(np.sort(depth), [f"frame {i + 1}" for i in np.argsort(depth)])
    rescales = tuple(
        (float(_geometry(ds, f, _SLOPE) or 1), float(_geometry(ds, f, _INTERCEPT) or 0))  # type: ignore[arg-type]
        for f in frames
    )
    bad = next((i for i, r in enumerate(rescales) if not np.isfinite(r).all()), None)
    if bad is not None:
        raise HeaderError(
            f"'{path.name}' gives frame {bad + 1} a rescale slope or intercept that is not a "
            "number, so its Hounsfield values are unknown; the file is damaged."
        )
    return rescales if len(set(rescales)) > 1 else None


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _check_pixel_length(
    ds: pydicom.Dataset, element: object, facts: DicomFacts, path: Path
) -> None:
    length = getattr(element, "length", None)
    if length is None:  # already a DataElement (small file): its value is the bytes
        length = len(getattr(element, "value", b"") or b"")
    if length == 0xFFFFFFFF or ds.file_meta.get("TransferSyntaxUID", None) in _ENCAPSULATED:
        fragments = _fragment_count(ds, path)
        if fragments < facts.frames:
            raise HeaderError(
                f"'{path.name}' announces {facts.frames} frames but holds compressed data for "
                f"only {fragments}; the file is incomplete or its header is wrong."
            )
        return
    bits = int(ds.get("BitsAllocated", 16) or 16)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    pixels = facts.rows * facts.columns * facts.frames * samples
    needed = (pixels + 7) // 8 if bits == 1 else pixels * ((bits + 7) // 8)
    if length < needed:
        raise HeaderError(
            f"'{path.name}' announces {facts.frames} frame(s) of {facts.columns} × {facts.rows} "
            f"pixels ({needed:,} bytes) but holds only {length:,} bytes of pixel data; the file "
            "is incomplete or its header is wrong."
        )


def _fragment_count(ds: pydicom.Dataset, path: Path) -> int:
    with path.open("rb") as fh:
        offset = ds._dict[_PIXEL_TAG].value_tell  # type: ignore[union-attr]
        fh.seek(offset)
        try:
            count, _ = parse_fragments(fh)  # the first item is the Basic Offset Table
        except (ValueError, struct.error) as exc:
            raise HeaderError(f"'{path.name}' has damaged compressed pixel data.") from exc
    return max(int(count) - 1, 0)


_ENCAPSULATED = {
    uid
    for uid in pydicom.uid.AllTransferSyntaxes
    if pydicom.uid.UID(uid).is_encapsulated and uid != DeflatedExplicitVRLittleEndian
}


def consistent_slices(facts: list[DicomFacts], names: list[str]) -> tuple[list[int], str]:
    """Which slices of one series form a single volume, and a note about those left out.

    Slices are kept in the largest group of one orientation and size (a scout image or a second
    orientation in the same series is split off, and the note says so). Within that group,
    missing positions, two slices at the same position, or uneven gaps are refused: a volume
    built from them would have a made-up spacing.
    """
    groups: dict[tuple, list[int]] = {}
    for i, f in enumerate(facts):
        groups.setdefault((_orientation_key(f.orientation), f.rows, f.columns), []).append(i)
    keep = max(groups.values(), key=len)
    dropped = len(facts) - len(keep)
    note = ""
    if dropped:
        note = (
            f"{dropped} slice(s) of another orientation or size were left out "
            f"({len(groups)} groups in one series)"
        )
    if len(keep) < 2:
        return keep, note
    chosen = [facts[i] for i in keep]
    if any(f.position is None or f.orientation is None for f in chosen):
        raise HeaderError(_NO_GEOMETRY)
    depth = _depths(chosen[0].orientation, [f.position for f in chosen])  # type: ignore[arg-type]
    order = np.argsort(depth)
    _check_even_gaps(depth[order], [names[keep[i]] for i in order])
    return keep, note


_NO_GEOMETRY = (
    "Some slices of this series have no position or orientation (ImagePositionPatient / "
    "ImageOrientationPatient), so their order and spacing are unknown; upload slices "
    "with complete headers."
)


def _orientation_key(orientation: tuple[float, ...] | None) -> tuple[float, ...] | None:
    """Orientations equal to 3 decimals are one: writers differ in the last digits they print."""
    return None if orientation is None else tuple(round(v, 3) for v in orientation)


def _depths(orientation: tuple[float, ...], positions: list[tuple[float, ...]]) -> np.ndarray:
    """Each position's distance along the slice normal."""
    rows = np.array(orientation).reshape(2, 3)
    return np.asarray(positions, dtype=float) @ np.cross(rows[0], rows[1])


def _check_even_gaps(depth: np.ndarray, names: list[str]) -> None:
    """Sorted slice depths (with their names) must be distinct and evenly spaced."""
    gaps = np.diff(depth)
    if (gaps < 1e-3).any():
        twins = [names[i] for i in np.flatnonzero(gaps < 1e-3)[:3]]
        raise HeaderError(
            f"{int((gaps < 1e-3).sum())} slice(s) share a position with another slice (e.g. "
            f"{', '.join(twins)}): the upload mixes several acquisitions or repeats files. "
            "Upload one series with one slice per position."
        )
    median = float(np.median(gaps))
    uneven = np.abs(gaps - median) > 0.1 * median + 0.01
    if uneven.any():
        raise HeaderError(
            f"The slices are not evenly spaced (gaps from {gaps.min():.3g} to {gaps.max():.3g} mm; "
            "slices missing?), so no single spacing describes the volume. Upload the complete "
            "series."
        )
