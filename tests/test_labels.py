"""Label names typed by users, the immutable LabelSet, and merging masks into one label map."""

from __future__ import annotations

import numpy as np
import pytest

from spinalsam.labels import LABEL_PALETTE, LabelError, LabelSet, merge_mask
from spinalsam.vertebrae import VERTEBRA_NAMES, parse_vertebra_name


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("L1", "L1"),
        ("l 2", "L2"),
        ("L-3", "L3"),
        ("T12", "T12"),
        ("th12", "T12"),
        ("c7", "C7"),
        ("S1", "S1"),
        ("腰1", "L1"),
        ("腰椎3", "L3"),
        ("胸12", "T12"),
        ("胸十二", "T12"),
        ("第一腰椎", "L1"),
        ("颈2", "C2"),
        ("T 1 vertebra", "T1"),
        ("胸椎第十二节", "T12"),
        ("第三节腰椎", "L3"),
    ],
)
def test_vertebra_names_parse_to_canonical(typed: str, expected: str) -> None:
    assert parse_vertebra_name(typed) == expected


@pytest.mark.parametrize("typed", ["L6", "T13", "C0", "L", "kidney", "", "L 1 2", "S2"])
def test_non_vertebrae_are_not_parsed(typed: str) -> None:
    assert parse_vertebra_name(typed) is None


def test_vertebra_names_cover_the_spine_once() -> None:
    assert len(VERTEBRA_NAMES) == 7 + 12 + 5 + 1 == len(set(VERTEBRA_NAMES))
    assert all(parse_vertebra_name(name) == name for name in VERTEBRA_NAMES)


def test_label_set_is_immutable_and_reuses_ids() -> None:
    empty = LabelSet()
    one, l1 = empty.add("l 1")
    two, t12 = one.add("胸12")
    same, again = two.add("L1")
    assert empty.ids == ()  # the original set did not change
    assert (l1, t12, again) == (1, 2, 1)
    assert same is two
    assert two.name_of(2) == "T12"
    assert two.id_of("腰1") == 1
    free, tumour = two.add("  my   lesion ")
    assert free.name_of(tumour) == "my lesion"
    assert free.remove(1).ids == (2, 3)
    with pytest.raises(LabelError, match="no label 9"):
        free.name_of(9)
    with pytest.raises(LabelError, match="needs a name"):
        free.add("   ")


def test_colors_are_fixed_per_id_and_neighbours_differ() -> None:
    labels, _ = LabelSet().add("L1")
    labels, _ = labels.add("L2")
    colors = labels.colors()
    assert colors == {1: LABEL_PALETTE[0], 2: LABEL_PALETTE[1]}
    assert colors[1] != colors[2]
    assert labels.color_of(1 + len(LABEL_PALETTE)) == colors[1]


def test_merge_respects_other_labels_unless_overwrite() -> None:
    labels = np.zeros((2, 4, 4), dtype=np.uint16)
    labels[:, :2] = 1
    mask = np.zeros(labels.shape, dtype=bool)
    mask[:, 1:3] = True
    kept = merge_mask(labels, mask, 2)
    assert (kept[:, :2] == 1).all() and (kept[:, 2] == 2).all() and (kept[:, 3] == 0).all()
    over = merge_mask(labels, mask, 2, overwrite=True)
    assert (over[:, 0] == 1).all() and (over[:, 1:3] == 2).all()
    assert (labels[:, :2] == 1).all() and not (labels == 2).any()  # input untouched (undo)


def test_merge_replace_redefines_the_label() -> None:
    labels = np.zeros((1, 4, 4), dtype=np.uint16)
    labels[0, 0] = 3
    mask = np.zeros(labels.shape, dtype=bool)
    mask[0, 3] = True
    added = merge_mask(labels, mask, 3)
    replaced = merge_mask(labels, mask, 3, replace=True)
    assert (added == 3).sum() == 8
    assert (replaced == 3).sum() == 4 and (replaced[0, 3] == 3).all()


def test_merge_rejects_bad_input_clearly() -> None:
    labels = np.zeros((1, 4, 4), dtype=np.uint16)
    with pytest.raises(LabelError, match="does not match"):
        merge_mask(labels, np.ones((1, 3, 3), bool), 1)
    with pytest.raises(LabelError, match="out of range"):
        merge_mask(labels, np.ones((1, 4, 4), bool), 0)
