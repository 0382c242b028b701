"""One user's working state, and the single place where operations are carried out.

Buttons, clicks, the offline parser and the LLM all produce `spinalsam.ops` operations; the
session applies them in order. Anything that fails raises `SessionError` before state changes,
so a bad file or a bad prompt never loses the user's image, prompts or masks.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from spinalsam import ops, propagation
from spinalsam.commands import HELP_TEXT
from spinalsam.dicomseg import DicomSegError, save_dicom_seg
from spinalsam.export import save_mask_png, save_nifti
from spinalsam.io import RASTER_EXTENSIONS, CTImage, CTLoadError, load_ct, load_label_map
from spinalsam.labels import LabelError, LabelSet
from spinalsam.limits import DEFAULT_BUDGET
from spinalsam.measurements import (
    MeasurementError,
    format_measurements,
    hu_histogram_figure,
    measure_labels,
)
from spinalsam.mesh import MeshError, labels_to_mesh
from spinalsam.metrics import dice, hd95, iou, mask_stats, msd
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
from spinalsam.prompts import Point, PromptSet, SegmentKind
from spinalsam.render import compose_view
from spinalsam.segmenters.base import BackendInfo, Segmenter, SegmenterError, SliceImage
from spinalsam.windowing import PRESETS, Window

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Backend", "Pending", "Session", "SessionError", "StepResult"]

UNDO_DEPTH = 50
ACTIVE_LABEL_DEFAULT = 1


class SessionError(ValueError):
    """An operation that cannot run in the current state; the message is shown as is."""


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
    """What one applied operation tells the user, and any file it produced."""

    message: str
    file: Path | None = None
    ok: bool = True


@dataclass
class _Undo:
    description: str
    image_pos: int
    view: tuple[Plane, int]  # where the change was made: undo shows it there
    prompts: dict[tuple[Plane, int], PromptSet]
    label_slices: dict[tuple[Plane, int], np.ndarray]


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
    """State of one browser session: images, the current view, prompts, masks, undo history."""

    def __init__(self, backend: Backend, workdir: Path | None = None) -> None:
        self.backend = backend
        self.segmenter = backend.new_segmenter()
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="spinalsam-"))
        self.images: list[_Image] = []
        self.position = 0
        self.window: Window | None = None  # None = the default for the data (8-bit passes through)
        self.pending: Pending | None = None
        self.label_set = LabelSet(((ACTIVE_LABEL_DEFAULT, "vertebra"),))
        self.active_label = ACTIVE_LABEL_DEFAULT
        self.last_stats: dict[str, float] = {}
        self._undo: list[_Undo] = []
        self._embedded_key: tuple | None = None
        self._slice_cache: tuple[tuple, SliceImage] | None = None
        # Created per run, not here: Gradio deep-copies new sessions and an Event cannot be copied.
        self._cancel: threading.Event | None = None

    def close(self) -> None:
        """Free the session's exports and generated files (Gradio calls this when it expires)."""
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ----------------------------------------------------------------- loading and view
    def open_files(self, paths: Sequence[str | Path]) -> str:
        """Load uploaded files: a stack of 2-D pictures, or one slice/volume/series."""
        if not paths:
            raise SessionError("No file was uploaded.")
        try:
            if len(paths) > 1 and all(_is_picture(p) for p in paths):
                cts = [load_ct([p]) for p in sorted(paths, key=lambda p: Path(p).name)]
            else:
                cts = [load_ct(paths, workdir=self.workdir)]
        except CTLoadError as exc:
            raise SessionError(f"Could not open the file: {exc}") from exc
        self.images = [_Image.new(ct) for ct in cts]
        self.position = 0
        self.window = None
        self.pending = None
        self._undo.clear()
        self._embedded_key = self._slice_cache = None  # ids of freed images can be reused
        return self._describe_open()

    def restore(self, images: list[tuple[CTImage, np.ndarray, dict]], position: int) -> None:
        """Replace the state by a saved one (see `spinalsam.bundle`)."""
        self.images = []
        for ct, labels, view in images:
            img = _Image.new(ct)
            img.labels = labels.astype(np.uint16)
            img.plane = view.get("plane", "axial")
            img.index = int(view.get("index", img.index))
            img.prompts = view.get("prompts", {})
            self.images.append(img)
        self.position = min(max(position, 0), len(self.images) - 1)
        self._undo.clear()
        self._embedded_key = self._slice_cache = None  # ids of freed images can be reused

    @property
    def has_image(self) -> bool:
        return bool(self.images)

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
        img = self.current
        return take_slice(img.ct.volume, img.plane, img.index).shape  # a view: no copy

    @property
    def display_scale(self) -> tuple[float, float]:
        """Display pixels per voxel (x, y) of the current view.

        Reformatted planes of volumes with thick slices are stretched to square pixels, as
        radiology viewers show them, on a grid bounded by the budget; coordinates from clicks and
        chat are display pixels.
        """
        img = self.current
        spacing = slice_spacing(img.ct.spacing, img.plane)
        return display_scale(self.slice_shape, spacing, DEFAULT_BUDGET.max_display_side_px)

    @property
    def display_shape(self) -> tuple[int, int]:
        (h, w), (fx, fy) = self.slice_shape, self.display_scale
        return round(h * fy), round(w * fx)

    def _to_voxel(self, x: int, y: int) -> tuple[int, int]:
        (h, w), (fx, fy) = self.slice_shape, self.display_scale
        return min(int(x / fx), w - 1), min(int(y / fy), h - 1)

    def _box_to_voxel(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x0, y0 = self._to_voxel(box[0], box[1])
        x1, y1 = self._to_voxel(box[2], box[3])
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)

    def view(self) -> np.ndarray:
        """The RGB image the panel shows: windowed slice, labels and prompts, in display pixels."""
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
        return compose_view(
            display,
            labels,
            self.prompts.scaled(fx, fy),
            colors=self.label_set.colors(),
            corner=self.pending.corner if self.pending else None,
        )

    @property
    def prompts(self) -> PromptSet:
        img = self.current
        return img.prompts.get((img.plane, img.index), PromptSet())

    def set_plane(self, plane: Plane) -> str:
        img = self.current
        if plane != img.plane:
            img.plane = plane
            img.index = n_slices(img.ct.volume.shape, plane) // 2
            self.pending = None
        return f"{plane.capitalize()} plane, slice {img.index} of {self.slice_count - 1}."

    def set_custom_window(self, level: float, width: float) -> str:
        if width <= 0:
            raise SessionError("Window width must be positive.")
        self.window = Window(level, width)
        return f"Window level {level:g}, width {width:g}."

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
        img = self.current
        return take_slice(img.labels, img.plane, img.index)

    def mask(self) -> np.ndarray:
        """The active label on the current slice."""
        return self.label_slice() == self.active_label

    # ----------------------------------------------------------------- operations
    def apply(self, operations: Sequence[ops.Operation]) -> list[StepResult]:
        """Apply operations in order; a failing one is reported and the rest still run."""
        results = []
        for op in operations:
            try:
                if self.images:
                    h, w = self.display_shape
                    ops.check_bounds([op], w, h)
                results.append(self._dispatch(op))
            except (SessionError, ops.OperationError, SegmenterError) as exc:
                results.append(StepResult(str(exc), ok=False))
        return results

    def _dispatch(self, op: ops.Operation) -> StepResult:
        handler: Callable[..., StepResult] = getattr(self, f"_op_{op.op}")
        return handler(op)

    def _op_open_image(self, _: ops.OpenImage) -> StepResult:
        return StepResult(
            "Upload a CT file (DICOM, NIfTI, PNG/JPG) or pick an example on the left."
        )

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

    def _op_add_points(self, op: ops.AddPoints) -> StepResult:
        self.current  # noqa: B018 — raises when no image is open
        kind = "positive" if op.label == "positive" else "negative"
        if op.points:
            for x, y in op.points:
                self._add_point(Point(*self._to_voxel(x, y), op.label == "positive"))
            return StepResult(f"Added {len(op.points)} {kind} point(s).")
        self.pending = Pending("points", remaining=op.count, positive=op.label == "positive")
        return StepResult(
            f"Click on the image to place {op.count} {kind} point{'s' if op.count > 1 else ''}."
        )

    def _op_add_box(self, op: ops.AddBox) -> StepResult:
        self.current  # noqa: B018
        if op.box:
            self._edit_prompts("add box", self.prompts.add_box(self._box_to_voxel(op.box)))
            return StepResult(f"Added box {list(op.box)}.")
        self.pending = Pending("box")
        return StepResult("Click two opposite corners of the box on the image.")

    def click(self, x: int, y: int, mode: str = "positive") -> str:
        """A click on the image: fills a pending request first, else follows the click mode."""
        self.current  # noqa: B018
        h, w = self.display_shape
        if not (0 <= x < w and 0 <= y < h):
            raise SessionError(f"Click ({x}, {y}) is outside the image.")
        pending = self.pending or Pending(
            "box" if mode == "box" else "points", 1, mode != "negative"
        )
        if pending.kind == "box":
            if pending.corner is None:
                pending.corner = (x, y)
                self.pending = pending
                return f"First corner at ({x}, {y}); click the opposite corner."
            (cx, cy), self.pending = pending.corner, None
            box = (min(cx, x), min(cy, y), max(cx, x), max(cy, y))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                raise SessionError("That box is too small; click two opposite corners.")
            self._edit_prompts("add box", self.prompts.add_box(self._box_to_voxel(box)))
            return f"Box {list(box)} added."
        self._add_point(Point(*self._to_voxel(x, y), pending.positive))
        pending.remaining -= 1
        self.pending = pending if pending.remaining > 0 and self.pending else None
        kind = "positive" if pending.positive else "negative"
        more = f" {pending.remaining} more to place." if self.pending else ""
        return f"{kind.capitalize()} point at ({x}, {y}).{more}"

    def set_boxes(self, boxes: Sequence[tuple[int, int, int, int]]) -> str:
        """Replace this slice's boxes by ones drawn in the box editor (one undo step).

        The editor shows the same display-pixel view as the image panel.
        """
        h, w = self.display_shape
        checked = [ops.AddBox(box=tuple(int(v) for v in b)) for b in boxes]  # type: ignore[arg-type]
        ops.check_bounds(checked, w, h)
        voxel_boxes = tuple(self._box_to_voxel(op.box) for op in checked if op.box)
        new = PromptSet(points=self.prompts.points, boxes=voxel_boxes)
        self._edit_prompts("draw boxes", new)
        return f"{len(new.boxes)} box(es) on this slice."

    def _add_point(self, point: Point) -> None:
        self._edit_prompts("add point", self.prompts.add_point(point))

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
        self._write_mask(mask, f"segment ({kind})")
        return (
            f"Segmented with {self.segmenter.info.name} from "
            f"{_describe_kind(kind, len(objects))} in {elapsed:.0f} ms: "
            f"{self._area_text(mask, image)}."
        )

    def prefetch(self) -> None:
        """Start the current slice's embedding in the background, so the first click rarely waits.

        Only backends with an expensive per-slice step offer `prefetch` (SAM's encoder); for the
        others `set_image` is cheap and runs on the first prompt.
        """
        start = getattr(self.segmenter, "prefetch", None)
        if self.images and start is not None:
            start(self.slice_image())

    def _ensure_embedded(self, image: SliceImage) -> None:
        key = self._view_key
        if key != self._embedded_key:
            self.segmenter.set_image(image)
            self._embedded_key = key

    def _write_mask(self, mask: np.ndarray, description: str) -> None:
        self._commit(
            description, slices={self.current.index: self._relabelled(self.current.index, mask)}
        )

    def _relabelled(self, index: int, mask: np.ndarray) -> np.ndarray:
        """The label slice `index` with the active label replaced by `mask`."""
        img = self.current
        labels = take_slice(img.labels, img.plane, index).copy()
        labels[labels == self.active_label] = 0
        labels[mask] = self.active_label
        return labels

    def _edit_prompts(self, description: str, new: PromptSet) -> None:
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
        if prompts is not None:
            img.prompts[(img.plane, img.index)] = prompts
        for i, arr in slices.items():
            put_slice(img.labels, img.plane, i, arr)

    def _push_undo(self, step: _Undo) -> None:
        self._undo.append(step)
        del self._undo[:-UNDO_DEPTH]

    def _op_undo(self, _: ops.Undo) -> StepResult:
        if not self._undo:
            raise SessionError("Nothing to undo.")
        step = self._undo.pop()
        self.position = step.image_pos
        img = self.current
        img.prompts = step.prompts
        for (plane, i), arr in step.label_slices.items():
            put_slice(img.labels, plane, i, arr)
        img.plane, img.index = step.view
        self.pending = None
        return StepResult(f"Undid: {step.description} ({img.plane} slice {img.index}).")

    def _op_clear(self, op: ops.Clear) -> StepResult:
        img = self.current
        self.pending = None
        prompts = self.prompts.cleared(op.target) if op.target != "masks" else None
        slices = None
        if op.target in ("masks", "all"):
            slices = {img.index: self._relabelled(img.index, np.zeros(self.slice_shape, bool))}
        self._commit(f"clear {op.target}", prompts=prompts, slices=slices)
        what = {"all": "prompts and mask", "masks": "mask"}.get(op.target, op.target)
        return StepResult(f"Cleared the {what} on this slice.")

    def _op_set_window(self, op: ops.SetWindow) -> StepResult:
        if self.images and not self.current.ct.is_hu:
            self.window = None
            return StepResult(
                "This image is an 8-bit render without Hounsfield units, so CT windows do not "
                "apply; it is shown as stored."
            )
        self.window = PRESETS[op.preset]
        level, width = self.window
        return StepResult(
            f"{op.preset.replace('_', ' ').capitalize()} window (L {level:g} / W {width:g})."
        )

    def _op_check_gpu(self, _: ops.CheckGpu) -> StepResult:
        return StepResult(self.backend.describe_compute())

    def _op_check_parameters(self, _: ops.CheckParameters) -> StepResult:
        return StepResult(self.backend.describe_parameters())

    def _op_export(self, op: ops.Export) -> StepResult:
        img = self.current
        if not img.labels.any():
            raise SessionError("There is no mask to export yet: segment something first.")
        stem = _safe_stem(img.ct.name)
        if op.format == "png":
            path = save_mask_png(
                self.mask(), self.workdir / f"{stem}_{img.plane}{img.index}_mask.png"
            )
            return StepResult("Mask of this slice saved as PNG.", file=path)
        path = save_nifti(img.labels, img.ct, self.workdir / f"{stem}_labels.nii.gz")
        return StepResult("Label map saved as NIfTI with the source geometry.", file=path)

    def _op_measure(self, _: ops.Measure) -> StepResult:
        image = self.slice_image()
        mask = self.mask()
        if not mask.any():
            raise SessionError("There is no mask on this slice to measure.")
        self.last_stats = mask_stats(
            mask, image.pixels, image.spacing[::-1] if image.spacing else None, image.is_hu
        )
        lines = [f"- **{k.replace('_', ' ')}**: {v:.4g}" for k, v in self.last_stats.items()]
        return StepResult("Measurements of the mask on this slice:\n" + "\n".join(lines))

    def _op_propagate(self, _: ops.Propagate) -> StepResult:
        return StepResult(self.propagate())

    def cancel_propagation(self) -> str:
        """Ask a running propagation to stop; what it found so far is kept (and undoable)."""
        if self._cancel is not None:
            self._cancel.set()
        return "Stopping the propagation…"

    def propagate(self, on_progress: Callable[[int, int], None] | None = None) -> str:
        """Segment neighbouring slices from the current mask; the result is one undo step."""
        img = self.current
        self._cancel = threading.Event()
        if not img.ct.is_volume:
            raise SessionError(
                "Propagation needs a volume (DICOM series or NIfTI), not a 2-D image."
            )
        start_mask = self.mask()
        if not start_mask.any():
            raise SessionError(
                "Segment the object on this slice first; propagation starts from it."
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
        lo, hi = min(slices), max(slices)
        return f"Propagated to {len(slices)} slices ({lo}–{hi}); undo removes them all."

    def _op_help(self, _: ops.Help) -> StepResult:
        return StepResult(HELP_TEXT)

    def _op_set_label(self, op: ops.SetLabel) -> StepResult:
        return StepResult(self.set_active_label(op.name))

    # ----------------------------------------------------------------- labels and 3-D
    def set_active_label(self, name: str) -> str:
        """Choose the object new masks belong to, by vertebra name (L1, T12, 腰1 …) or free text."""
        try:
            self.label_set, self.active_label = self.label_set.add(name)
        except LabelError as exc:
            raise SessionError(str(exc)) from exc
        label = self.label_set.name_of(self.active_label)
        return f"New masks are now labelled **{label}** (label {self.active_label})."

    def measure_volume(self) -> tuple[str, Figure, Path | None]:
        """Per-label size and HU (with the trabecular core), a histogram and a 3-D surface."""
        img = self.current
        names = {i: n for i, n in self.label_set.entries if (img.labels == i).any()}
        if not names:
            raise SessionError("There are no masks yet: segment (and propagate) first.")
        try:
            found = measure_labels(
                img.ct.volume, img.labels, names, spacing_xyz=img.ct.spacing, is_hu=img.ct.is_hu
            )
        except MeasurementError as exc:
            raise SessionError(str(exc)) from exc
        figure = hu_histogram_figure(
            img.ct.volume, img.labels, list(names), names, self.label_set.colors()
        )
        mesh = None
        if img.ct.is_volume:
            colors = {i: self.label_set.color_of(i) for i in names}
            try:
                mesh = labels_to_mesh(
                    img.labels, axis_spacing(img.ct.spacing), colors, self.workdir / "labels.glb"
                )
            except MeshError:
                mesh = None  # e.g. masks on one slice only: no surface to show
        return format_measurements(found), figure, mesh

    def export_dicom_seg(self) -> Path:
        img = self.current
        names = {i: n for i, n in self.label_set.entries if (img.labels == i).any()}
        if not names:
            raise SessionError("There is no mask to export yet: segment something first.")
        try:
            return save_dicom_seg(
                img.labels, img.ct, names, self.workdir / f"{_safe_stem(img.ct.name)}_seg.dcm"
            )
        except DicomSegError as exc:
            raise SessionError(str(exc)) from exc

    # ----------------------------------------------------------------- review
    def compare(self, paths: Sequence[str | Path]) -> str:
        """Metrics of the current masks against an uploaded ground-truth mask or label map."""
        img = self.current
        if len(paths) != 1:
            raise SessionError("Upload one mask or label-map file (PNG, NIfTI, MHA or NRRD).")
        try:
            gt_labels = load_label_map(paths[0], img.ct.volume.shape)
        except CTLoadError as exc:
            raise SessionError(f"Could not use the ground truth: {exc}") from exc
        gt = gt_labels > 0
        pred = img.labels > 0
        units = "mm" if img.ct.spacing else "px"
        rows = []
        gt2, pred2 = take_slice(gt, img.plane, img.index), take_slice(pred, img.plane, img.index)
        sp2 = slice_spacing(img.ct.spacing, img.plane)
        scopes = [("this slice", pred2, gt2, sp2[::-1] if sp2 else None)]
        if img.ct.is_volume:
            scopes.append(("whole volume", pred, gt, axis_spacing(img.ct.spacing)))
        if img.ct.is_volume:
            scopes += self._per_label_scopes(gt_labels)
        for name, p, g, sp in scopes:
            self.last_stats.update({f"dice_{name}": dice(p, g), f"iou_{name}": iou(p, g)})
            rows.append(
                f"| {name} | {dice(p, g):.4f} | {iou(p, g):.4f} | "
                f"{hd95(p, g, sp):.2f} | {msd(p, g, sp):.2f} |"
            )
        header = f"| scope | Dice | IoU | HD95 ({units}) | MSD ({units}) |\n|---|---|---|---|---|"
        return "\n".join([header, *rows])

    def _per_label_scopes(self, gt_labels: np.ndarray) -> list[tuple]:
        """Each of our labels against the ground-truth label it overlaps most.

        Label ids of an uploaded map are the other tool's (TotalSegmentator's 31 is our "L1"),
        so labels are paired by overlap rather than by number.
        """
        img = self.current
        spacing = axis_spacing(img.ct.spacing)
        scopes = []
        for label_id, name in self.label_set.entries:
            ours = img.labels == label_id
            under = gt_labels[ours]
            under = under[under > 0]
            if not ours.any() or under.size == 0:
                continue
            match = int(np.bincount(under).argmax())
            scopes.append((f"{name} ↔ GT {match} (3-D)", ours, gt_labels == match, spacing))
        return scopes

    def flag_record(self, rating: str, comment: str) -> dict:
        """What a collaborator's flag stores: which image, the prompts, the result, the metrics."""
        img = self.current
        return {
            "image": img.ct.name,
            "plane": img.plane,
            "slice": img.index,
            "prompts": self.prompts.to_json(),
            "mask_pixels": int(self.mask().sum()),
            "metrics": self.last_stats,
            "backend": self.segmenter.info.name,
            "rating": rating,
            "comment": comment,
        }

    # ----------------------------------------------------------------- helpers
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


def _describe_kind(kind: SegmentKind, n: int) -> str:
    noun = {"points": "point prompt", "box": "box prompt", "auto": "prompt"}[kind]
    return f"{n} {noun}{'s' if n > 1 else ''}"


def _is_picture(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RASTER_EXTENSIONS


def _safe_stem(name: str) -> str:
    """File names come from uploads: keep only harmless characters."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).name.split(".")[0])
    return stem[:60] or "image"
