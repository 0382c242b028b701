"""A whole session in one file (images, geometry, prompts, masks, labels, measurements, chat).

A bundle comes from a stranger, so it is validated completely before anything replaces the
user's work: the JSON part against a pydantic schema, every array against the same resource
budget as an upload (`spinalsam.limits.DEFAULT_BUDGET`), array headers read before any data is
decompressed, and everything cross-checked (label ids named, slices and prompts inside their
image). The format is a plain `.npz` read with `allow_pickle=False`, so opening a bundle can
never execute code. Source DICOM headers (no pixel data) travel along, so a reopened DICOM
session still exports DICOM-SEG.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from spinalsam.headers import HeaderError, check_zip_directory, sequence_items
from spinalsam.io import CTImage
from spinalsam.labels import MAX_NAME_CHARS, LabelSet
from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.plaintext import inert_markdown
from spinalsam.planes import Plane, n_slices, take_slice
from spinalsam.prompts import Point, PromptSet
from spinalsam.windowing import Window

__all__ = [
    "BUNDLE_VERSION",
    "BundleError",
    "SavedImage",
    "SavedSession",
    "fit_chat",
    "read_bundle",
    "write_bundle",
]

BUNDLE_VERSION = 2
_LEVEL = 1  # zlib level of the arrays: see write_bundle
_MAX_PROMPTS = DEFAULT_BUDGET.max_prompts_per_slice
_MAX_CHAT = DEFAULT_BUDGET.max_saved_chat_messages
_MAX_TEXT = DEFAULT_BUDGET.max_saved_text_chars
_MAX_LABELS = DEFAULT_BUDGET.max_labels
_MAX_NAME = 255  # characters of an image name
_CUT = " …"
_LABEL_MAX = np.iinfo(np.uint16).max


class BundleError(ValueError):
    """A bundle that cannot be opened; the message says why and is shown as is."""


@dataclass(frozen=True)
class SavedImage:
    ct: CTImage
    labels: np.ndarray
    plane: Plane
    index: int
    prompts: dict[tuple[Plane, int], PromptSet]


@dataclass(frozen=True)
class SavedSession:
    """Everything a user sees in a session, as a bundle stores it."""

    images: tuple[SavedImage, ...]
    position: int
    window: Window | None
    label_set: LabelSet
    active_label: int
    metrics: dict[str, float]
    stats_view: tuple[int, Plane, int] | None
    volume_report: str | None
    chat: tuple[tuple[str, str], ...]
    hidden: frozenset[int] = frozenset()  # label ids the user hid


# ----------------------------------------------------------------- schema of the JSON part
Finite = Annotated[float, Field(allow_inf_nan=False)]
Coord = Annotated[int, Field(ge=0, le=DEFAULT_BUDGET.max_side_px)]
LabelId = Annotated[int, Field(ge=1, le=_LABEL_MAX)]
LabelName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Prompts(_Model):
    plane: Plane
    index: Annotated[int, Field(ge=0, le=DEFAULT_BUDGET.max_slices)]
    points: list[tuple[Coord, Coord, Literal[0, 1]]] = Field(default=[], max_length=_MAX_PROMPTS)
    boxes: list[tuple[Coord, Coord, Coord, Coord]] = Field(default=[], max_length=_MAX_PROMPTS)


class _Image(_Model):
    name: str = Field(min_length=1, max_length=_MAX_NAME)
    spacing: tuple[Finite, Finite, Finite] | None
    origin: tuple[Finite, Finite, Finite]
    direction: tuple[Finite, Finite, Finite, Finite, Finite, Finite, Finite, Finite, Finite]
    is_hu: bool
    source_orientation: str = Field(
        "LPS",
        pattern=r"^(?:[LR][PA][SI]|[LR][SI][PA]|[PA][LR][SI]"
        r"|[PA][SI][LR]|[SI][LR][PA]|[SI][PA][LR])$",
    )
    plane: Plane = "axial"
    index: Annotated[int, Field(ge=0, le=DEFAULT_BUDGET.max_slices)] = 0
    prompts: list[_Prompts] = Field(default=[], max_length=DEFAULT_BUDGET.max_slices)
    dicom_headers: Annotated[int, Field(ge=0, le=DEFAULT_BUDGET.max_files)] = 0

    @field_validator("direction")
    @classmethod
    def _orthonormal(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        m = np.asarray(value).reshape(3, 3)
        if not np.allclose(m @ m.T, np.eye(3), atol=1e-3):
            raise ValueError("direction is not a rotation")
        return value


class _Meta(_Model):
    version: Literal[1, 2]
    position: Annotated[int, Field(ge=0)] = 0
    window: (
        tuple[
            Annotated[float, Field(ge=-5000, le=50000, allow_inf_nan=False)],
            Annotated[float, Field(gt=0, le=100000, allow_inf_nan=False)],
        ]
        | None
    ) = None
    active_label: LabelId = 1
    hidden: list[LabelId] = Field(default=[], max_length=_MAX_LABELS)
    labels: list[tuple[LabelId, LabelName]] = Field(
        default=[(1, "vertebra")], min_length=1, max_length=_MAX_LABELS
    )
    # Dice and IoU per label and scope, and the slice's measurements.
    metrics: dict[Annotated[str, Field(max_length=100)], Finite] = Field(
        default={}, max_length=4 * _MAX_LABELS + 64
    )
    stats_view: tuple[Annotated[int, Field(ge=0)], Plane, Annotated[int, Field(ge=0)]] | None = None
    volume_report: str | None = Field(None, max_length=_MAX_TEXT)
    chat: list[tuple[Literal["user", "assistant"], Annotated[str, Field(max_length=_MAX_TEXT)]]] = (
        Field(default=[], max_length=_MAX_CHAT)
    )
    images: list[_Image] = Field(min_length=1, max_length=DEFAULT_BUDGET.max_files)


# ----------------------------------------------------------------- writing
def fit_chat(chat: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The conversation as a bundle keeps it: the last messages, each cut to the length a
    bundle may hold, so a long session (or a pasted report) still saves a bundle that reopens."""
    return tuple((role, _fit(text, _MAX_TEXT)) for role, text in chat[-_MAX_CHAT:])


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT


