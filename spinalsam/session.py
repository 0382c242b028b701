"""One user's working state, and the single place where operations are carried out.

Buttons, clicks, the offline parser and the LLM all produce `spinalsam.ops` operations; the
session applies them in order. Anything that fails raises `SessionError` before state changes,
so a bad file or a bad prompt never loses the user's image, prompts or masks.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from PIL import Image

from spinalsam import bundle, ops, propagation
from spinalsam.dicomseg import DicomSegError, save_dicom_seg
from spinalsam.export import (
    ExportError,
    save_itksnap_labels,
    save_mask_png,
    save_nifti,
    save_slicer_seg,
    write_zip,
)
from spinalsam.help_text import HELP_EXAMPLES
from spinalsam.io import CTImage, CTLoadError, load_label_map, load_upload
from spinalsam.labels import LabelError, LabelSet, label_color
from spinalsam.ledger import ImageLedger, LedgerFull
from spinalsam.limits import DEFAULT_BUDGET, Budget
from spinalsam.measurements import (
    LabelMeasurement,
    MeasurementError,
    format_measurements,
    hu_histogram_figure,
    measure_labels,
)
from spinalsam.mesh import MeshError, labels_to_mesh
from spinalsam.metrics import dice, hd95, iou, mask_stats, msd
from spinalsam.plaintext import plain_name, spreadsheet_row
from spinalsam.planes import (
    Plane,
    axis_spacing,
    display_scale,
    n_slices,
    put_slice,
    slice_image,
    slice_spacing,
    take_slice,
)
from spinalsam.prefetch import NeighbourPrefetcher
from spinalsam.prompts import Point, PromptSet, SegmentKind
from spinalsam.render import compose_view
from spinalsam.segmenters.base import (
    BackendInfo,
    Prompt,
    Segmenter,
    SegmenterError,
    SliceImage,
)
from spinalsam.windowing import PRESETS, Window

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What was opened, segmented, refused and closed — file names and sizes only, no pixel data or
# DICOM header values, since logs of a public service are read by people who are not the user.
log = logging.getLogger(__name__)

__all__ = ["Backend", "Pending", "Session", "SessionBusy", "SessionError", "StepResult"]

UNDO_DEPTH = 50
ACTIVE_LABEL_DEFAULT = 1
DEFAULT_LABELS = LabelSet(((ACTIVE_LABEL_DEFAULT, "vertebra"),))


class SessionError(ValueError):
    """An operation that cannot run in the current state; the message is shown as is."""


class SessionBusy(SessionError):
    """Another request of the same session is still running; nothing was changed."""


class _Turn:
    """The lock that lets one request at a time use a session.

    Gradio runs a session's events in parallel (a propagation and an upload, two quick
    clicks, a double-submitted chat): without it a propagation that ended after an upload wrote
    the old image's masks into the new one. A copied session (Gradio deep-copies new ones) gets
    a lock of its own.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> _Turn:
        return _Turn()


class Backend(Protocol):
    """What the app shares between sessions: the segmentation model and facts about it."""

    info: BackendInfo

    def new_segmenter(self) -> Segmenter: ...

    def describe_compute(self) -> str: ...

    def describe_parameters(self) -> str: ...


@dataclass
class Pending:
    """Clicks the UI is waiting for after 'add three points' or 'add a box' without coordinates."""

    kind: str  # "points" | "box"
    remaining: int = 1
    positive: bool = True
    corner: tuple[int, int] | None = None  # first corner of a two-click box


@dataclass
class StepResult:
    """What one applied operation tells the user, and any files it produced (first = main)."""

    message: str
    files: tuple[Path, ...] = ()
    ok: bool = True

    @property
    def file(self) -> Path | None:
        return self.files[0] if self.files else None


@dataclass
class _Undo:
    description: str
    image_pos: int
    view: tuple[Plane, int]  # where the change was made: undo shows it there
    prompts: dict[tuple[Plane, int], PromptSet]
    label_slices: dict[tuple[Plane, int], np.ndarray]
    # A relabel: the label set and active label before it, and the voxels it changed (flat
    # indices into the label map and their old values), so undo is exact without a volume copy.
    labels: tuple[LabelSet, int] | None = None
    voxels: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class _PutAside:
    """The work an upload or a reopened bundle replaced, kept so that Undo brings it back:
    a file dropped on the upload box mid-work must not throw the masks away for good."""

    saved: bundle.SavedSession
    undo: list[_Undo]


