"""Named labels for several vertebrae in one label map.

A spine study holds many objects (L1, L2, T12 ...), so masks are kept in one (Z, Y, X) uint16
label map where voxel value k means "label k". `LabelSet` maps ids to names and colours; it is
immutable, so a session can keep it in its undo history without copies going stale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinalsam.plaintext import plain_name
from spinalsam.vertebrae import parse_vertebra_name

__all__ = [
    "LABEL_PALETTE",
    "LabelError",
    "LabelSet",
    "label_array",
    "label_color",
    "merge_mask",
]

# 12 well separated colours (Tableau-like), cycled by label id; neighbouring vertebrae get
# neighbouring ids, so adjacent levels always differ in colour.
LABEL_PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)


MAX_NAME_CHARS = 40  # characters of a label name (the protocol's `set_label` limit)


class LabelError(ValueError):
    """A label name or id the user gave that cannot be used; the message is shown as is."""


@dataclass(frozen=True)
class LabelSet:
    """Label id → name, immutable: every change returns a new set (safe to keep in undo history).

    Names are canonical vertebra names when they parse as one, else the user's free text.
    """

    entries: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        # Names are shown as Markdown; those of a bundle come from a stranger.
        names = tuple((i, plain_name(n, MAX_NAME_CHARS, "label")) for i, n in self.entries)
        object.__setattr__(self, "entries", names)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(label_id for label_id, _ in self.entries)

    def name_of(self, label_id: int) -> str:
        for known_id, name in self.entries:
            if known_id == label_id:
                return name
        raise LabelError(f"there is no label {label_id}")

    def id_of(self, name: str) -> int | None:
        """The id of a label by name (any spelling `parse_vertebra_name` accepts), or None."""
        wanted = _canonical(name)
        return next((i for i, known in self.entries if known.lower() == wanted.lower()), None)

    def add(self, name: str) -> tuple[LabelSet, int]:
        """Return (new set, id) with `name` present; an existing name keeps its id."""
        canonical = _canonical(name)
        existing = self.id_of(canonical)
        if existing is not None:
            return self, existing
        new_id = max(self.ids, default=0) + 1
        if new_id > np.iinfo(np.uint16).max:
            raise LabelError("too many labels")
        return LabelSet((*self.entries, (new_id, canonical))), new_id

    def remove(self, label_id: int) -> LabelSet:
        self.name_of(label_id)  # raises a clear error for unknown ids
        return LabelSet(tuple(e for e in self.entries if e[0] != label_id))

    def color_of(self, label_id: int) -> tuple[int, int, int]:
        return label_color(label_id)

    def colors(self) -> dict[int, tuple[int, int, int]]:
        return {label_id: label_color(label_id) for label_id in self.ids}


def label_color(label_id: int) -> tuple[int, int, int]:
    """Fixed colour for a label id, so a label keeps its colour across views and exports."""
    if label_id < 1:
        raise LabelError("label ids start at 1 (0 is background)")
    return LABEL_PALETTE[(label_id - 1) % len(LABEL_PALETTE)]


def _canonical(name: str) -> str:
    stripped = plain_name(name, MAX_NAME_CHARS, "")
    if not stripped:
        raise LabelError("a label needs a name, e.g. L1 or T12")
    return parse_vertebra_name(stripped) or stripped


def merge_mask(
    labels: np.ndarray,
    mask: np.ndarray,
    label_id: int,
    *,
    overwrite: bool = False,
    replace: bool = False,
) -> np.ndarray:
    """A new label map with `mask` written as `label_id`; the input is left untouched (undo).

    overwrite: also write over voxels that belong to other labels (else only background and
    this label's own voxels change). replace: first clear the old voxels of `label_id`, so the
    new mask becomes the whole label (a re-segmentation) instead of adding to it.
    """
    if mask.shape != labels.shape:
        raise LabelError(f"mask shape {mask.shape} does not match the label map {labels.shape}")
    if not 1 <= label_id <= np.iinfo(np.uint16).max:
        raise LabelError(f"label id {label_id} is out of range")
    merged = labels.astype(np.uint16, copy=True)
    if replace:
        merged[merged == label_id] = 0
    writable = mask.astype(bool)
    if not overwrite:
        writable &= (merged == 0) | (merged == label_id)
    merged[writable] = label_id
    return merged


def label_array(labels: np.ndarray) -> np.ndarray:
    """Smallest unsigned type that holds the labels (uint8, else uint16), as viewers expect."""
    values = np.asarray(labels)
    if values.dtype == bool:
        return values.astype(np.uint8)
    if not np.issubdtype(values.dtype, np.integer):
        raise LabelError(f"Labels must be whole numbers, got {values.dtype} values.")
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > np.iinfo(np.uint16).max:
        raise LabelError(f"Label ids must lie in 0..65535, got {low}..{high}.")
    return values.astype(np.uint8 if high <= np.iinfo(np.uint8).max else np.uint16)
