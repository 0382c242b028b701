"""The sagittal cross-check of an axial propagation (spinalsam.crosscheck), on a synthetic
spine whose disc is cut obliquely: on axial slices the next body touches this one, so a
prior-following segmenter slides on into it; on the mid-sagittal slice the disc is a gap."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
from scipy import ndimage as ndi

from spinalsam.crosscheck import _ReadSays, sagittal_cross_check
from spinalsam.metrics import dice
from spinalsam.propagation import PRIOR_FOLLOWING_RULES, PropagationRules, propagate
from spinalsam.segmenters.base import BackendInfo, Prompt, SliceImage

SPACING = (1.0, 1.0, 2.0)  # x, y, z mm
START = 5


class Follower:
    """Follows its prior like the learned default (the bone touching it); given a click, as on
    the sagittal read, it answers the bone piece under the click inside the box instead."""

    info = BackendInfo("follower", "test double")
    follows_prior = True

    def __init__(self) -> None:
        self.image: SliceImage | None = None
        self.off_axial_reads = 0  # reads of a slice that is not axial (its rows are z)
        self.prompts: list[Prompt] = []

    def set_image(self, image: SliceImage) -> None:
        self.image = image

    def predict(self, prompt: Prompt) -> np.ndarray:
        assert self.image is not None and prompt.mask_input is not None
        self.prompts.append(prompt)
        pieces, _ = ndi.label(self.image.pixels > 150)
        self.off_axial_reads += self.image.spacing == (SPACING[1], SPACING[2])
        if len(prompt.points):
            x0, y0, x1, y1 = prompt.box
            inside = np.zeros(pieces.shape, dtype=bool)
            inside[y0 : y1 + 1, x0 : x1 + 1] = True
            under = {pieces[y, x] for x, y in prompt.points} - {0}
            return np.isin(pieces, list(under)) & inside
        touching = set(np.unique(pieces[ndi.binary_dilation(prompt.mask_input)])) - {0}
        return np.isin(pieces, list(touching))


def _oblique_spine() -> tuple[np.ndarray, np.ndarray]:
    """Vertebra 1 (body slices 2–11 and, behind a canal, its arch) and the next body (13–21);
    the disc between them (slice 12) is seen only around the midline: off it, partial volume
    with both endplates makes it as bright as bone, so on axial slices the next body continues
    this one, while the mid-sagittal slice shows the gap."""
    volume = np.full((24, 64, 64), 30.0, dtype=np.float32)
    labels = np.zeros(volume.shape, dtype=np.uint16)
    labels[2:12, 16:36, 20:45] = 1
    labels[2:13, 40:48, 29:36] = 1  # the arch, behind the canal (rows 36–39)
    labels[13:22, 16:36, 20:45] = 2
    volume[labels > 0] = 300.0
    volume[12, 16:36, 20:45] = 300.0  # the disc, partial-volumed …
    volume[12, 16:36, 30:35] = 30.0  # … except around the midline
    return volume, labels


def _propagate(rules: PropagationRules, segmenter: Follower, **kwargs):
    volume, labels = _oblique_spine()
    return propagate(
        volume, True, SPACING, "axial", START, labels[START] == 1, segmenter, rules=rules, **kwargs
    )


def test_the_check_trims_the_slide_into_the_next_body() -> None:
    volume, labels = _oblique_spine()
    unchecked = _propagate(replace(PRIOR_FOLLOWING_RULES, sagittal_check=False), Follower())
    slid = unchecked.to_volume(volume.shape, "axial")
    assert np.count_nonzero(slid & (labels == 2)) > 1000  # it slid on into the next body
    segmenter = Follower()
    checked = _propagate(PRIOR_FOLLOWING_RULES, segmenter)
    assert segmenter.off_axial_reads == 1
    assert checked.cross_check is not None and checked.cross_check.trusted
    assert checked.cross_check.sagittal_index == 32
    kept = checked.to_volume(volume.shape, "axial")
    assert np.count_nonzero(kept & (labels == 2)) == 0
    assert dice(kept, labels == 1) > dice(slid, labels == 1) + 0.2
    assert np.count_nonzero(kept & (labels == 1)) >= 0.8 * np.count_nonzero(labels == 1)
    np.testing.assert_array_equal(checked.masks[START], labels[START] == 1)  # the user's


def test_a_read_that_misses_the_start_line_changes_nothing() -> None:
    """The read must hold the start mask's line on its slice: one that answers something else
    (here nothing) is not trusted, and the axial result stands."""

    class BlindRead(Follower):
        def predict(self, prompt: Prompt) -> np.ndarray:
            answer = super().predict(prompt)
            return np.zeros_like(answer) if len(prompt.points) else answer

    volume, _ = _oblique_spine()
    unchecked = _propagate(replace(PRIOR_FOLLOWING_RULES, sagittal_check=False), Follower())
    blind = _propagate(PRIOR_FOLLOWING_RULES, BlindRead())
    assert blind.cross_check is not None and not blind.cross_check.trusted
    assert blind.cross_check.removed_voxels == 0
    np.testing.assert_array_equal(
        blind.to_volume(volume.shape, "axial"), unchecked.to_volume(volume.shape, "axial")
    )


def test_the_check_runs_only_where_it_is_asked_for() -> None:
    """Not with the defaults (the classical segmenter's 3-D is unchanged), not on other planes,
    not after a cancel (what was done is kept as it is)."""
    assert not PropagationRules().sagittal_check and PRIOR_FOLLOWING_RULES.sagittal_check
    segmenter = Follower()
    defaults = _propagate(replace(PropagationRules(), max_growth_mm=None), segmenter)
    assert defaults.cross_check is None and segmenter.off_axial_reads == 0
    cancel = threading.Event()
    cancel.set()
    cancelled = _propagate(PRIOR_FOLLOWING_RULES, segmenter, cancel=cancel)
    assert cancelled.cross_check is None and segmenter.off_axial_reads == 0
    volume, labels = _oblique_spine()
    coronal = propagate(
        volume, True, SPACING, "coronal", 26, labels[:, 26] == 1, segmenter, max_slices=2
    )
    assert coronal.cross_check is None


def test_slices_the_check_empties_are_dropped_and_the_start_slice_is_kept() -> None:
    volume, labels = _oblique_spine()
    masks = {z: labels[z] > 0 for z in range(2, 20)}  # a result that slid to slice 19
    segmenter = Follower()
    check = sagittal_cross_check(masks, volume, True, SPACING, START, segmenter)
    assert check.trusted and check.removed_voxels > 0
    # the read's box is held to the vertebra's reach: half the start line's depth (32 mm on the
    # midline) above and below the start slice, 8 slices of 2 mm, plus the 3.5 mm margin
    (read,) = segmenter.prompts
    start_row = volume.shape[0] - 1 - START
    assert read.box[1] >= start_row - 8 - 2 and read.box[3] <= start_row + 8 + 2
    assert max(masks) <= 12 and START in masks
    assert all(mask.any() for mask in masks.values())


def test_what_the_read_says_trims_rows_of_the_body_zone_and_slices_beyond_its_reach() -> None:
    """A slice where the read disagrees with more than half of the axial mask's body-zone line
    on the midline loses those rows across the whole slice (the next body lies across them), not
    the arch behind the wall; less disagreement (a gap in the read, the edge of a slide) changes
    nothing; slices beyond the read's reach are dropped; the start slice is the user's."""
    vertebra = np.zeros((6, 20), dtype=bool)
    vertebra[1:4, 2:10] = True  # slices 1–3: the vertebra on rows 2–9 of the midline
    vertebra[2, 5] = False  # a one-row gap in the read
    says = _ReadSays(x=3, vertebra=vertebra, wall=10, lowest=1, highest=3)
    body = np.zeros((20, 8), dtype=bool)
    body[2:10, 1:7] = True
    arch = np.zeros((20, 8), dtype=bool)
    arch[12:16, 2:5] = True
    slid = body.copy()
    slid[0:2, 1:7] = True  # the next body, in front: rows 0–1 are not on the read
    short = np.zeros_like(body)
    short[2:5, 1:7] = True  # rows 5–9 are not on the read's slice 3 …
    vertebra[3, 5:10] = False  # … which has the vertebra on rows 2–4 only
    masks = {0: body | arch, 1: slid | arch, 2: body | arch, 3: body | arch, 4: arch, 5: body}
    removed = says.trim(masks, keep=5)
    np.testing.assert_array_equal(masks[1], slid | arch)  # rows 0–1 of 0–9 are off: kept
    np.testing.assert_array_equal(masks[2], body | arch)  # the gap at row 5: kept
    np.testing.assert_array_equal(masks[3], short | arch)  # rows 5–9 of 2–9 are off: removed
    assert 0 not in masks and 4 not in masks  # beyond the read's reach
    np.testing.assert_array_equal(masks[5], body)  # the start slice, though out of reach
    assert removed == np.count_nonzero(body | arch) + np.count_nonzero(arch) + 5 * 6


def test_a_read_with_gaps_in_the_body_does_not_cut_bands_out_of_the_demo_phantom() -> None:
    """The app's synthetic example: a uniform body, which the network reads on the mid-sagittal
    slice as two rims with a gap between them. Taken as it is, that gap cut a band out of every
    axial slice (3-D Dice 0.97 → 0.90); filled in front of the posterior wall, nothing of the
    vertebra is lost."""
    from spinalsam.phantom import make_spine_phantom
    from spinalsam.planes import slice_image
    from spinalsam.segmenters.learned import LearnedSegmenter

    volume, labels = make_spine_phantom((40, 160, 160))
    volume = volume.astype(np.int16).astype(np.float32)  # as the example file stores it
    spacing = (0.8, 0.8, 2.5)
    segmenter = LearnedSegmenter()
    for label, start in ((1, 6), (2, 20)):
        truth = labels == label
        segmenter.set_image(slice_image(volume, True, spacing, "axial", start, None))
        ys, xs = np.nonzero(truth[start])
        box = np.array([xs.min() - 4, ys.min() - 4, xs.max() + 4, ys.max() + 4])
        mask = segmenter.predict(Prompt(box=box))
        scores = []
        for check in (True, False):
            rules = replace(PRIOR_FOLLOWING_RULES, sagittal_check=check)
            result = propagate(volume, True, spacing, "axial", start, mask, segmenter, rules=rules)
            scores.append(dice(result.to_volume(volume.shape, "axial"), truth))
        assert scores[0] > 0.95 and scores[0] >= scores[1] - 0.005, (label, scores)
