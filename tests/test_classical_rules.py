"""Each kept rule of the classical segmenter, through `predict`: a case where the rule matters.

Why a file of its own: the rules' helpers have unit tests in test_classical.py, but a helper
can pass its test while nothing calls it any more. Each test here fails when its rule's call
is removed (mutation runs listed in docs/evaluation.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from spinalsam.evaluation.runner import Modes, score_slices
from spinalsam.evaluation.sources import CACHE_ROOT, SOURCES, load_source_volumes
from spinalsam.evaluation.volume import sample_slices, volume_slice_cases
from spinalsam.metrics import dice
from spinalsam.segmenters import Prompt
from spinalsam.segmenters.classical import ClassicalSegmenter
from tests.test_classical import (
    SOFT,
    _ellipse,
    _render,
    _stacked_bodies,
    axial_phantom,
    box_of,
    grey_slice,
    sagittal_phantom,
    segment,
)


def test_box_drops_a_neighbours_endplate_entering_through_its_side() -> None:
    """A loose box takes in the end plates of the neighbours above and below, which the closing
    (gaps up to 14 px) would join to the body across the 10 px discs; they enter through the
    box sides without reaching far in, so they are dropped before it (`drop_edge_crossers`;
    without it 860 px of disc and end plate join the mask)."""
    bodies, solid, shell = _stacked_bodies(256, 100)
    target = bodies[1]
    mask = segment(grey_slice(_render(solid, shell, seed=1)), Prompt(box=box_of(target, 10)))
    assert dice(mask, target) >= 0.9
    assert not (mask & ~ndi.binary_dilation(target, iterations=2)).any()


def test_box_threshold_never_falls_to_soft_tissue() -> None:
    """A box mostly of fat has its mean grey level below soft tissue; the bone threshold stays
    above the soft-tissue level (`SOFT_FLOOR`), so the muscle beside the bone stays out."""
    size = 256
    bone = _ellipse((size, size), 128, 128, 20, 26)
    img = _render(bone, bone & ~ndi.binary_erosion(bone, iterations=4), seed=2)
    fat = _ellipse((size, size), 128, 128, 60, 70) & ~bone
    img[fat] -= 40.0  # paraspinal fat around the bone
    img[128 - 6 : 128 + 6, 128 + 26 : 128 + 70] = SOFT  # a muscle band touching it
    mask = segment(grey_slice(img), Prompt(box=box_of(bone, 30)))
    assert dice(mask, bone) >= 0.9


def test_a_prior_does_not_have_its_canal_filled() -> None:
    """On thick slices the canal reads a little brighter than soft tissue (partial volume) and
    is a bay of the vertebra's hull; a drawn box fills such bays, but the box around a
    neighbouring slice's mask does not: that mask already has the hollows it should."""
    img, target = axial_phantom(seed=4)
    canal = _ellipse(target.shape, 256 + 25, 256, 26, 30)
    img[canal] = SOFT + 8.0  # brighter than soft tissue by more than the bone floor
    mask = segment(grey_slice(img), Prompt(mask_input=target))
    assert dice(mask, target) >= 0.85
    assert not (mask & canal).any()


def test_a_prior_answer_settles_at_the_cortex_edge() -> None:
    """The box around a neighbouring slice's mask takes in the blurred skirt of the cortex;
    its outline moves in to the cortex's half height (`settle_edge`; without it 419 px of
    skirt around this body), so propagated masks do not creep outwards slice after slice."""
    img, target = sagittal_phantom(seed=4)
    mask = segment(grey_slice(img), Prompt(mask_input=target))
    assert dice(mask, target) >= 0.95
    assert (mask & ~target).sum() < 0.01 * target.sum()


def test_a_prior_bounds_the_answer_to_its_neighbourhood() -> None:
    """A closed arch makes the canal a hole that the box reading fills; the neighbouring
    slice's mask leaves the canal out, and the answer is held to CLOSE_MM around that mask
    (`near_prior`; without it 1,300 px of the canal's core join the mask)."""
    shape = (256, 256)
    canal = _ellipse(shape, 150, 128, 26, 30)
    target = _ellipse(shape, 90, 128, 40, 50) | (_ellipse(shape, 150, 128, 38, 44) & ~canal)
    img = _render(target, target & ~ndi.binary_erosion(target, iterations=4), seed=5)
    mask = segment(grey_slice(img), Prompt(mask_input=target))
    core = ndi.binary_erosion(canal, iterations=10)
    assert (mask & core).sum() < 0.1 * core.sum()


# (source, plane, slices per volume, minimum mean point Dice) on the report's slices of held-out
# volumes (one every 5 mm, at most that many per plane). The point path's rules were ablated
# there: the minimums sit just under what the rules give (totalseg axial 0.723, coronal 0.618,
# tptbox sagittal 0.672; deterministic) and above what each rule's removal gives: without the
# shell estimate 0.617 / 0.590 / 0.662, without the basin estimates 0.750 / 0.608 / 0.577,
# without the neck cut 0.723 / 0.618 / 0.645, without the walled-off compartment
# 0.727 / 0.537 / 0.651.
HELD_OUT_POINTS = [("totalseg", "axial", 4, 0.72), ("totalseg", "coronal", 4, 0.61)]
HELD_OUT_POINTS += [("tptbox", "sagittal", 8, 0.665)]


@pytest.mark.parametrize(("source", "plane", "slices", "minimum"), HELD_OUT_POINTS)
def test_point_rules_hold_on_held_out_volume_slices(
    shared_data: Path, source: str, plane: str, slices: int, minimum: float
) -> None:
    """The click path's estimates and cuts, where each of them matters: real slices of volumes
    the classical segmenter was never tuned on."""
    (spec,) = [s for s in SOURCES if s.name == source]
    records = []
    for case, volume, ids in load_source_volumes(spec, shared_data, CACHE_ROOT, quick=True):
        indices = sample_slices(volume.labels, ids, plane, volume.ct.spacing, 5.0, slices)
        cases = volume_slice_cases(volume, ids, plane, indices, case.name)
        records += score_slices(ClassicalSegmenter(), cases, Modes(kinds=("point",)))[0]
    assert np.mean([r["dice"] for r in records]) >= minimum
