"""The operation protocol (../shared/PROTOCOL.md) as validated pydantic models.

Every source of user intent — a click, a button, the offline parser, the LLM — produces these
objects, so validation happens in one place and the session never sees a malformed operation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "AddBox",
    "AddPoints",
    "CheckGpu",
    "CheckParameters",
    "Clear",
    "ClickImage",
    "Compare",
    "DrawBox",
    "Export",
    "ExportAll",
    "ExportDicomSeg",
    "GotoSlice",
    "Help",
    "Measure",
    "MeasureVolume",
    "NextImage",
    "OpenBundle",
    "OpenFiles",
    "OpenImage",
    "Operation",
    "OperationError",
    "PreviousImage",
    "Propagate",
    "Redo",
    "ResetWindow",
    "SaveSession",
    "Segment",
    "SetCustomWindow",
    "SetLabel",
    "SetPlane",
    "SetWindow",
    "ShowLabels",
    "UiOperation",
    "Undo",
    "check_bounds",
    "dump_operations",
    "parse_operations",
]

WindowPreset = Literal["bone", "soft_tissue", "spine", "lung", "brain"]


class OperationError(ValueError):
    """An operation list that is malformed or does not fit the current image."""


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenImage(_Op):
    op: Literal["open_image"] = "open_image"


class NextImage(_Op):
    op: Literal["next_image"] = "next_image"


class PreviousImage(_Op):
    op: Literal["previous_image"] = "previous_image"


class AddPoints(_Op):
    op: Literal["add_points"] = "add_points"
    count: int = Field(1, ge=1, le=50)
    label: Literal["positive", "negative"] = "positive"
    points: list[tuple[int, int]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _count_from_points(cls, data: Any) -> Any:
        # Coordinates given without a count imply it; an explicit mismatch is an error below.
        if isinstance(data, dict) and data.get("points") and "count" not in data:
            data = {**data, "count": len(data["points"])}
        return data

    @model_validator(mode="after")
    def _count_matches(self) -> AddPoints:
        if self.points is not None and len(self.points) != self.count:
            raise ValueError(f"count={self.count} but {len(self.points)} coordinates were given")
        return self


class AddBox(_Op):
    op: Literal["add_box"] = "add_box"
    box: tuple[int, int, int, int] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AddBox:
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 <= x0 or y1 <= y0:
                raise ValueError(
                    f"box {list(self.box)} must be [x0, y0, x1, y1] with x0 < x1, y0 < y1"
                )
        return self


class Segment(_Op):
    op: Literal["segment"] = "segment"
    prompt: Literal["points", "box", "auto"] = "auto"


class Clear(_Op):
    op: Literal["clear"] = "clear"
    target: Literal["points", "boxes", "masks", "all"] = "all"


class CheckGpu(_Op):
    op: Literal["check_gpu"] = "check_gpu"


class CheckParameters(_Op):
    op: Literal["check_parameters"] = "check_parameters"


class Undo(_Op):
    op: Literal["undo"] = "undo"


class Redo(_Op):
    op: Literal["redo"] = "redo"


class GotoSlice(_Op):
    op: Literal["goto_slice"] = "goto_slice"
    index: int = Field(ge=0)


class SetWindow(_Op):
    """A named preset, or the level and width (HU) the user typed ("W1500 L300")."""

    op: Literal["set_window"] = "set_window"
    preset: WindowPreset | None = None
    level: int | None = Field(None, ge=-4000, le=4000)
    width: int | None = Field(None, ge=1, le=8000)

    @model_validator(mode="after")
    def _preset_or_values(self) -> SetWindow:
        custom = (self.level, self.width)
        if self.preset is None and None in custom:
            raise ValueError("give a preset, or both level and width")
        if self.preset is not None and custom != (None, None):
            raise ValueError("give a preset or level/width, not both")
        return self


class Export(_Op):
    op: Literal["export"] = "export"
    format: Literal["png", "nifti", "dicom_seg"] = "png"


class Measure(_Op):
    op: Literal["measure"] = "measure"


class Propagate(_Op):
    op: Literal["propagate"] = "propagate"


class Help(_Op):
    op: Literal["help"] = "help"


class SetLabel(_Op):
    """SpinalSAM's extension of the protocol: name the object new masks belong to.

    Several vertebrae share one label map, and a clinician names them as they go ("this is
    L1", "标记为腰1"); any name is accepted, vertebra levels are normalised by the session.
    """

    op: Literal["set_label"] = "set_label"
    name: str = Field(min_length=1, max_length=40)


Operation = Annotated[
    OpenImage
    | NextImage
    | PreviousImage
    | AddPoints
    | AddBox
    | Segment
    | Clear
    | CheckGpu
    | CheckParameters
    | Undo
    | Redo
    | GotoSlice
    | SetWindow
    | Export
    | Measure
    | Propagate
    | Help
    | SetLabel,
    Field(discriminator="op"),
]

_OPERATION_LIST = TypeAdapter(list[Operation])

# ----------------------------------------------------------------- operations only the UI sends
# These carry things a chat message or an LLM must never choose (server file paths, raw pointer
# positions), so they are not part of `Operation` and `parse_operations` never produces them.

Fraction = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]


class ClickImage(_Op):
    """A click on the image panel, as fractions of the image's on-screen rectangle.

    The browser knows where the picture is drawn, the session knows its pixel grid; fractions
    are the only coordinates both sides agree on at any zoom, screen size or aspect.
    """

    op: Literal["click_image"] = "click_image"
    x: Fraction
    y: Fraction
    mode: Literal["positive", "negative", "box", "select"] = "positive"


class DrawBox(_Op):
    """A box dragged on the image panel, corners as fractions of the image (any order)."""

    op: Literal["draw_box"] = "draw_box"
    x0: Fraction
    y0: Fraction
    x1: Fraction
    y1: Fraction


class SetPlane(_Op):
    op: Literal["set_plane"] = "set_plane"
    plane: Literal["axial", "coronal", "sagittal"]


class SetCustomWindow(_Op):
    op: Literal["set_custom_window"] = "set_custom_window"
    level: float = Field(ge=-5000, le=50000, allow_inf_nan=False)
    width: float = Field(gt=0, le=100000, allow_inf_nan=False)


class ResetWindow(_Op):
    """Back to the data's default window (8-bit renders pass through unchanged)."""

    op: Literal["reset_window"] = "reset_window"


class ShowLabels(_Op):
    """Which labels are shown; the others are hidden from the view, exports and measurements."""

    op: Literal["show_labels"] = "show_labels"
    ids: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(max_length=65535)


class OpenFiles(_Op):
    op: Literal["open_files"] = "open_files"
    paths: tuple[str, ...]


class OpenBundle(_Op):
    op: Literal["open_bundle"] = "open_bundle"
    path: str


class SaveSession(_Op):
    """Write a bundle; `chat` is the conversation shown beside the image, kept with it."""

    op: Literal["save_session"] = "save_session"
    chat: tuple[tuple[str, str], ...] = ()


class Compare(_Op):
    op: Literal["compare"] = "compare"
    paths: tuple[str, ...]


class MeasureVolume(_Op):
    op: Literal["measure_volume"] = "measure_volume"


class ExportDicomSeg(_Op):
    op: Literal["export_dicom_seg"] = "export_dicom_seg"


class ExportAll(_Op):
    op: Literal["export_all"] = "export_all"


UiOperation = (
    ClickImage
    | DrawBox
    | SetPlane
    | SetCustomWindow
    | ResetWindow
    | ShowLabels
    | OpenFiles
    | OpenBundle
    | SaveSession
    | Compare
    | MeasureVolume
    | ExportDicomSeg
    | ExportAll
)


def parse_operations(data: Any) -> list[Operation]:
    """Validate raw JSON-like data (a list of dicts, or one dict) into operations."""
    if isinstance(data, dict):
        data = [data]
    try:
        return _OPERATION_LIST.validate_python(data)
    except ValidationError as exc:
        raise OperationError(_short_validation_message(exc)) from exc


def dump_operations(ops: list[Operation]) -> list[dict[str, Any]]:
    """Protocol JSON form: defaults filled in, absent optional coordinates left out."""
    return [op.model_dump(mode="json", exclude_none=True) for op in ops]


def check_bounds(ops: list[Operation], width: int, height: int) -> None:
    """Reject coordinates outside the current image before anything runs."""
    for op in ops:
        coords: list[tuple[int, int]] = []
        if isinstance(op, AddPoints) and op.points:
            coords = list(op.points)
        elif isinstance(op, AddBox) and op.box:
            coords = [op.box[:2], op.box[2:]]
        for x, y in coords:
            if not (0 <= x < width and 0 <= y < height):
                raise OperationError(
                    f"{op.op}: coordinate ({x}, {y}) is outside the {width}×{height} image"
                )


def _short_validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "invalid operation — " + "; ".join(parts)