def write_bundle(saved: SavedSession, path: Path) -> Path:
    """Write `saved`; raises `BundleError` when it would not reopen (checked before writing
    against the same schema `read_bundle` uses)."""
    arrays: dict[str, np.ndarray] = {}
    images = []
    for i, item in enumerate(saved.images):
        ct = item.ct
        arrays[f"volume_{i}"] = ct.volume
        arrays[f"labels_{i}"] = item.labels
        for k, header in enumerate(_dicom_headers(ct)):
            arrays[f"dicom_{i}_{k}"] = np.frombuffer(header, dtype=np.uint8)
        images.append(
            {
                "name": ct.name,  # CTImage already holds it to the schema's 255
                "spacing": ct.spacing,
                "origin": ct.origin,
                "direction": ct.direction,
                "is_hu": ct.is_hu,
                "source_orientation": ct.source_orientation,
                "plane": item.plane,
                "index": item.index,
                "prompts": [
                    {"plane": plane, "index": index, **prompts.to_json()}
                    for (plane, index), prompts in item.prompts.items()
                    if not prompts.is_empty
                ],
                "dicom_headers": len(ct.dicom_files),
            }
        )
    meta = {
        "version": BUNDLE_VERSION,
        "position": saved.position,
        "window": list(saved.window) if saved.window else None,
        "active_label": saved.active_label,
        "hidden": sorted(saved.hidden),
        "labels": [list(e) for e in saved.label_set.entries],
        "metrics": saved.metrics,
        "stats_view": list(saved.stats_view) if saved.stats_view else None,
        "volume_report": saved.volume_report and _fit(saved.volume_report, _MAX_TEXT),
        "chat": [list(m) for m in fit_chat(saved.chat)],
        "images": images,
    }
    try:
        _Meta.model_validate(meta)
    except ValidationError as exc:
        raise BundleError(f"it would not reopen ({_first_error(exc)})") from exc
    arrays["meta"] = np.array(json.dumps(meta))
    # np.savez_compressed deflates at zlib's default level 6: 11 s for a 512²×133 float32 chest
    # CT on 2 shared cores, while the user waits on "Save". Level 1 takes about a third of
    # that for a file ~14 % larger; np.load reads both the same way.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=_LEVEL) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return path


def _dicom_headers(ct: CTImage) -> list[bytes]:
    """The source DICOM files without pixel data (what DICOM-SEG export reads)."""
    import pydicom  # on first use: most bundles hold no DICOM series

    headers = []
    for f in ct.dicom_files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        headers.append(buf.getvalue())
    return headers


