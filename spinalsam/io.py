"""CT input through SimpleITK: PNG/JPG, single DICOM, DICOM series (files or .zip), enhanced
(multi-frame) CT, NIfTI, MHA/NRRD.

Every upload is hostile until proven otherwise: every size is checked against one `Budget`
(`spinalsam.limits`) from headers before any pixel is decoded, headers that would make a decoder
read another file are refused before SimpleITK opens the file (`spinalsam.headers`), each decoder
is named explicitly (ITK never guesses a format from the content), zips are unpacked only under
names we choose and deleted at once when they fail to open, and every failure becomes a
`CTLoadError` whose message is shown to the user as is.

Volumes are reoriented to LPS (x → patient left, y → posterior, z → superior) so that `vol[z]` is
an axial slice in radiological display without further flips; the file's own orientation is kept
in `source_orientation` so exports land back on the file's grid.

Hounsfield rule: DICOM is HU when its Modality is CT (SimpleITK applies rescale slope/intercept;
an enhanced CT whose frames carry different ones gets each frame's own, see `_per_frame_rescaled`).
DICOM objects that are not images (DICOM-SEG, RT structures, reports) are refused by SOP class.
NIfTI/MHA/NRRD carry no modality, so they count as HU when the values look like CT: minimum below
-500 (air is -1000 HU), or an integer type holding negative values. Anything else (MR, renders,
PNG/JPG) is shown as is on a 0..255 scale: integer volumes already within 0..255 (8-bit renders,
label maps with ids up to 255) keep their values, others are stretched from min..max.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
import pydicom
import SimpleITK as sitk
from PIL import Image, UnidentifiedImageError

from spinalsam import headers
from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.plaintext import plain_name

__all__ = [
    "RASTER_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "CTImage",
    "CTLoadError",
    "load_ct",
    "load_label_map",
    "load_upload",
]

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg")
_DICOM = (".dcm", ".dicom")
_VOLUME = (".nii", ".nii.gz", ".mha", ".nrrd")
_DETACHED_HEADER = (".mhd", ".nhdr", ".hdr")  # headers whose pixels are in a separate data file
_DETACHED_DATA = (".raw", ".zraw", ".img")
_ARCHIVE = (".zip",)
SUPPORTED_EXTENSIONS: tuple[str, ...] = (
    RASTER_EXTENSIONS + _DICOM + _VOLUME + _DETACHED_HEADER + _DETACHED_DATA + _ARCHIVE
)

_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_SUPPORTED_HINT = (
    "Upload a PNG/JPEG image, a DICOM file, several DICOM files of one series (or a .zip of "
    "them), a NIfTI volume (.nii / .nii.gz), a single-file .mha / .nrrd, or a .mhd / .nhdr / "
    ".hdr header together with its data file (.raw / .img)."
)
_COPY_CHUNK = 1 << 20
UNPACK_PREFIX = "unpacked-"  # folders under a session's workdir that hold one unpacked archive
_IMAGE_IO = {
    "nifti": "NiftiImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".hdr": "NiftiImageIO",  # a NIfTI-1 pair (`ni1`) or an Analyze 7.5 header, with its .img
}
_PIXEL_BYTES = {
    sitk.sitkUInt8: 1,
    sitk.sitkInt8: 1,
    sitk.sitkUInt16: 2,
    sitk.sitkInt16: 2,
    sitk.sitkUInt32: 4,
    sitk.sitkInt32: 4,
    sitk.sitkFloat32: 4,
}  # anything else counts 8 bytes per value


class CTLoadError(ValueError):
    """A file that cannot be loaded; the message is shown to the user as is."""


@dataclass(frozen=True, eq=False)
class CTImage:
    """A loaded image or volume, reoriented to LPS so axial slices display radiologically.

    2-D images are volumes with one slice. `volume` holds Hounsfield units when `is_hu`,
    else the 0..255 intensities of an 8-bit render (which pass through windowing unchanged).
    """

    volume: np.ndarray  # (Z, Y, X) float32
    spacing: tuple[float, float, float] | None  # (x, y, z) mm, None when the file has none
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 values, row-major, of the LPS-reoriented grid
    is_hu: bool
    name: str
    source_orientation: str = "LPS"  # orientation code of the file, to export back to it
    dicom_files: tuple[str, ...] = ()  # source DICOM paths (DICOM-SEG export), else empty

    def __post_init__(self) -> None:
        # Names come from file names, DICOM descriptions and bundles, and are shown as Markdown.
        object.__setattr__(self, "name", plain_name(self.name))

    @property
    def is_volume(self) -> bool:
        return self.volume.shape[0] > 1


def load_ct(
    paths: Sequence[str | os.PathLike[str]],
    budget: Budget = DEFAULT_BUDGET,
    workdir: Path | None = None,
) -> CTImage:
    """Load one image/volume from one or several uploaded files, within `budget`.

    Several files must all be DICOM slices; a .zip must hold a DICOM series. A zip is unpacked
    under `workdir` (a folder the caller owns and deletes, e.g. the session's) or else a fresh
    temp folder; after a successful load, archives unpacked earlier under `workdir` are deleted,
    because the caller replaces its images with this one. Raises `CTLoadError` and nothing else.
    """
    with _load_errors():
        return _Loader(budget, workdir).load(paths)


def load_upload(
    paths: Sequence[str | os.PathLike[str]],
    budget: Budget = DEFAULT_BUDGET,
    workdir: Path | None = None,
) -> list[CTImage]:
    """What one upload opens: several PNG/JPEG pictures as a stack of images (one per file,
    sorted by file name), anything else as the one image of `load_ct`.

    A stack is held to the same budget as one volume: its pixels together are counted from the
    headers before any picture is decoded. A 4096² picture of one colour is 16 KB on disk and
    64 MiB once decoded, so counting each picture alone let a 0.3 MB upload of 20 pictures take
    1.3 GB of the server's memory. Raises `CTLoadError` and nothing else.
    """
    if isinstance(paths, str | os.PathLike):  # one path, as `load_ct` takes it
        paths = [paths]
    names = [Path(p).name.lower() for p in paths]
    if len(names) < 2 or not all(n.endswith(RASTER_EXTENSIONS) for n in names):
        return [load_ct(paths, budget, workdir)]
    with _load_errors():
        return _Loader(budget, workdir).load_pictures(paths)


@contextmanager
def _load_errors() -> Iterator[None]:
    """Every failure of a load as one `CTLoadError` whose message can be shown as is."""
    try:
        yield
    except CTLoadError:
        raise
    except headers.HeaderError as exc:
        raise CTLoadError(str(exc)) from exc
    except MemoryError as exc:
        raise CTLoadError("This file is too large to open on this server.") from exc
    except Exception as exc:
        # Third-party parsers fed hostile bytes raise a zoo of exception types; the user needs
        # one clear sentence, not a traceback.
        raise CTLoadError(
            f"The file could not be read ({type(exc).__name__}); it may be damaged or in an "
            f"unsupported variant. {_SUPPORTED_HINT}"
        ) from exc


def load_label_map(
    path: str | os.PathLike[str], shape: tuple[int, ...], budget: Budget = DEFAULT_BUDGET
) -> np.ndarray:
    """Label ids exactly as stored, on the (Z, Y, X) LPS grid of an image of `shape`.

    `load_ct` rescales non-HU data to 0..255 for display; label maps must keep their ids
    (VerSe and others go past 255), so volumes are read again without rescaling.
    """
    path = Path(path)
    ct = load_ct([path], budget)  # every format, size and safety check, with its messages
    values = ct.volume
    if _kind(path) in ("nifti", "itk"):
        image = _itk_reader(path).Execute()  # the header already passed load_ct's checks
        if image.GetDimension() == 3:
            image = sitk.DICOMOrient(image, "LPS")
        values = sitk.GetArrayViewFromImage(image).reshape(ct.volume.shape)
    if values.shape != tuple(shape):
        raise CTLoadError(
            f"'{path.name}' has {values.shape[::-1]} voxels but the image has {tuple(shape)[::-1]} "
            "(x, y, z); a mask must be on the same grid."
        )
    if not np.array_equal(values, np.rint(values)) or values.min() < 0:
        raise CTLoadError(f"'{path.name}' holds non-integer or negative values, not labels.")
    return values.astype(np.int32)


@dataclass
class _Loader:
    """One upload's load: the budget it is checked against, and the bytes it inflated so far."""

    budget: Budget
    workdir: Path | None
    inflated: int = field(default=0)

    def load(self, paths: Sequence[str | os.PathLike[str]]) -> CTImage:
        files = self._checked_upload(paths)
        kinds = [_kind(f) for f in files]
        if "header" in kinds or "data" in kinds:
            return self._load_detached(files, kinds)
        if len(files) == 1:
            return self._load_single(files[0], kinds[0])
        if any(kind != "dicom" for kind in kinds):
            raise CTLoadError(
                "Several files can only be opened together when they are all DICOM slices of "
                "one series. Open other images one at a time."
            )
        return self._load_dicom(files)

    def load_pictures(self, paths: Sequence[str | os.PathLike[str]]) -> list[CTImage]:
        files = sorted(self._checked_upload(paths), key=lambda f: f.name)
        pixels = sum(math.prod(self._raster_size(f)) for f in files)
        if pixels > self.budget.max_voxels:
            raise CTLoadError(
                f"The {len(files)} pictures hold {pixels:,} pixels together; at most "
                f"{self.budget.max_voxels:,} can be open at once. Open fewer or smaller pictures."
            )
        return [self._load_raster(f) for f in files]

    def _checked_upload(self, paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
        """The upload's files, each present and non-empty, within the file count and bytes."""
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        if len(paths) == 0:
            raise CTLoadError(f"No file was given. {_SUPPORTED_HINT}")
        if len(paths) > self.budget.max_files:
            raise CTLoadError(
                f"Too many files ({len(paths)}); at most {self.budget.max_files} files (slices) "
                "can be opened at once."
            )
        files = [_checked_file(Path(p)) for p in paths]
        total = sum(f.stat().st_size for f in files)
        if total > self.budget.max_upload_bytes:
            raise CTLoadError(
                f"The upload is {_gib(total)}; at most {_gib(self.budget.max_upload_bytes)} "
                "can be opened."
            )
        return files

    def _load_single(self, path: Path, kind: str) -> CTImage:
        if kind == "raster":
            self._raster_size(path)
            return self._load_raster(path)
        if kind == "zip":
            return self._load_zip(path)
        if kind == "dicom":
            return self._load_dicom([path])
        if kind == "nifti":
            return self._load_itk_volume(path, self._nifti_nonfinite(path))
        return self._load_itk_volume(path)

    # --- checks against the budget, from headers -----------------------------------------

    @property
    def _max_dicom_bytes(self) -> int:
        """The most one uncompressed DICOM file can need: one 64-bit slice plus 16 MiB header."""
        return self.budget.max_side_px**2 * 8 + (16 << 20)

    def check_slice_size(self, width: int, height: int, name: str) -> None:
        side = self.budget.max_side_px
        if width > side or height > side:
            raise CTLoadError(
                f"'{name}' is too large ({width} × {height} pixels); images up to {side} × "
                f"{side} pixels are supported."
            )

    def check_volume_size(self, size: Sequence[int], name: str, value_bytes: int = 4) -> None:
        """`size` is ITK's (x, y, z, …) order; checked from the header, before decoding."""
        if any(s < 1 for s in size):
            raise CTLoadError(
                f"'{name}' has an empty dimension (size {list(size)}); it holds no image."
            )
        width, height, slices = (*size, 1, 1)[:3]
        self.check_slice_size(width, height, name)
        if slices > self.budget.max_slices:
            raise CTLoadError(
                f"'{name}' has {slices} slices; at most {self.budget.max_slices} are supported."
            )
        voxels = math.prod(int(s) for s in size)
        if voxels > self.budget.max_voxels:
            raise CTLoadError(
                f"'{name}' has {voxels:,} voxels; at most {self.budget.max_voxels:,} are supported."
            )
        if voxels * value_bytes > self.budget.max_decompressed_bytes:
            raise CTLoadError(
                f"'{name}' holds {_gib(voxels * value_bytes)} of pixel data once decompressed; "
                f"at most {_gib(self.budget.max_decompressed_bytes)} is supported."
            )

    def check_spacing(self, spacing: Sequence[float], name: str) -> None:
        """Spacing outside the budget's range is a broken or hostile header, not a CT."""
        low, high = self.budget.min_spacing_mm, self.budget.max_spacing_mm
        for s in spacing:
            if not (math.isfinite(s) and low <= s <= high):
                shown = " × ".join(f"{v:.3g}" for v in spacing)
                raise CTLoadError(
                    f"'{name}' declares a voxel spacing of {shown} mm; spacings from {low:g} to "
                    f"{high:g} mm are supported. The header is damaged or not a CT's."
                )

    # --- PNG / JPEG --------------------------------------------------------------------------

    def _raster_size(self, path: Path) -> tuple[int, int]:
        """(width, height) from the header, checked against the budget; no pixel is decoded."""
        with self._raster_errors(path), Image.open(path) as img:
            width, height = img.size
            self.check_slice_size(width, height, path.name)
            if img.format == "PNG":
                img.verify()  # walks every chunk's CRC without decoding pixels
        return width, height

    def _load_raster(self, path: Path) -> CTImage:
        """Pillow decodes every PNG/JPEG mode (palette, LA, RGBA, 16-bit); the caller has checked
        the size and PNG CRCs (`_raster_size`)."""
        with self._raster_errors(path), Image.open(path) as img:
            pixels = _raster_to_gray(img)
        return CTImage(
            volume=pixels[np.newaxis],
            spacing=None,
            origin=(0.0, 0.0, 0.0),
            direction=_IDENTITY,
            is_hu=False,
            name=path.name,
        )

    @contextmanager
    def _raster_errors(self, path: Path) -> Iterator[None]:
        try:
            yield
        except CTLoadError:  # our own size check (a ValueError too)
            raise
        except Image.DecompressionBombError as exc:  # Pillow refuses before we see the size
            side = self.budget.max_side_px
            raise CTLoadError(
                f"'{path.name}' is too large; images up to {side} × {side} pixels are supported."
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, struct.error, ValueError) as exc:
            # ValueError: Pillow's limit on compressed text chunks (a PNG text bomb).
            raise CTLoadError(
                f"'{path.name}' is not a readable image: the file is damaged, incomplete or not "
                "really a PNG/JPEG."
            ) from exc

    # --- NIfTI / MHA / NRRD ------------------------------------------------------------------

    def _nifti_nonfinite(self, path: Path, pixels: Path | None = None) -> np.ndarray | None:
        """Check a NIfTI file ITK would misread, and find its NaN/inf voxels (None: none).

        ITK's NIfTI reader pads a short file with zeros, treats a 0-sized dimension as 1, reads
        a `ni1` header's pixels from another file and turns NaN/inf into 0 (which is water in
        HU): we refuse the first three, and return where the fourth happens, in the file's
        (…, z, y, x) array order, so those voxels become the minimum instead. `pixels`: the
        .img of a pair whose header is `path` (its magic already checked).
        """
        gz = path.name.lower().endswith(".gz")
        masks: list[np.ndarray] = []
        try:
            with gzip.open(path, "rb") if gz else path.open("rb") as head:
                raw = head.read(544)
            header = _parse_nifti_header(raw, path.name)
            if pixels is None:
                headers.check_nifti_magic(raw, path.name)
            sized = zip(header.pixdim, header.dims[:3], strict=False)  # pixdim: spatial only
            if not all(math.isfinite(v) and v > 0 for v, n in sized if n > 1):
                # ITK shows a NaN or zero voxel size as 1 mm: a made-up size is no size. (Valid
                # ones are checked after ITK has converted their units to mm.) The size across
                # one single slice measures nothing, and tools often leave it 0.
                self.check_spacing(header.pixdim, path.name)
            # Before decompressing anything more: the declared size is what ITK allocates.
            self.check_volume_size(header.dims, path.name, max(header.bitpix // 8, 1))
            voxels = math.prod(header.dims)
            needed = voxels * header.bitpix // 8
            float_type = _NIFTI_FLOATS.get(header.datatype)
            dtype = np.dtype(header.endian + float_type) if float_type else None
            data = pixels or path
            with gzip.open(data, "rb") if gz else data.open("rb") as fh:
                fh.seek(header.vox_offset if pixels else max(header.vox_offset, 348))
                available = 0
                # Read no more than the header announces, so a gzip bomb cannot keep us busy.
                while available < needed and (
                    chunk := fh.read(min(_COPY_CHUNK, needed - available))
                ):
                    available += len(chunk)
                    if dtype is not None:
                        values = np.frombuffer(chunk, dtype, len(chunk) // dtype.itemsize)
                        masks.append(~np.isfinite(values))
                fh.read(_COPY_CHUNK)  # reaches the end of a gzip stream, where its CRC is checked
        except (OSError, EOFError, zlib.error) as exc:
            raise CTLoadError(
                f"'{path.name}' is damaged or incomplete (the compressed data ends early or is "
                "corrupt)."
            ) from exc
        if available < needed:
            raise CTLoadError(
                f"'{data.name}' is incomplete: it holds {available} of the {needed} bytes of "
                "image data its header announces. Please upload the complete file."
            )
        if not masks:
            return None
        nonfinite = np.concatenate(masks)
        return nonfinite.reshape(header.dims[::-1]) if nonfinite.any() else None

    def _load_itk_volume(self, path: Path, nonfinite: np.ndarray | None = None) -> CTImage:
        """NIfTI/MHA/NRRD; `nonfinite` marks voxels ITK zeroed that were NaN/inf in the file."""
        suffix = path.suffix.lower()
        if suffix == ".mha":
            headers.check_metaimage(path)  # before SimpleITK opens the file
        elif suffix == ".nrrd":
            headers.check_nrrd(path)
        reader = _itk_reader(path)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise CTLoadError(
                f"'{path.name}' could not be read as a medical image: it is damaged or not "
                f"really a {_format_name(path)} file."
            ) from exc
        size = reader.GetSize()
        if reader.GetDimension() > 3:
            raise CTLoadError(
                f"'{path.name}' is a {reader.GetDimension()}-D series (size {list(size)}); only "
                "2-D images and 3-D volumes are supported. Export a single 3-D volume."
            )
        if reader.GetNumberOfComponents() > 1:
            raise CTLoadError(
                f"'{path.name}' stores {reader.GetNumberOfComponents()} values per voxel (a "
                "vector or colour volume); a CT volume stores one value per voxel."
            )
        self.check_volume_size(size, path.name, _PIXEL_BYTES.get(reader.GetPixelID(), 8))
        self.check_spacing(reader.GetSpacing(), path.name)
        # Passed on without a local name: _from_sitk can free ITK's copy once it has its own.
        return _from_sitk(_execute(reader, path, nonfinite), is_hu=None, name=path.name)

    def _load_detached(self, files: list[Path], kinds: list[str]) -> CTImage:
        """A .mhd/.nhdr header, with the data file it names taken from the same upload only.

        The header must name its data by a plain file name (`headers.paired_data_name`); the
        header and that one uploaded file are placed alone in a fresh folder, so the reader
        cannot reach any other file whatever the header says.
        """
        header = [f for f, k in zip(files, kinds, strict=True) if k == "header"]
        if len(header) != 1 or len(files) > 2:
            raise CTLoadError(
                "Upload one .mhd or .nhdr header together with the one data file it names "
                "(e.g. scan.mhd + scan.raw), and nothing else."
            )
        wanted = headers.paired_data_name(header[0])
        data = [f for f in files if f != header[0]]
        if wanted is None:  # the pixels are inside the header file after all
            if data:
                raise CTLoadError(f"'{header[0].name}' holds its own pixels; upload it alone.")
            return self._load_itk_volume(header[0])
        if [f.name for f in data] != [wanted]:
            raise CTLoadError(
                f"'{header[0].name}' keeps its pixels in '{wanted}'; upload that file together "
                "with the header (only files of the same upload are read)."
            )
        with tempfile.TemporaryDirectory(prefix="spinalsam-pair-") as tmp:
            linked, pixels = Path(tmp) / header[0].name, Path(tmp) / wanted
            os.symlink(header[0].resolve(), linked)
            os.symlink(data[0].resolve(), pixels)
            if linked.suffix.lower() == ".hdr":
                return self._load_nifti_pair(linked, pixels)
            return self._load_itk_volume(linked)

    def _load_nifti_pair(self, header: Path, pixels: Path) -> CTImage:
        """A NIfTI-1 pair or an Analyze 7.5 .hdr/.img, checked like a single-file NIfTI."""
        with header.open("rb") as fh:  # a hostile .hdr may be large: its header is 348–540 B
            analyze = headers.check_nifti_pair_magic(fh.read(544), header.name)
        ct = self._load_itk_volume(header, self._nifti_nonfinite(header, pixels))
        if analyze:  # the format has no orientation: say so rather than imply one
            note = "Analyze 7.5 stores no orientation; shown as stored"
            return replace(ct, name=f"{ct.name} — {note}")
        return ct

    # --- DICOM -------------------------------------------------------------------------------

    def _load_dicom(self, files: list[Path], archive: str | None = None) -> CTImage:
        """Group files into series with GDCM, keep the largest consistent one, and read it.

        Every header is checked first (`spinalsam.headers`): pixel data matching the declared
        frames and size, bounded inflation, one orientation and size, distinct evenly spaced
        positions. `archive` names the zip the files came from, for messages and the image name.
        """
        for f in files:
            left = self.budget.max_decompressed_bytes - self.inflated
            # pydicom and GDCM each inflate a deflated file whole, in memory: one file may
            # inflate to at most what its largest possible slice needs.
            self.inflated += headers.scan_dicom_bytes(
                f, min(left, self._max_dicom_bytes), self.budget.max_dicom_items
            )
        series = files if len(files) == 1 and archive is None else _largest_series(files, archive)
        facts = [_dicom_facts(f) for f in series]
        keep, note = headers.consistent_slices(facts, [f.name for f in series])
        series, facts = [series[i] for i in keep], [facts[i] for i in keep]
        first = facts[0]
        self.check_volume_size(
            (first.columns, first.rows, first.frames * len(series)), series[0].name
        )
        if first.pixel_spacing:
            self.check_spacing(first.pixel_spacing, series[0].name)
        name = first.description or archive or series[0].name
        if len(series) > 1:
            name = f"{name} ({len(series)} slices)"
        if note:
            name = f"{name} — {note}"
        if first.rescales is not None and len(series) > 1:
            raise CTLoadError(
                f"'{series[0].name}' is a multi-frame file with a rescale per frame; upload it "
                "alone, not together with other files."
            )
        ct = _from_sitk(
            _per_frame_rescaled(_gdcm_read(series), series[0], first.rescales),
            is_hu=first.modality == "CT",
            name=name,
            dicom_files=tuple(str(f) for f in series),
        )
        if first.pixel_spacing is None:  # never present GDCM's made-up 1 mm as the file's
            return replace(ct, spacing=None)
        self.check_spacing(ct.spacing or (), series[0].name)  # z: from the slice positions
        return ct

    # --- zip ---------------------------------------------------------------------------------

    def _load_zip(self, path: Path) -> CTImage:
        """Unpack, load, and delete the unpacked files at once when anything fails."""
        with self._unpack_folder() as target:
            files = _unpack_zip(path, target, self.budget)
            ct = self._load_dicom(files, archive=path.name)
        return ct

    @contextmanager
    def _unpack_folder(self) -> Iterator[Path]:
        parent = self.workdir
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=UNPACK_PREFIX, dir=parent))
        try:
            yield target
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        if parent is not None:  # the caller's earlier images are replaced by this one
            for old in parent.glob(f"{UNPACK_PREFIX}*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _checked_file(path: Path) -> Path:
    if not path.exists():
        raise CTLoadError(f"'{path.name}' was not found; please upload it again.")
    if not path.is_file():
        raise CTLoadError(f"'{path.name}' is a folder, not a file. {_SUPPORTED_HINT}")
    if path.stat().st_size == 0:
        raise CTLoadError(f"'{path.name}' is empty (0 bytes); the upload may have failed.")
    return path


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz") or name.endswith(".nii"):
        return "nifti"
    suffix = path.suffix.lower()
    if suffix in RASTER_EXTENSIONS:
        return "raster"
    if suffix in (".mha", ".nrrd"):
        return "itk"
    if suffix in _DETACHED_HEADER:
        return "header"
    if suffix in _DETACHED_DATA:
        return "data"
    if suffix in _ARCHIVE:
        return "zip"
    if suffix in _DICOM or _has_dicom_magic(path):
        return "dicom"
    raise CTLoadError(f"'{path.name}' is not a supported file type. {_SUPPORTED_HINT}")


def _has_dicom_magic(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    return head[128:132] == b"DICM"


def _itk_reader(path: Path) -> sitk.ImageFileReader:
    """A reader bound to the format its extension names: ITK must never pick an IO by content."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO(_IMAGE_IO[_kind(path) if _kind(path) == "nifti" else path.suffix.lower()])
    reader.SetFileName(str(path))
    return reader


def _raster_to_gray(img: Image.Image) -> np.ndarray:
    """Colour CT renders become gray; 16-bit and float images are stretched to 0..255."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return _to_byte_range(np.asarray(img).astype(np.float32))
    return np.asarray(img.convert("L"), dtype=np.float32)


# --- NIfTI header ----------------------------------------------------------------------------


class _NiftiHeader(NamedTuple):
    dims: tuple[int, ...]  # (x, y, z, …) as in the file, only the used ones
    datatype: int
    bitpix: int
    vox_offset: int  # as stored: into the .img of a pair, past the header in a single file
    endian: str
    pixdim: tuple[float, ...]  # voxel size along each used dimension, in the file's units


_NIFTI_FLOATS = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32/float64


def _parse_nifti_header(raw: bytes, name: str) -> _NiftiHeader:
    """The fields we check, from a NIfTI-1 or NIfTI-2 header in either byte order."""
    for endian in "<>":
        if len(raw) >= 348 and struct.unpack_from(endian + "i", raw, 0)[0] == 348:
            dim = struct.unpack_from(endian + "8h", raw, 40)
            datatype, bitpix = struct.unpack_from(endian + "2h", raw, 70)
            pixdim = struct.unpack_from(endian + "8f", raw, 76)
            offset = struct.unpack_from(endian + "f", raw, 108)[0]
            break
        if len(raw) >= 540 and struct.unpack_from(endian + "i", raw, 0)[0] == 540:
            datatype, bitpix = struct.unpack_from(endian + "2h", raw, 12)
            dim = struct.unpack_from(endian + "8q", raw, 16)
            pixdim = struct.unpack_from(endian + "8d", raw, 104)
            offset = struct.unpack_from(endian + "q", raw, 168)[0]
            break
    else:
        raise CTLoadError(f"'{name}' is not a valid NIfTI file. {_SUPPORTED_HINT}")
    if not 1 <= dim[0] <= 7:
        raise CTLoadError(f"'{name}' is not a valid NIfTI file. {_SUPPORTED_HINT}")
    dims = tuple(int(d) for d in dim[1 : dim[0] + 1])
    offset = int(offset) if math.isfinite(offset) else 0
    spacing = tuple(float(v) for v in pixdim[1 : min(dim[0], 3) + 1])
    return _NiftiHeader(dims, datatype, bitpix, max(offset, 0), endian, spacing)


def _format_name(path: Path) -> str:
    return "NIfTI" if _kind(path) == "nifti" else path.suffix.lstrip(".").upper()


# --- DICOM -----------------------------------------------------------------------------------


def _largest_series(files: list[Path], archive: str | None) -> list[Path]:
    # GDCM scans one folder, but uploads arrive in separate folders: link them side by side.
    with tempfile.TemporaryDirectory(prefix="spinalsam-series-") as tmp:
        links = {}
        for i, f in enumerate(files):
            link = Path(tmp) / f"{i:05d}.dcm"
            os.symlink(f.resolve(), link)
            links[str(link)] = f
        reader = sitk.ImageSeriesReader()
        groups = [reader.GetGDCMSeriesFileNames(tmp, sid) for sid in reader.GetGDCMSeriesIDs(tmp)]
    groups = [g for g in groups if g]
    if not groups:
        where = f"'{archive}' holds no" if archive else f"None of the {len(files)} files is a"
        raise CTLoadError(f"{where} readable DICOM image. {_SUPPORTED_HINT}")
    return [links[f] for f in max(groups, key=len)]


def _dicom_facts(path: Path) -> headers.DicomFacts:
    """The checked header; tells a non-DICOM file from a DICOM without an image."""
    try:
        facts = headers.dicom_facts(path)
    except headers.HeaderError as exc:
        hint = f" {_SUPPORTED_HINT}" if "not a valid" in str(exc) else ""
        raise CTLoadError(f"{exc}{hint}") from exc
    if refusal := _not_an_image(path.name, facts.sop_class):
        raise CTLoadError(refusal)
    if not facts.has_pixels:
        if _has_dicom_magic(path) or facts.looks_like_dicom:
            raise CTLoadError(
                f"'{path.name}' is a DICOM file without image (pixel) data, e.g. a report or "
                "a structured document; upload the image slices instead."
            )
        raise CTLoadError(f"'{path.name}' is not a valid DICOM file. {_SUPPORTED_HINT}")
    return facts


# SOP classes (by pydicom's name) of DICOM objects that are not images of the patient, though
# some carry pixel data that GDCM would show as one (a DICOM-SEG's 0/1 frames, a dose grid).
_NOT_IMAGES = (
    "Segmentation",
    "RT Structure Set",
    "RT Plan",
    "RT Dose",
    "SR Storage",
    "Encapsulated",
    "Presentation State",
    "Key Object Selection",
    "Spatial Registration",
    "Raw Data",
)


def _not_an_image(name: str, sop_class: str) -> str | None:
    """What to tell the user who uploaded a DICOM object that is no image (None: an image)."""
    uid = pydicom.uid.UID(sop_class)
    # An invalid UID's "name" is the file's own text, which must not reach the Markdown status.
    title = uid.name if uid.is_valid else ""
    if "Segmentation" in title:
        return (
            f"'{name}' is a DICOM segmentation (DICOM-SEG), not a CT image: open the CT series "
            "it was made on. To compare with it, use its label map as NIfTI, MHA or NRRD "
            "(Compare reads label maps in those formats)."
        )
    if any(kind in title for kind in _NOT_IMAGES):
        return (
            f"'{name}' is a DICOM {title.removesuffix(' Storage')} object, not a CT image; "
            "upload the CT image slices (or a .zip of them) instead."
        )
    return None


def _per_frame_rescaled(
    img: sitk.Image, path: Path, rescales: tuple[tuple[float, float], ...] | None
) -> sitk.Image:
    """GDCM's image with each frame's own slope/intercept applied to its stored values.

    GDCM rescales every frame of an enhanced file with one pair; pydicom decodes the stored
    values, which the header check held to the frames and size announced.
    """
    if rescales is None:
        return img
    stored = pydicom.dcmread(path).pixel_array.reshape(img.GetSize()[::-1])
    slope, intercept = (np.array(v, np.float32)[:, None, None] for v in zip(*rescales, strict=True))
    out = sitk.GetImageFromArray(stored.astype(np.float32) * slope + intercept)
    out.CopyInformation(img)
    return out


def _gdcm_read(series: list[Path]) -> sitk.Image:
    """GDCM reads the checked files in the given order (one file: ImageFileReader)."""
    reader: sitk.ImageFileReader | sitk.ImageSeriesReader
    if len(series) == 1:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(series[0]))
    else:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames([str(f) for f in series])
    reader.SetImageIO("GDCMImageIO")
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise CTLoadError(
            "The DICOM slices could not be combined into one volume: they differ in size or "
            "some files are damaged or incomplete."
        ) from exc


def _execute(reader: sitk.ImageFileReader, path: Path, nonfinite: np.ndarray | None) -> sitk.Image:
    """Decode a checked NIfTI/MHA/NRRD; voxels ITK zeroed that were NaN/inf become NaN again."""
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise CTLoadError(f"'{path.name}' is damaged or incomplete.") from exc
    if nonfinite is None:
        return img
    values = sitk.GetArrayFromImage(img)
    values[nonfinite.reshape(values.shape)] = np.nan
    restored = sitk.GetImageFromArray(values)
    restored.CopyInformation(img)
    return restored


# --- zip -------------------------------------------------------------------------------------


def _unpack_zip(path: Path, target: Path, budget: Budget) -> list[Path]:
    """Unpack into `target` under names we choose, so no entry can point anywhere else."""
    headers.check_zip_directory(path, budget.max_files)
    try:
        with zipfile.ZipFile(path) as zf:
            return _extract(zf, _checked_members(zf, path.name, budget), target, budget)
    except NotImplementedError as exc:
        raise CTLoadError(
            f"'{path.name}' uses a zip compression method this server cannot unpack; please "
            "re-create it with standard (deflate) compression."
        ) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise CTLoadError(f"'{path.name}' is not a readable zip archive (damaged?).") from exc


def _checked_members(zf: zipfile.ZipFile, name: str, budget: Budget) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > budget.max_files:
        raise CTLoadError(
            f"'{name}' holds {len(infos)} entries; at most {budget.max_files} are allowed."
        )
    members = []
    for info in infos:
        if info.is_dir():
            continue
        entry = PurePosixPath(info.filename.replace("\\", "/"))
        if not entry.parts or entry.is_absolute() or ".." in entry.parts or ":" in entry.parts[0]:
            raise CTLoadError(
                f"'{name}' contains an unsafe file name ('{info.filename}') and was not opened."
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise CTLoadError(f"'{name}' contains a symbolic link and was not opened.")
        if info.flag_bits & 0x1:
            raise CTLoadError(f"'{name}' is password-protected; please upload it unencrypted.")
        if entry.parts[0] != "__MACOSX" and not entry.name.startswith("."):
            members.append(info)
    declared = sum(info.file_size for info in members)
    if declared > budget.max_decompressed_bytes:
        raise CTLoadError(
            f"'{name}' would unpack to {_gib(declared)}; at most "
            f"{_gib(budget.max_decompressed_bytes)} is allowed."
        )
    if not members:
        raise CTLoadError(f"'{name}' is empty: it holds no DICOM files.")
    return members


def _extract(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], target: Path, budget: Budget
) -> list[Path]:
    left = budget.max_decompressed_bytes  # re-counted while unpacking: declared sizes can lie
    out = []
    for i, info in enumerate(members):
        # One folder per entry keeps the entry's own (sanitised) name for messages.
        dest = target / f"{i:05d}" / _safe_name(info.filename)
        dest.parent.mkdir()
        with zf.open(info) as src, dest.open("wb") as dst:
            while chunk := src.read(_COPY_CHUNK):
                left -= len(chunk)
                if left < 0:
                    raise CTLoadError(
                        f"The zip unpacks to more than {_gib(budget.max_decompressed_bytes)} "
                        "and was not opened."
                    )
                dst.write(chunk)
        out.append(dest)
    return out


def _safe_name(entry: str) -> str:
    base = PurePosixPath(entry.replace("\\", "/")).name
    return re.sub(r"[^A-Za-z0-9._-]", "_", base)[:120] or "entry"


# --- shared ----------------------------------------------------------------------------------


def _from_sitk(
    img: sitk.Image, *, is_hu: bool | None, name: str, dicom_files: tuple[str, ...] = ()
) -> CTImage:
    """LPS-reoriented CTImage; `is_hu=None` means decide from the values (NIfTI rule above).

    Memory: callers pass the decoded image without keeping a reference, so ITK's copy is freed
    as soon as it is reoriented; at most one ITK image (two while reorienting) and the float32
    volume exist at once. The budget's voxel limit is set so that this peak stays under 1 GiB.
    """
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    source = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection())
    if source != "LPS":
        img = sitk.DICOMOrient(img, "LPS")
    raw = sitk.GetArrayViewFromImage(img)
    if raw.ndim == 4:  # colour DICOM (secondary capture of a render): luma, not HU
        raw = raw[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        is_hu = False
    pixels = np.array(raw, dtype=np.float32)
    if not np.issubdtype(raw.dtype, np.integer):  # integers are always finite
        pixels = _finite(pixels, name)
    if is_hu is None:
        is_hu = _looks_like_hu(pixels, raw.dtype)
    if not is_hu and not _is_byte_range(raw):
        pixels = _to_byte_range(pixels)
    return CTImage(
        volume=np.ascontiguousarray(pixels),
        spacing=tuple(float(s) for s in img.GetSpacing()),  # type: ignore[arg-type]
        origin=tuple(float(o) for o in img.GetOrigin()),  # type: ignore[arg-type]
        direction=tuple(float(d) for d in img.GetDirection()),
        is_hu=is_hu,
        name=name,
        source_orientation=source,
        dicom_files=dicom_files,
    )


def _looks_like_hu(pixels: np.ndarray, dtype: np.dtype) -> bool:
    low = float(pixels.min())
    return low < -500 or (np.issubdtype(dtype, np.integer) and low < 0)


def _is_byte_range(raw: np.ndarray) -> bool:
    """Integer data already on the 0..255 display scale, whose values must stay as they are."""
    return bool(np.issubdtype(raw.dtype, np.integer) and raw.min() >= 0 and raw.max() <= 255)


def _finite(pixels: np.ndarray, name: str) -> np.ndarray:
    """NaN/inf voxels (masked-out regions in NIfTI) become the lowest real value, in place."""
    finite = np.isfinite(pixels)
    if finite.all():
        return pixels
    if not finite.any():
        raise CTLoadError(f"'{name}' holds no valid values (every voxel is NaN or infinite).")
    pixels[~finite] = pixels[finite].min()
    return pixels


def _to_byte_range(pixels: np.ndarray) -> np.ndarray:
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        return np.zeros_like(pixels, dtype=np.float32)
    # Multiply before dividing so the maximum lands exactly on 255.
    return ((pixels - low) * 255.0 / (high - low)).astype(np.float32)