@dataclass
class _Image:
    ct: CTImage
    labels: np.ndarray  # (Z, Y, X) uint16, same grid as ct.volume
    prompts: dict[tuple[Plane, int], PromptSet] = field(default_factory=dict)
    plane: Plane = "axial"
    index: int = 0

    @classmethod
    def new(cls, ct: CTImage) -> _Image:
        labels = np.zeros(ct.volume.shape, dtype=np.uint16)
        return cls(ct=ct, labels=labels, index=ct.volume.shape[0] // 2)


class Session:
    """State of one browser session: images, the current view, prompts, masks, undo history.

    Every user action arrives as an operation (`spinalsam.ops`) through `apply`; the UI only
    turns widgets into operations and shows the result.
    """

    def __init__(
        self,
        backend: Backend,
        workdir: Path | None = None,
        budget: Budget = DEFAULT_BUDGET,
        ledger: ImageLedger | None = None,
    ) -> None:
        self.backend = backend
        self.budget = budget  # the one resource budget every input of this session is held to
        self.ledger = ledger  # the server's image memory, shared with every other session
        self.segmenter = backend.new_segmenter()
        self._workdir = workdir
        self._remove_workdir: weakref.finalize | None = None  # set when the session made it
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        self._neighbours = NeighbourPrefetcher(budget.prefetch_radius)
        self._turn = _Turn()
        self._reset([])

    def acquire_turn(self) -> None:
        """Wait for the session's previous request; `SessionBusy` if it is still running after
        the budget's wait (e.g. a propagation). Pair with `release_turn`."""
        if not self._turn.lock.acquire(timeout=self.budget.session_busy_wait_s):
            raise SessionBusy(
                "Your previous request (e.g. a propagation) is still running; wait for it to "
                "finish or press Stop, then try again. Nothing was changed."
            )

    def release_turn(self) -> None:
        self._turn.lock.release()

    def _reset(self, images: list[_Image], position: int = 0) -> None:
        """The one place state starts over: a new upload, a reopened bundle, a new session."""
        self.images = images
        self.position = min(max(position, 0), max(len(images) - 1, 0))
        self.window: Window | None = None  # None = the data's default (8-bit passes through)
        self.pending: Pending | None = None
        self.label_set = DEFAULT_LABELS
        self.active_label = ACTIVE_LABEL_DEFAULT
        # The selected mask: the active label's voxels are "fresh" from a segmentation and not
        # named yet, so naming renames them; once named, a new name is for the next masks.
        self._fresh = False
        self.hidden: frozenset[int] = frozenset()  # label ids the user hid (view, exports, …)
        self.last_stats: dict[str, float] = {}
        self.stats_view: tuple[int, Plane, int] | None = None  # where last_stats was measured
        self.volume_report: str | None = None  # the last 3-D measurement table
        self.chat: tuple[tuple[str, str], ...] = ()  # the conversation, kept in bundles
        self._undo: list[_Undo] = []
        self._redo: list[_Undo] = []  # what undo took back; a new change forgets it
        self._put_aside: _PutAside | None = None  # the work the last open replaced
        self._revision = 0  # bumped by every change of prompts or labels (view cache key)
        self._embedded_key: tuple | None = None
        self._slice_cache: tuple[tuple, SliceImage] | None = None
        self._view_cache: tuple[tuple, np.ndarray] | None = None
        self._work_cache: tuple[int, bool] | None = None  # (revision, has_work)
        # Created per run, not here: Gradio deep-copies new sessions and an Event cannot be copied.
        self._cancel: threading.Event | None = None

    @property
    def workdir(self) -> Path:
        """The session's folder for unpacked uploads and exports, made on first use.

        Gradio builds sessions that it never stores and so never frees: its page template, and
        the state of a request that fails before its first answer. Made lazily, such a session
        leaves no folder behind.
        """
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="spinalsam-"))
            # Gradio drops sessions past its capacity without the delete callback: the folder
            # goes with the session object then, or at `close`, whichever comes first.
            self._remove_workdir = weakref.finalize(
                self, shutil.rmtree, self._workdir, ignore_errors=True
            )
        return self._workdir

    def close(self) -> None:
        """Free the session's exports and generated files (Gradio calls this when it expires)."""
        self._neighbours.close()
        if self.ledger is not None:
            self.ledger.release(self)
        if self._remove_workdir is not None:
            self._remove_workdir()
        log.info("session closed with %d image(s)", len(self.images))

    # ----------------------------------------------------------------- loading and view
    def open_files(self, paths: Sequence[str | Path]) -> str:
        """Load uploaded files: a stack of 2-D pictures, or one slice/volume/series."""
        if not paths:
            raise SessionError("No file was uploaded.")
        start = time.perf_counter()
        try:
            cts = load_upload(paths, self.budget, self.workdir)
        except CTLoadError as exc:
            log.warning("refused upload %s: %s", _file_names(paths), exc)
            raise SessionError(f"Could not open the file: {exc}") from exc
        seconds = time.perf_counter() - start
        for ct in cts:
            spacing = "?" if ct.spacing is None else "x".join(f"{s:g}" for s in ct.spacing[::-1])
            shape = "x".join(map(str, ct.volume.shape))
            log.info(
                "opened %s: %s voxels (z·y·x), %s mm, %.2f s", ct.name, shape, spacing, seconds
            )
        images = [_Image.new(ct) for ct in cts]
        note = self._replace(images)
        return self._describe_open() + note

    def _replace(self, images: list[_Image], position: int = 0) -> str:
        """Make `images` the session's; masks they replace are put aside for Undo when the
        server has room for both. Returns what the user is told about the replaced work."""
        if not self.has_work:
            self._hold(images)
            self._reset(images, position)
            return ""
        aside = _PutAside(self.snapshot(), self._undo)
        work = f"{', '.join(sorted(self._names_of_all_masks()))} on {self.current.ct.name}"
        try:
            self._hold(images, also=aside.saved.images)
            note = f" Your previous work ({work}) is put aside: Undo brings it back."
        except SessionError:
            self._hold(images)  # raises when even the new images do not fit: nothing changed
            aside = None
            note = f" The server had no room to keep your previous work ({work}); it was closed."
        self._reset(images, position)
        self._put_aside = aside
        return note

    def _names_of_all_masks(self) -> set[str]:
        names = dict(self.label_set.entries)
        ids = set().union(*(np.unique(img.labels).tolist() for img in self.images)) - {0}
        return {names.get(i, f"label {i}") for i in ids}

    def _hold(self, images: list[_Image], also: Sequence[bundle.SavedImage] = ()) -> None:
        """Reserve `images` (and work kept `also`) on the server's ledger before they replace
        the current ones."""
        if self.ledger is None:
            return
        try:
            self.ledger.hold(
                self, sum(i.ct.volume.nbytes + i.labels.nbytes for i in (*images, *also))
            )
        except LedgerFull as exc:
            log.warning("refused: %s", exc)
            raise SessionError(
                f"The server cannot hold another image right now: {exc}. Try again in a few "
                "minutes or open a smaller file; your current work is unchanged."
            ) from exc

    def _open_bundle(self, path: Path) -> str:
        """Replace the state by a saved one, validated completely before anything changes."""
        try:
            saved = bundle.read_bundle(path, self.workdir, self.budget)
        except bundle.BundleError as exc:
            log.warning("refused bundle %s: %s", path.name, exc)
            raise SessionError(
                f"That session bundle was refused ({exc}); your current work is unchanged."
            ) from exc
        images = _images_of(saved)
        note = self._replace(images, saved.position)
        self._restore_view(saved)
        log.info("reopened bundle %s: %d image(s)", path.name, len(images))
        return f"Reopened a saved session with {len(images)} image(s): {images[0].ct.name}.{note}"

    def _restore_view(self, saved: bundle.SavedSession) -> None:
        """Everything but the images, as `saved` had it."""
        self.window = saved.window
        self.label_set = saved.label_set
        self.active_label = saved.active_label
        self.hidden = saved.hidden
        self.last_stats = dict(saved.metrics)
        self.stats_view = saved.stats_view
        self.volume_report = saved.volume_report
        self.chat = saved.chat

    def _bring_back(self, aside: _PutAside) -> StepResult:
        """Undo of an open: the replaced work returns with its own undo history."""
        name = self.current.ct.name
        images = _images_of(aside.saved)
        self._hold(images)
        self._reset(images, aside.saved.position)
        self._restore_view(aside.saved)
        self._undo = aside.undo
        return StepResult(f"Undid: opening {name} — back to {self.current.ct.name} with its masks.")

    def snapshot(self) -> bundle.SavedSession:
        """Everything a user sees, as the bundle stores it (pending clicks are not kept)."""
        return bundle.SavedSession(
            images=tuple(
                bundle.SavedImage(img.ct, img.labels, img.plane, img.index, dict(img.prompts))
                for img in self.images
            ),
            position=self.position,
            window=self.window,
            label_set=self.label_set,
            active_label=self.active_label,
            hidden=self.hidden,
            metrics=dict(self.last_stats),
            stats_view=self.stats_view,
            volume_report=self.volume_report,
            chat=self.chat,
        )

    @property
    def has_image(self) -> bool:
        return bool(self.images)

    @property
    def has_work(self) -> bool:
        """Whether any open image has a mask: what a reload or another upload would lose.

        Asked on every render; scanning a 512³ label volume takes ~10 ms, so the answer is kept
        until the revision (bumped by every change of labels, like the view cache's) moves."""
        if self._work_cache is None or self._work_cache[0] != self._revision:
            self._work_cache = (self._revision, any(img.labels.any() for img in self.images))
        return self._work_cache[1]

    @property
    def current(self) -> _Image:
        if not self.images:
            raise SessionError("Open an image first (upload a CT file or pick an example).")
        return self.images[self.position]

    @property
    def slice_count(self) -> int:
        img = self.current
        return n_slices(img.ct.volume.shape, img.plane)

    @property
    def slice_shape(self) -> tuple[int, int]:
        """(rows, columns) of the slice's own pixel grid: where every prompt is placed."""
        img = self.current
        return take_slice(img.ct.volume, img.plane, img.index).shape  # a view: no copy

    @property
    def display_scale(self) -> tuple[float, float]:
        """Display pixels per voxel (x, y) of the current view.

        Reformatted planes of volumes with thick slices are stretched to square millimetres, as
        radiology viewers show them, on a grid bounded by the budget. Only the picture is
        stretched: prompts (clicks, chat coordinates) always use the slice's own pixel grid
        (`slice_shape`).
        """
        img = self.current
        spacing = slice_spacing(img.ct.spacing, img.plane)
        return display_scale(self.slice_shape, spacing, self.budget.max_display_side_px)

    @property
    def display_shape(self) -> tuple[int, int]:
        (h, w), (fx, fy) = self.slice_shape, self.display_scale
        return round(h * fy), round(w * fx)

    def _grid_point(self, fx: float, fy: float) -> tuple[int, int]:
        """The slice pixel under a point given as fractions (0 ≤ f < 1) of the shown image."""
        h, w = self.slice_shape
        return min(int(fx * w), w - 1), min(int(fy * h), h - 1)

    def view(self) -> np.ndarray:
        """The RGB image the panel shows: windowed slice, labels and prompts, in display pixels.

        Cached per (slice, window, revision), so re-showing an unchanged view costs nothing.
        """
        corner = self.pending.corner if self.pending else None
        key = (self._view_key, self._revision, corner, self.label_set, self.hidden)
        if self._view_cache is None or self._view_cache[0] != key:
            self._view_cache = (key, self._compose_view(corner))
        return self._view_cache[1]

    def _compose_view(self, corner: tuple[int, int] | None) -> np.ndarray:
        image = self.slice_image()
        labels = self.label_slice()
        (fx, fy), (height, width) = self.display_scale, self.display_shape
        display = image.display
        if (fx, fy) != (1.0, 1.0):
            resized = Image.fromarray(display).resize((width, height), Image.Resampling.BILINEAR)
            display = np.asarray(resized)
            rows = np.minimum((np.arange(height) / fy).astype(int), labels.shape[0] - 1)
            cols = np.minimum((np.arange(width) / fx).astype(int), labels.shape[1] - 1)
            labels = labels[np.ix_(rows, cols)]
        if corner is not None:
            corner = PromptSet(points=(Point(*corner),)).scaled(fx, fy).points[0]
            corner = (corner.x, corner.y)
        return compose_view(
            display,
            labels,
            self.prompts.scaled(fx, fy),
            colors=self.label_set.colors(),
            corner=corner,
        )

    @property
    def prompts(self) -> PromptSet:
        img = self.current
        return img.prompts.get((img.plane, img.index), PromptSet())

    @property
    def _view_key(self) -> tuple:
        """Identifies what the current slice looks like: image, plane, slice and window."""
        img = self.current
        return (id(img.ct), img.plane, img.index, self.window)

    def slice_image(self) -> SliceImage:
        """The current slice as the backends see it (rendered once per view, then reused)."""
        key = self._view_key
        if self._slice_cache is None or self._slice_cache[0] != key:
            img = self.current
            image = slice_image(
                img.ct.volume, img.ct.is_hu, img.ct.spacing, img.plane, img.index, self.window
            )
            self._slice_cache = (key, image)
        return self._slice_cache[1]

    def label_slice(self) -> np.ndarray:
        """The current slice's labels as shown: hidden labels read as background."""
        img = self.current
        return _without(take_slice(img.labels, img.plane, img.index), self.hidden)

    def shown_labels(self) -> np.ndarray:
        """The current image's label map as shown (what exports and comparisons use)."""
        return _without(self.current.labels, self.hidden)

    def mask(self) -> np.ndarray:
        """Every visible label on the current slice: what the user sees is what is used."""
        return self.label_slice() > 0

    def label_names(self) -> dict[int, str]:
        """Label id → name for every label with voxels in the current image, hidden or not."""
        present = set(np.unique(self.current.labels).tolist()) - {0}
        names = dict(self.label_set.entries)
        return {i: names.get(i, f"label {i}") for i in sorted(present)}

    def visible_names(self) -> dict[int, str]:
        """Label id → name for every shown label with voxels in the current image."""
        return {i: n for i, n in self.label_names().items() if i not in self.hidden}

    # ----------------------------------------------------------------- operations
    def apply(self, operations: Sequence[ops.Operation | ops.UiOperation]) -> list[StepResult]:
        """Apply operations in order; a failing one is reported and the rest still run."""
        results = []
        for op in operations:
            try:
                if self.images:
                    h, w = self.slice_shape
                    ops.check_bounds([op], w, h)  # type: ignore[list-item]
                results.append(self._HANDLERS[type(op)](self, op))
            except (SessionError, ops.OperationError, SegmenterError) as exc:
                results.append(StepResult(str(exc), ok=False))
        return results

    def _op_open_image(self, _: ops.OpenImage) -> StepResult:
        return StepResult(
            "Upload a CT file (DICOM, NIfTI, PNG/JPG) or pick an example on the left."
        )

    def _op_open_files(self, op: ops.OpenFiles) -> StepResult:
        return StepResult(self.open_files(op.paths))

    def _op_open_bundle(self, op: ops.OpenBundle) -> StepResult:
        return StepResult(self._open_bundle(Path(op.path)))

    def _op_save_session(self, op: ops.SaveSession) -> StepResult:
        if not self.has_image:
            raise SessionError("Nothing to save yet: open an image first.")
        self.chat = bundle.fit_chat(op.chat)
        try:
            path = bundle.write_bundle(self.snapshot(), self.workdir / "spinalsam_session.npz")
        except bundle.BundleError as exc:
            raise SessionError(f"The session could not be saved: {exc}.") from exc
        note = ""
        if self.chat != op.chat:
            note = f" The bundle keeps the chat's last {len(self.chat)} messages, long ones cut."
        return StepResult(f"Session saved: download it below.{note}", files=(path,))

    def _op_next_image(self, _: ops.NextImage) -> StepResult:
        return self._step(+1)

    def _op_previous_image(self, _: ops.PreviousImage) -> StepResult:
        return self._step(-1)

    def _step(self, delta: int) -> StepResult:
        img = self.current
        if img.ct.is_volume or len(self.images) == 1:
            return self._goto(img.index + delta)
        new = self.position + delta
        if not 0 <= new < len(self.images):
            raise SessionError("There is no image in that direction.")
        self.position = new
        self.pending = None
        return StepResult(f"Image {new + 1} of {len(self.images)}: {self.current.ct.name}.")

    def _op_goto_slice(self, op: ops.GotoSlice) -> StepResult:
        return self._goto(op.index)

    def _goto(self, index: int) -> StepResult:
        img = self.current
        count = self.slice_count
        if not 0 <= index < count:
            raise SessionError(f"Slice {index} does not exist: this view has slices 0–{count - 1}.")
        img.index = index
        self.pending = None
        return StepResult(f"{img.plane.capitalize()} slice {index} of {count - 1}.")

    def _op_set_plane(self, op: ops.SetPlane) -> StepResult:
        img = self.current
        if op.plane != img.plane:
            if not img.ct.is_volume:
                raise SessionError("A 2-D image has only its own plane.")
            img.plane = op.plane
            img.index = n_slices(img.ct.volume.shape, op.plane) // 2
            self.pending = None
        return StepResult(
            f"{op.plane.capitalize()} plane, slice {img.index} of {self.slice_count - 1}."
        )

    def _op_set_custom_window(self, op: ops.SetCustomWindow) -> StepResult:
        return self._set_window(
            Window(op.level, op.width), f"Window level {op.level:g}, width {op.width:g}."
        )

    def _op_reset_window(self, _: ops.ResetWindow) -> StepResult:
        self.window = None
        return StepResult("Default window.")

    def _op_set_window(self, op: ops.SetWindow) -> StepResult:
        if op.preset is None:  # typed values ("W1500 L300"); the model guarantees both
            return self._op_set_custom_window(
                ops.SetCustomWindow(level=op.level, width=op.width)  # type: ignore[arg-type]
            )
        level, width = PRESETS[op.preset]
        name = op.preset.replace("_", " ").capitalize()
        return self._set_window(PRESETS[op.preset], f"{name} window (L {level:g} / W {width:g}).")

    def _set_window(self, window: Window, message: str) -> StepResult:
        if self.images and not self.current.ct.is_hu:
            self.window = None
            return StepResult(
                "This image is an 8-bit render without Hounsfield units, so CT windows do not "
                "apply; it is shown as stored."
            )
        self.window = window
        return StepResult(message)

    @property
    def window_name(self) -> str | None:
        """The preset the current window is, 'custom', or None for the data's default."""
        if self.window is None:
            return None
        return next((n for n, w in PRESETS.items() if w == self.window), "custom")

    def _op_add_points(self, op: ops.AddPoints) -> StepResult:
        self.current  # noqa: B018 — raises when no image is open
        kind = "positive" if op.label == "positive" else "negative"
        if op.points:
            new = self.prompts
            for x, y in op.points:
                new = new.add_point(Point(x, y, op.label == "positive"))
            self._edit_prompts("add points", new)
            return StepResult(f"Added {len(op.points)} {kind} point(s).")
        self.pending = Pending("points", remaining=op.count, positive=op.label == "positive")
        return StepResult(
            f"Click on the image to place {op.count} {kind} point{'s' if op.count > 1 else ''}."
        )

    def _op_add_box(self, op: ops.AddBox) -> StepResult:
        self.current  # noqa: B018
        if op.box:
            self._edit_prompts("add box", self.prompts.add_box(op.box))
            return StepResult(f"Added box {list(op.box)}.")
        self.pending = Pending("box")
        return StepResult("Click two opposite corners of the box on the image (or drag a box).")

    def _op_click_image(self, op: ops.ClickImage) -> StepResult:
        """A click: fills a pending request from the chat first, else follows the tool."""
        x, y = self._grid_point(op.x, op.y)
        if op.mode == "select" and self.pending is None:
            return self._select_at(x, y)
        pending = self.pending or Pending(
            "box" if op.mode == "box" else "points", 1, op.mode != "negative"
        )
        if pending.kind == "box":
            if pending.corner is None:
                pending.corner = (x, y)
                self.pending = pending
                self._revision += 1
                return StepResult(f"First corner at ({x}, {y}); click the opposite corner.")
            (cx, cy), self.pending = pending.corner, None
            return self._add_box((cx, cy, x, y))
        self._edit_prompts("add point", self.prompts.add_point(Point(x, y, pending.positive)))
        pending.remaining -= 1
        self.pending = pending if pending.remaining > 0 and self.pending else None
        kind = "positive" if pending.positive else "negative"
        more = f" {pending.remaining} more to place." if self.pending else ""
        return StepResult(f"{kind.capitalize()} point at ({x}, {y}).{more}")

    def _select_at(self, x: int, y: int) -> StepResult:
        """Make the mask under a click the selected one, as if it had just been segmented:
        naming then renames it, and a new prompt on this slice corrects it."""
        label_id = int(self.label_slice()[y, x])
        if label_id == 0:
            raise SessionError("There is no mask under that click: click inside a coloured mask.")
        self.active_label, self._fresh = label_id, True
        name = self.label_set.name_of(label_id)
        return StepResult(
            f'Selected **{name}** (label {label_id}). Name it ("this is L2") to rename it; a '
            "new box or click on this slice replaces its mask here."
        )

    def _op_show_labels(self, op: ops.ShowLabels) -> StepResult:
        # The names, not the ids present in the volume: listing those would scan the whole
        # volume on every view update (~1 s for 512² × 133 voxels).
        names = dict(self.label_set.entries)
        unknown = set(op.ids) - set(names)
        if unknown:
            raise SessionError(f"There is no label {min(unknown)}.")
        self.hidden = frozenset(names) - set(op.ids)
        hidden = [n for i, n in names.items() if i in self.hidden]
        if not hidden:
            return StepResult("Every label is shown.")
        return StepResult(
            f"Hidden: {', '.join(hidden)} — left out of the view, exports, measurements and "
            "comparisons until shown again."
        )

    def _op_draw_box(self, op: ops.DrawBox) -> StepResult:
        self.pending = None
        return self._add_box((*self._grid_point(op.x0, op.y0), *self._grid_point(op.x1, op.y1)))

    def _add_box(self, corners: tuple[int, int, int, int]) -> StepResult:
        cx, cy, x, y = corners
        box = (min(cx, x), min(cy, y), max(cx, x), max(cy, y))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            raise SessionError("That box is too small; drag from one corner to the opposite one.")
        self._edit_prompts("add box", self.prompts.add_box(box))
        return StepResult(f"Box {list(box)} added.")

    def _op_segment(self, op: ops.Segment) -> StepResult:
        return StepResult(self.segment(op.prompt))

    def segment(self, kind: SegmentKind = "auto") -> str:
        objects = self.prompts.objects(kind)
        if not objects:
            wanted = {"points": "a positive point", "box": "a box"}.get(kind, "a point or a box")
            raise SessionError(f"Nothing to segment: add {wanted} first.")
        image = self.slice_image()
        start = time.perf_counter()
        self._ensure_embedded(image)
        mask = np.zeros(image.shape, dtype=bool)
        for prompt in objects:
            mask |= self.segmenter.predict(prompt)
        elapsed = (time.perf_counter() - start) * 1000
        log.info(
            "segmented with %s from %s: %d px in %.0f ms",
            self.segmenter.info.name,
            _describe_kind(kind, len(objects)),
            int(mask.sum()),
            elapsed,
        )
        self._write_mask(mask, f"segment ({kind})")
        name = self.label_set.name_of(self.active_label)
        return (
            f"Segmented with {self.segmenter.info.name} from "
            f"{_describe_kind(kind, len(objects))} ({_what_was_used(objects)}) in "
            f"{elapsed:.0f} ms: "
            f"{self._area_text(mask, image)}, labelled {name}."
        )

    def prefetch(self) -> None:
        """Start embedding the current slice and its neighbours in the background, so clicks
        rarely wait for the encoder (`spinalsam.prefetch`).

        Only backends with an expensive per-slice step offer `prefetch` (SAM's encoder); for the
        others `set_image` is cheap and runs on the first prompt.
        """
        start = getattr(self.segmenter, "prefetch", None)
        if not self.images or start is None:
            return
        img, window, shown = self.current, self.window, self.slice_image()
        ct, plane = img.ct, img.plane

        def render(index: int) -> SliceImage:  # the slice on screen is rendered already
            if index == img.index:
                return shown
            return slice_image(ct.volume, ct.is_hu, ct.spacing, plane, index, window)

        self._neighbours.follow((id(ct), plane, window), img.index, self.slice_count, render, start)

    def _ensure_embedded(self, image: SliceImage) -> None:
        key = self._view_key
        if key != self._embedded_key:
            self.segmenter.set_image(image)
            self._embedded_key = key

    def _write_mask(self, mask: np.ndarray, description: str) -> None:
        self._commit(
            description, slices={self.current.index: self._relabelled(self.current.index, mask)}
        )
        self._fresh = True
        self.hidden -= {self.active_label}  # a new mask is never drawn into a hidden label

    def _relabelled(self, index: int, mask: np.ndarray) -> np.ndarray:
        """The label slice `index` with the active label replaced by `mask`."""
        img = self.current
        labels = take_slice(img.labels, img.plane, index).copy()
        labels[labels == self.active_label] = 0
        labels[mask] = self.active_label
        return labels

    def _edit_prompts(self, description: str, new: PromptSet) -> None:
        limit = self.budget.max_prompts_per_slice
        if len(new.points) + len(new.boxes) > limit:
            raise SessionError(
                f"This slice already holds {limit} points and boxes, the most one slice may "
                'have. Clear some ("clear points") or segment with them first.'
            )
        self._commit(description, prompts=new)

    def _commit(
        self,
        description: str,
        prompts: PromptSet | None = None,
        slices: dict[int, np.ndarray] | None = None,
    ) -> None:
        """Change this slice's prompts and/or label slices of the current plane as one undo step."""
        img = self.current
        slices = slices or {}
        before = {(img.plane, i): take_slice(img.labels, img.plane, i).copy() for i in slices}
        view = (img.plane, img.index)
        self._push_undo(_Undo(description, self.position, view, dict(img.prompts), before))
        self._redo.clear()
        if prompts is not None:
            img.prompts[(img.plane, img.index)] = prompts
        for i, arr in slices.items():
            put_slice(img.labels, img.plane, i, arr)

    def _push_undo(self, step: _Undo) -> None:
        self._revision += 1
        self._undo.append(step)
        if len(self._undo) > UNDO_DEPTH:
            del self._undo[:-UNDO_DEPTH]
            self._forget_put_aside()

    def _forget_put_aside(self) -> None:
        """The open that put work aside came before the oldest step Undo keeps: Undo must not
        reach past the changes that fell out (it would drop their masks for good), and the
        server stops holding that work."""
        if self._put_aside is not None:
            self._put_aside = None
            self._hold(self.images)  # smaller than what is held now: it cannot be refused

    def _op_undo(self, _: ops.Undo) -> StepResult:
        if not self._undo:
            if self._put_aside is not None:
                return self._bring_back(self._put_aside)
            raise SessionError("Nothing to undo.")
        self._redo.append(self._swap(self._undo.pop()))
        img = self.current
        return StepResult(f"Undid: {self._redo[-1].description} ({img.plane} slice {img.index}).")

    def _op_redo(self, _: ops.Redo) -> StepResult:
        if not self._redo:
            raise SessionError("Nothing to redo.")
        self._push_undo(self._swap(self._redo.pop()))
        img = self.current
        return StepResult(f"Redid: {self._undo[-1].description} ({img.plane} slice {img.index}).")

    def _swap(self, step: _Undo) -> _Undo:
        """Restore `step` and return its inverse, so undo and redo are the same move."""
        self._revision += 1
        self.position = step.image_pos
        img = self.current
        inverse = _Undo(
            step.description,
            step.image_pos,
            step.view,
            dict(img.prompts),
            {(p, i): take_slice(img.labels, p, i).copy() for p, i in step.label_slices},
            labels=None if step.labels is None else (self.label_set, self.active_label),
            voxels=None
            if step.voxels is None
            else (step.voxels[0], img.labels.reshape(-1)[step.voxels[0]].copy()),
        )
        img.prompts = step.prompts
        for (plane, i), arr in step.label_slices.items():
            put_slice(img.labels, plane, i, arr)
        if step.voxels is not None:
            where, values = step.voxels
            img.labels.reshape(-1)[where] = values
        if step.labels is not None:
            self.label_set, self.active_label = step.labels
            self._fresh = True  # the renamed mask is the selected one again
        img.plane, img.index = step.view
        self.pending = None
        return inverse

    def _op_clear(self, op: ops.Clear) -> StepResult:
        img = self.current
        self.pending = None
        prompts = self.prompts.cleared(op.target) if op.target != "masks" else None
        slices = None
        if op.target in ("masks", "all"):
            slices = {img.index: np.zeros(self.slice_shape, dtype=img.labels.dtype)}
        self._commit(f"clear {op.target}", prompts=prompts, slices=slices)
        what = {"all": "prompts and masks", "masks": "masks"}.get(op.target, op.target)
        return StepResult(f"Cleared the {what} on this slice.")

    def _op_check_gpu(self, _: ops.CheckGpu) -> StepResult:
        return StepResult(self.backend.describe_compute())

    def _op_check_parameters(self, _: ops.CheckParameters) -> StepResult:
        return StepResult(self.backend.describe_parameters())

    # ----------------------------------------------------------------- exports
    def _need_masks(self) -> dict[int, str]:
        names = self.visible_names()
        if not names and self.label_names():
            raise SessionError("Every mask is hidden: tick one under Shown labels to export it.")
        if not names:
            raise SessionError("There is no mask to export yet: segment something first.")
        return names

    @property
    def _stem(self) -> str:
        return _safe_stem(self.current.ct.name)

    def _op_export(self, op: ops.Export) -> StepResult:
        img = self.current
        names = self._need_masks()
        if op.format == "dicom_seg":
            return self._op_export_dicom_seg(ops.ExportDicomSeg())
        if op.format == "png":
            mask = self.mask()
            if not mask.any():
                raise SessionError(
                    f"No mask is visible on this slice ({img.plane} {img.index}); the masks are "
                    "on other slices. Go to one of them, or export NIfTI for the whole volume."
                )
            path = save_mask_png(
                mask, self.workdir / f"{self._stem}_{img.plane}{img.index}_mask.png"
            )
            return StepResult("Mask of this slice (all visible labels) saved as PNG.", (path,))
        files = self._nifti_files(names)
        return StepResult(
            f"Label map saved as NIfTI with the source geometry ({_names_text(names)}); the "
            "label names come as an ITK-SNAP label file and a 3D Slicer .seg.nrrd.",
            files,
        )

    def _nifti_files(self, names: dict[int, str]) -> tuple[Path, ...]:
        img, shown = self.current, self.shown_labels()
        base = self.workdir / f"{self._stem}_labels"
        try:
            return (
                save_nifti(shown, img.ct, base.with_name(base.name + ".nii.gz")),
                save_itksnap_labels(names, base.with_name(base.name + "_itksnap.txt")),
                save_slicer_seg(shown, img.ct, names, base.with_name(base.name + ".seg.nrrd")),
            )
        except ExportError as exc:
            raise SessionError(str(exc)) from exc

    def _op_export_dicom_seg(self, _: ops.ExportDicomSeg) -> StepResult:
        return StepResult("DICOM-SEG written: download it below.", (self._dicom_seg(),))

    def _dicom_seg(self) -> Path:
        img = self.current
        try:
            return save_dicom_seg(
                self.shown_labels(),
                img.ct,
                self._need_masks(),
                self.workdir / f"{self._stem}_seg.dcm",
            )
        except DicomSegError as exc:
            raise SessionError(str(exc)) from exc

    def _op_export_all(self, _: ops.ExportAll) -> StepResult:
        """One zip: NIfTI + label names, DICOM-SEG for DICOM sources, measurements as CSV."""
        img = self.current
        names = self._need_masks()
        members = list(self._nifti_files(names))
        note = ""
        if img.ct.dicom_files:
            members.append(self._dicom_seg())
        else:
            note = " (no DICOM-SEG: the source is not DICOM)"
        csv_path = self.workdir / f"{self._stem}_measurements.csv"
        csv_path.write_text(_measurements_csv(self._measure(names)), encoding="utf-8")
        members.append(csv_path)
        path = write_zip(members, self.workdir / f"{self._stem}_export.zip")
        return StepResult(f"Exported {len(members)} files as one zip{note}.", (path,))

    # ----------------------------------------------------------------- measurements
    def _op_measure(self, _: ops.Measure) -> StepResult:
        image = self.slice_image()
        mask = self.mask()
        img = self.current
        if not mask.any():
            elsewhere = " (masks exist on other slices)" if img.labels.any() else ""
            raise SessionError(f"There is no mask on this slice to measure{elsewhere}.")
        stats = mask_stats(
            mask, image.pixels, image.spacing[::-1] if image.spacing else None, image.is_hu
        )
        self._keep_stats(stats)
        lines = [f"- **{k.replace('_', ' ')}**: {_plain(v)}" for k, v in stats.items()]
        return StepResult("Measurements of the visible masks on this slice:\n" + "\n".join(lines))

    def _measure(self, names: dict[int, str]) -> list[LabelMeasurement]:
        img = self.current
        try:
            return measure_labels(
                img.ct.volume, img.labels, names, spacing_xyz=img.ct.spacing, is_hu=img.ct.is_hu
            )
        except MeasurementError as exc:
            raise SessionError(str(exc)) from exc

    def _op_measure_volume(self, _: ops.MeasureVolume) -> StepResult:
        names = self.visible_names()
        if not names:
            raise SessionError("There are no masks yet: segment (and propagate) first.")
        self.volume_report = format_measurements(self._measure(names))
        return StepResult(self.volume_report)

    def volume_figures(self) -> tuple[Figure | None, Path | None]:
        """The HU histogram and 3-D surface of the visible labels (None when there are none)."""
        img = self.current
        names = self.visible_names()
        if not names:
            return None, None
        figure = hu_histogram_figure(
            img.ct.volume, img.labels, list(names), names, self.label_set.colors()
        )
        mesh = None
        if img.ct.is_volume:
            colors = {i: label_color(i) for i in names}
            try:
                mesh = labels_to_mesh(
                    self.shown_labels(),
                    axis_spacing(img.ct.spacing),
                    colors,
                    self.workdir / "labels.glb",
                )
            except MeshError:
                mesh = None  # e.g. masks on one slice only: no surface to show
        return figure, mesh

    def _op_propagate(self, _: ops.Propagate) -> StepResult:
        return StepResult(self.propagate())

    def cancel_propagation(self) -> str:
        """Ask a running propagation to stop; what it found so far is kept (and undoable)."""
        if self._cancel is None or self._cancel.is_set():
            return "No propagation is running: nothing to stop."
        self._cancel.set()
        return "Stopping the propagation…"

    def propagate(self, on_progress: Callable[[int, int], None] | None = None) -> str:
        """Segment neighbouring slices from the current mask; the result is one undo step."""
        try:
            return self._propagate(on_progress)
        finally:
            self._cancel = None  # Stop now says that nothing is running

    def _propagate(self, on_progress: Callable[[int, int], None] | None) -> str:
        img = self.current
        self._cancel = threading.Event()
        if not img.ct.is_volume:
            raise SessionError(
                "Propagation needs a volume (DICOM series or NIfTI), not a 2-D image."
            )
        start_mask = self.label_slice() == self.active_label
        if not start_mask.any():
            name = self.label_set.name_of(self.active_label)
            raise SessionError(
                f"Segment {name} on this slice first (or choose the label of a mask shown "
                "here); propagation starts from it."
            )
        result = propagation.propagate(
            img.ct.volume,
            img.ct.is_hu,
            img.ct.spacing,
            img.plane,
            img.index,
            start_mask,
            self.segmenter,
            window=self.window,
            on_progress=on_progress,
            cancel=self._cancel,
        )
        self._embedded_key = None  # propagation moved the backend across slices
        slices = {i: self._relabelled(i, m) for i, m in result.masks.items() if i != img.index}
        if not slices:
            return "Propagation found the object on no neighbouring slice."
        self._commit("propagate", slices=slices)
        self._fresh = True
        lo, hi = min(slices), max(slices)
        check = result.cross_check
        note = f" Sagittal check (slice {check.sagittal_index}): {check.note}." if check else ""
        done = f"Propagated to {len(slices)} slices ({lo}–{hi}); undo removes them all.{note}"
        return f"Stopped as asked. {done}" if self._cancel.is_set() else done

    def _op_help(self, _: ops.Help) -> StepResult:
        return StepResult(COMPACT_HELP)

    def _op_set_label(self, op: ops.SetLabel) -> StepResult:
        return StepResult(self.set_active_label(op.name))

    # ----------------------------------------------------------------- labels and 3-D
    def set_active_label(self, name: str) -> str:
        """Name the selected mask, or the masks that follow when there is none.

        "this is L1" right after segmenting must rename what was just segmented: while the
        active label's voxels are fresh from a segmentation (not named since), they move to the
        new name in this image, as one undo step, and an emptied old name leaves the list. Once
        named, a mask keeps its name and a new name applies to the next masks (L1, then L2).
        """
        try:
            new_set, new_id = self.label_set.add(name)
        except LabelError as exc:
            raise SessionError(str(exc)) from exc
        if len(new_set.entries) > self.budget.max_labels:
            raise SessionError(
                f"A session names at most {self.budget.max_labels} labels; reuse a name "
                "(the label menu lists them)."
            )
        old = self.active_label
        label = new_set.name_of(new_id)
        moved = 0
        if self.images and new_id != old and self._fresh:
            img = self.current
            flat = img.labels.reshape(-1)  # labels are always C-contiguous (ours or validated)
            where = np.flatnonzero(flat == old)
            if where.size:
                step = _Undo(
                    f"name {label}",
                    self.position,
                    (img.plane, img.index),
                    dict(img.prompts),
                    {},
                    labels=(self.label_set, old),
                    voxels=(where, flat[where]),
                )
                self._push_undo(step)
                self._redo.clear()
                flat[where] = new_id
                moved = int(where.size)
                if not any((i.labels == old).any() for i in self.images):
                    new_set = new_set.remove(old)
        self.label_set, self.active_label = new_set, new_id
        self._fresh = False
        if moved:
            return f"The selected mask is now **{label}** (label {new_id}, {moved} voxels)."
        return f"New masks are now labelled **{label}** (label {new_id})."

    # ----------------------------------------------------------------- review
    def _op_compare(self, op: ops.Compare) -> StepResult:
        return StepResult(self.compare(op.paths))

    def compare(self, paths: Sequence[str | Path]) -> str:
        """Metrics of the visible masks against an uploaded ground-truth mask or label map."""
        img = self.current
        if len(paths) != 1:
            raise SessionError("Upload one mask or label-map file (PNG, NIfTI, MHA or NRRD).")
        if not img.labels.any():
            raise SessionError("There is no mask to compare yet: segment something first.")
        try:
            gt_labels = load_label_map(paths[0], img.ct.volume.shape, self.budget)
        except CTLoadError as exc:
            log.warning("refused ground truth %s: %s", _file_names(paths), exc)
            raise SessionError(f"Could not use the ground truth: {exc}") from exc
        gt = gt_labels > 0
        pred = self.shown_labels() > 0
        units = "mm" if img.ct.spacing else "px"
        rows = []
        gt2, pred2 = take_slice(gt, img.plane, img.index), take_slice(pred, img.plane, img.index)
        sp2 = slice_spacing(img.ct.spacing, img.plane)
        scopes = [("this slice", pred2, gt2, sp2[::-1] if sp2 else None)]
        if img.ct.is_volume:
            scopes.append(("whole volume", pred, gt, axis_spacing(img.ct.spacing)))
            scopes += self._per_label_scopes(gt_labels)
        stats = {}
        for name, p, g, sp in scopes:
            stats.update({f"dice_{name}": dice(p, g), f"iou_{name}": iou(p, g)})
            rows.append(
                f"| {name} | {dice(p, g):.4f} | {iou(p, g):.4f} | "
                f"{hd95(p, g, sp):.2f} | {msd(p, g, sp):.2f} |"
            )
        self._keep_stats(stats)
        header = f"| scope | Dice | IoU | HD95 ({units}) | MSD ({units}) |\n|---|---|---|---|---|"
        table = "\n".join([header, *rows])
        count = int(np.count_nonzero(np.unique(gt_labels)))
        if count < 2:
            return table
        # A whole-body label map (organs and vertebrae) against one vertebra gives a Dice near
        # 0 in the union rows although the vertebra is right: say what those rows measure.
        return (
            f"{table}\n\n_The ground truth holds {count} labels: the rows without ↔ treat them "
            "all as one object; a row “name ↔ GT n” compares your label with the ground-truth "
            "label it overlaps most._"
        )

    def _keep_stats(self, stats: dict[str, float]) -> None:
        """Metrics belong to one slice: new ones there add up, elsewhere they start over."""
        img = self.current
        where = (self.position, img.plane, img.index)
        self.last_stats = {**(self.last_stats if self.stats_view == where else {}), **stats}
        self.stats_view = where

    def _per_label_scopes(self, gt_labels: np.ndarray) -> list[tuple]:
        """Each of our labels against the ground-truth label it overlaps most.

        Label ids of an uploaded map are the other tool's (TotalSegmentator's 31 is our "L1"),
        so labels are paired by overlap rather than by number.
        """
        img = self.current
        spacing = axis_spacing(img.ct.spacing)
        scopes = []
        for label_id, name in self.visible_names().items():
            ours = img.labels == label_id
            under = gt_labels[ours]
            under = under[under > 0]
            if under.size == 0:
                continue
            values, counts = np.unique(under, return_counts=True)  # ids may be up to 2**31
            match = int(values[counts.argmax()])
            scopes.append((f"{name} ↔ GT {match} (3-D)", ours, gt_labels == match, spacing))
        return scopes

    def flag_record(self, rating: str, comment: str) -> tuple[dict, Path | None]:
        """What a collaborator's flag stores: the image, prompts, visible mask and its metrics.

        Metrics are included only when they were measured on this very slice; the mask file is
        the PNG of every visible label here (None when the slice shows no mask).
        """
        img = self.current
        mask = self.mask()
        here = self.stats_view == (self.position, img.plane, img.index)
        path = None
        if mask.any():
            path = save_mask_png(
                mask, self.workdir / f"{self._stem}_{img.plane}{img.index}_flag.png"
            )
        record = {
            "image": img.ct.name,
            "plane": img.plane,
            "slice": img.index,
            "prompts": self.prompts.to_json(),
            "labels": self._names_on(self.label_slice()),
            "mask_pixels": int(mask.sum()),
            "metrics": self.last_stats if here else {},
            "backend": self.segmenter.info.name,
            "rating": rating,
            "comment": comment,
        }
        return record, path

    # ----------------------------------------------------------------- helpers
    def _names_on(self, labels: np.ndarray) -> dict[str, str]:
        names = dict(self.label_set.entries)
        return {str(i): names.get(i, f"label {i}") for i in np.unique(labels).tolist() if i}

    def _describe_open(self) -> str:
        img = self.current
        ct = img.ct
        z, y, x = ct.volume.shape
        kind = f"volume {x}×{y}×{z}" if ct.is_volume else f"image {x}×{y}"
        if len(self.images) > 1:
            kind = f"{len(self.images)} images, first {x}×{y}"
        spacing = (
            f", spacing {' × '.join(f'{s:.3g}' for s in ct.spacing)} mm"
            if ct.spacing
            else ", no spacing"
        )
        values = "Hounsfield units" if ct.is_hu else "8-bit render (windows do not apply)"
        return f"Opened **{ct.name}**: {kind}{spacing}, {values}."

    def _area_text(self, mask: np.ndarray, image: SliceImage) -> str:
        n = int(mask.sum())
        if image.spacing:
            return f"{n} px ({n * image.spacing[0] * image.spacing[1]:.1f} mm²)"
        return f"{n} px"

    # Explicit operation → handler table: no handler is looked up from a string.
    _HANDLERS: ClassVar[dict[type, Callable[[Session, Any], StepResult]]] = {
        ops.OpenImage: _op_open_image,
        ops.NextImage: _op_next_image,
        ops.PreviousImage: _op_previous_image,
        ops.AddPoints: _op_add_points,
        ops.AddBox: _op_add_box,
        ops.Segment: _op_segment,
        ops.Clear: _op_clear,
        ops.CheckGpu: _op_check_gpu,
        ops.CheckParameters: _op_check_parameters,
        ops.Undo: _op_undo,
        ops.Redo: _op_redo,
        ops.GotoSlice: _op_goto_slice,
        ops.SetWindow: _op_set_window,
        ops.Export: _op_export,
        ops.Measure: _op_measure,
        ops.Propagate: _op_propagate,
        ops.Help: _op_help,
        ops.SetLabel: _op_set_label,
        ops.ClickImage: _op_click_image,
        ops.DrawBox: _op_draw_box,
        ops.SetPlane: _op_set_plane,
        ops.SetCustomWindow: _op_set_custom_window,
        ops.ResetWindow: _op_reset_window,
        ops.ShowLabels: _op_show_labels,
        ops.OpenFiles: _op_open_files,
        ops.OpenBundle: _op_open_bundle,
        ops.SaveSession: _op_save_session,
        ops.Compare: _op_compare,
        ops.MeasureVolume: _op_measure_volume,
        ops.ExportDicomSeg: _op_export_dicom_seg,
        ops.ExportAll: _op_export_all,
    }