# ----------------------------------------------------------------- reading
def read_bundle(path: Path, folder: Path, budget: Budget = DEFAULT_BUDGET) -> SavedSession:
    """A validated session from `path`; DICOM headers are written under `folder`.

    Raises `BundleError` (and nothing else) when any part is malformed or over the budget.
    """
    target = Path(tempfile.mkdtemp(prefix="bundle-", dir=folder))
    try:
        saved = _read(path, target, budget)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # a refused bundle leaves nothing behind
        raise
    if not any(target.iterdir()):
        target.rmdir()
    return saved


def _read(path: Path, folder: Path, budget: Budget) -> SavedSession:
    """`read_bundle` with every failure turned into a `BundleError`."""
    try:
        return _read_checked(path, folder, budget)
    except BundleError:
        raise
    except ValidationError as exc:
        raise BundleError(f"invalid value at {_first_error(exc)}") from exc
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise BundleError(f"not a SpinalSAM session bundle: {type(exc).__name__}") from exc


def _read_checked(path: Path, folder: Path, budget: Budget) -> SavedSession:
    if path.stat().st_size > budget.max_upload_bytes:
        raise BundleError(f"the file is larger than {budget.max_upload_bytes >> 20} MB")
    try:  # a volume and labels per image, the DICOM headers of all, and the JSON part
        check_zip_directory(path, budget.max_files * 2 + 1)
    except HeaderError as exc:
        raise BundleError(str(exc)) from exc
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: info for info in zf.infolist()}
        if len(members) > budget.max_files * 2 + 1:
            raise BundleError("too many entries")
        if sum(i.file_size for i in members.values()) > budget.max_decompressed_bytes:
            raise BundleError("it unpacks to more than the allowed size")
        meta = _Meta.model_validate_json(_member(zf, members, "meta", max_bytes=8 << 20).item())
        if meta.position >= len(meta.images):
            raise BundleError("position points past the last image")
        label_set = LabelSet(tuple(meta.labels))
        if len(set(label_set.ids)) != len(label_set.ids):
            raise BundleError("two labels share an id")
        if meta.active_label not in label_set.ids:
            raise BundleError(f"the active label {meta.active_label} has no name")
        if not set(meta.hidden) <= set(label_set.ids):
            raise BundleError("a hidden label has no name")
        total = 0
        images = []
        for i, m in enumerate(meta.images):
            shape = _header(zf, members, f"volume_{i}")[0]
            total += math.prod(shape)
            if total > budget.max_voxels:
                raise BundleError(f"the images hold more than {budget.max_voxels} voxels")
            images.append(_image(zf, members, i, m, set(label_set.ids), folder, budget))
    if meta.stats_view is not None:
        pos, plane, index = meta.stats_view
        if pos >= len(images) or index >= n_slices(images[pos].labels.shape, plane):
            raise BundleError("the measured slice does not exist")
    return SavedSession(
        images=tuple(images),
        position=meta.position,
        window=Window(*meta.window) if meta.window else None,
        label_set=label_set,
        active_label=meta.active_label,
        metrics=dict(meta.metrics),
        stats_view=meta.stats_view,
        volume_report=meta.volume_report and inert_markdown(meta.volume_report),
        chat=tuple((role, inert_markdown(text)) for role, text in meta.chat),
        hidden=frozenset(meta.hidden),
    )


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def _header(zf: zipfile.ZipFile, members: dict, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an array from its .npy header, before any data is decompressed."""
    info = members.get(f"{name}.npy")
    if info is None:
        raise BundleError(f"the array {name} is missing")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        read = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }.get(version)
        if read is None:
            raise BundleError(f"the array {name} has an unknown format version")
        shape, fortran, dtype = read(f)
    if fortran or dtype.hasobject:
        raise BundleError(f"the array {name} has an unsupported layout")
    return tuple(int(s) for s in shape), dtype


def _member(zf: zipfile.ZipFile, members: dict, name: str, max_bytes: int) -> np.ndarray:
    info = members.get(f"{name}.npy")
    if info is None:
        raise BundleError(f"the array {name} is missing")
    if info.file_size > max_bytes:
        raise BundleError(f"the array {name} is too large")
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _image(
    zf: zipfile.ZipFile,
    members: dict,
    i: int,
    m: _Image,
    label_ids: set[int],
    folder: Path,
    budget: Budget,
) -> SavedImage:
    shape, dtype = _header(zf, members, f"volume_{i}")
    if len(shape) != 3 or min(shape) < 1:
        raise BundleError(f"image {i} is not a (Z, Y, X) volume")
    if shape[0] > budget.max_slices or max(shape[1:]) > budget.max_side_px:
        raise BundleError(f"image {i} ({shape}) is larger than allowed")
    if dtype.kind not in "iuf":
        raise BundleError(f"image {i} does not hold numbers")
    label_shape, label_dtype = _header(zf, members, f"labels_{i}")
    if label_shape != shape or label_dtype.kind not in "iu":
        raise BundleError(f"the labels of image {i} do not match the image")
    if m.spacing is not None and not all(
        budget.min_spacing_mm <= s <= budget.max_spacing_mm for s in m.spacing
    ):
        raise BundleError(
            f"spacing {m.spacing} mm is outside {budget.min_spacing_mm}–{budget.max_spacing_mm} mm"
        )
    if m.index >= n_slices(shape, m.plane):
        raise BundleError(f"{m.plane} slice {m.index} does not exist in image {i}")
    limit = math.prod(shape) * 8 + 4096
    volume = _member(zf, members, f"volume_{i}", limit).astype(np.float32)
    if not np.isfinite(volume).all():
        raise BundleError(f"image {i} holds values that are not finite")
    raw = _member(zf, members, f"labels_{i}", limit)
    if raw.size and (int(raw.min()) < 0 or int(raw.max()) > _LABEL_MAX):
        raise BundleError(f"the labels of image {i} are outside 0..{_LABEL_MAX}")
    labels = np.ascontiguousarray(raw, dtype=np.uint16)
    unnamed = set(np.unique(labels).tolist()) - {0} - label_ids
    if unnamed:
        raise BundleError(f"label ids {sorted(unnamed)[:5]} of image {i} have no name")
    prompts = {}
    for p in m.prompts:
        if p.index >= n_slices(shape, p.plane):
            raise BundleError(f"prompts on {p.plane} slice {p.index} that does not exist")
        rows, cols = take_slice(labels, p.plane, p.index).shape
        coords = [(x, y) for x, y, _ in p.points] + [c for b in p.boxes for c in (b[:2], b[2:])]
        if any(x >= cols or y >= rows for x, y in coords):
            raise BundleError(f"a prompt on {p.plane} slice {p.index} lies outside the image")
        if any(b[2] <= b[0] or b[3] <= b[1] for b in p.boxes):
            raise BundleError("a box has its corners in the wrong order")
        prompts[(p.plane, p.index)] = PromptSet(
            points=tuple(Point(x, y, bool(lab)) for x, y, lab in p.points),
            boxes=tuple(tuple(b) for b in p.boxes),  # type: ignore[misc]
        )
    ct = CTImage(
        volume=volume,
        spacing=m.spacing,
        origin=m.origin,
        direction=m.direction,
        is_hu=m.is_hu,
        name=m.name,
        source_orientation=m.source_orientation,
        dicom_files=_restore_dicom(zf, members, i, m.dicom_headers, folder, budget),
    )
    return SavedImage(ct, labels, m.plane, m.index, prompts)


def _restore_dicom(
    zf: zipfile.ZipFile, members: dict, i: int, count: int, folder: Path, budget: Budget
) -> tuple[str, ...]:
    """Source DICOM headers back as files, each checked to parse as DICOM."""
    if not count:
        return ()
    import pydicom  # on first use: most bundles hold no DICOM series

    target = folder / f"dicom_{i}"
    target.mkdir()
    files = []
    items = 0
    for k in range(count):
        data = _member(zf, members, f"dicom_{i}_{k}", max_bytes=1 << 20)
        if data.dtype != np.uint8 or data.ndim != 1:
            raise BundleError("a DICOM header is malformed")
        items += sequence_items(data.tobytes())
        if items > budget.max_dicom_items:  # before pydicom builds them all
            raise BundleError("its DICOM headers hold more sequence items than a CT series needs")
        try:
            pydicom.dcmread(io.BytesIO(data.tobytes()), stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types on garbage
            raise BundleError("a DICOM header does not parse") from exc
        path = target / f"{k:05d}.dcm"
        path.write_bytes(data.tobytes())
        files.append(str(path))
    return tuple(files)