def _without(labels: np.ndarray, hidden: frozenset[int]) -> np.ndarray:
    """`labels` with the hidden ids as background (the array itself when none is hidden)."""
    if not hidden:
        return labels
    return np.where(np.isin(labels, list(hidden)), 0, labels).astype(labels.dtype, copy=False)


def _compact_help() -> str:
    """A few lines for the chat: one example per operation, English · 中文."""
    seen: dict[str, str] = {}
    for op, en, zh, _ in HELP_EXAMPLES:
        seen.setdefault(op, f"*{en}* · {zh}")
    return (
        "**Try / 试试:** "
        + " — ".join(seen.values())
        + ".\n\nOn the image: **Point +/−** click, **Box** drag, **Pan** drag, **Select** "
        "clicks a mask to rename or correct it; Slice −/+, the wheel or ↑/↓ step slices, Enter "
        "segments, U undoes. Chain steps with *then / 然后*."
    )


COMPACT_HELP = _compact_help()


def _names_text(names: dict[int, str]) -> str:
    return ", ".join(f"{i} = {n}" for i, n in names.items())


def _measurements_csv(found: Sequence[LabelMeasurement]) -> str:
    """One row per label, plain numbers (no units in cells) for spreadsheets."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "label_id",
            "name",
            "voxels",
            "volume_ml",
            "mean",
            "std",
            "core_voxels",
            "core_mean",
            "core_std",
            "values",
        ]
    )
    for m in found:
        writer.writerow(
            spreadsheet_row(
                [
                    m.label_id,
                    m.name,
                    m.voxels,
                    _num(m.volume_ml),
                    _num(m.mean),
                    _num(m.std),
                    m.core_voxels,
                    _num(m.core_mean),
                    _num(m.core_std),
                    "HU" if m.is_hu else "intensity",
                ]
            )
        )
    return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _plain(value: float) -> str:
    """Four significant digits without an exponent: counts of 10,000+ pixels and areas of
    10,000+ mm² are read by people, and "2.234e+04" hides the count the status shows."""
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _images_of(saved: bundle.SavedSession) -> list[_Image]:
    images = []
    for item in saved.images:
        img = _Image(ct=item.ct, labels=item.labels, plane=item.plane, index=item.index)
        img.prompts = dict(item.prompts)
        images.append(img)
    return images


def _what_was_used(objects: Sequence[Prompt]) -> str:
    """ "1 box, 1 positive and 2 negative points": a count of objects alone ("1 prompt") does
    not tell a user whether the negative click they just made was used."""
    boxes = sum(o.box is not None for o in objects)
    positive = sum(int((o.labels == 1).sum()) for o in objects)
    negative = sum(int((o.labels == 0).sum()) for o in objects)
    parts = [f"{boxes} box{'es' if boxes > 1 else ''}"] if boxes else []
    if positive or negative:
        counts = [
            f"{n} {sign}" for n, sign in ((positive, "positive"), (negative, "negative")) if n
        ]
        parts.append(f"{' and '.join(counts)} point{'s' if max(positive, negative) > 1 else ''}")
    return ", ".join(parts)


def _describe_kind(kind: SegmentKind, n: int) -> str:
    noun = {"points": "point prompt", "box": "box prompt", "auto": "prompt"}[kind]
    return f"{n} {noun}{'s' if n > 1 else ''}"


def _file_names(paths: Sequence[str | Path]) -> str:
    """The uploaded files' names for a log line (not their temporary folders), at most five."""
    names = [plain_name(Path(p).name) for p in paths]  # no control characters in the log
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _safe_stem(name: str) -> str:
    """File names come from uploads: keep only harmless characters."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).name.split(".")[0])
    return stem[:60] or "image"
