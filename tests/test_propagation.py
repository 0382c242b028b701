"""Propagation on a synthetic spine whose ground truth is known, through a test-double backend.

The double is an honest, simple segmenter (bone threshold inside the prompt box, keeping the
pieces under the positive points), so these tests check propagation's own logic: prompts from
the previous mask, stopping at discs, cancel, progress, and the slice bookkeeping.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from spinalsam.metrics import dice
from spinalsam.phantom import make_spine_phantom
from spinalsam.propagation import (
    PRIOR_FOLLOWING_RULES,
    PropagationError,
    PropagationRules,
    _ArchWalk,
    _traced_arch,
    prompt_from_mask,
    propagate,
    rules_for,
)
from spinalsam.segmenters.base import BackendInfo, Prompt, SegmenterError, SliceImage
from spinalsam.segmenters.bounded import BoundedSegmenter
from spinalsam.segmenters.registry import create_segmenter
from spinalsam.windowing import render

SPACING = (1.0, 1.0, 2.0)  # x, y, z mm


class ThresholdInBox:
    """Bone (> 150 HU) inside the box, limited to the connected pieces under positive points."""

    info = BackendInfo("threshold", "test double")

    def __init__(self) -> None:
        self.image: SliceImage | None = None
        self.prompts: list[Prompt] = []

    def set_image(self, image: SliceImage) -> None:
        self.image = image

    def _bone_in_box(self, prompt: Prompt) -> np.ndarray:
        assert self.image is not None
        self.prompts.append(prompt)
        x0, y0, x1, y1 = prompt.box
        inside = np.zeros(self.image.shape, dtype=bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        return (self.image.pixels > 150) & inside

    def predict(self, prompt: Prompt) -> np.ndarray:
        pieces, _ = ndi.label(self._bone_in_box(prompt))
        keep = {pieces[y, x] for (x, y) in prompt.points} - {0}
        return np.isin(pieces, list(keep))


class AllBoneInBox(ThresholdInBox):
    """A box-only segmenter: every bone pixel in the box, whatever the points say."""

    def predict(self, prompt: Prompt) -> np.ndarray:
        return self._bone_in_box(prompt)


class FailingSegmenter(ThresholdInBox):
    def predict(self, prompt: Prompt) -> np.ndarray:
        raise SegmenterError("model crashed")


def _spine() -> tuple[np.ndarray, np.ndarray]:
    """Three barrel-shaped elliptic 'bodies' of 9 slices, 3-slice soft-tissue discs between."""
    volume = np.full((40, 64, 64), 30.0, dtype=np.float32)
    labels = np.zeros(volume.shape, dtype=np.uint16)
    yy, xx = np.mgrid[:64, :64]
    for k, z0 in enumerate((2, 14, 26), start=1):
        for dz in range(9):
            bulge = 1.0 + 0.25 * np.sin(np.pi * dz / 8)  # endplates small, middle wide
            ry, rx = 9 * bulge, 12 * bulge
            inside = ((yy - 30) / ry) ** 2 + ((xx - 32 + k) / rx) ** 2 <= 1
            labels[z0 + dz][inside] = k
    volume[labels > 0] = 300.0
    return volume, labels


def _run(volume, labels, start, segmenter=None, **kwargs):
    start_mask = labels[start] == labels[start].max()
    return propagate(
        volume, True, SPACING, "axial", start, start_mask, segmenter or ThresholdInBox(), **kwargs
    )


def test_recovers_the_vertebra_and_stops_at_both_discs() -> None:
    volume, labels = _spine()
    result = _run(volume, labels, start=18)
    assert sorted(result.masks) == list(range(14, 23))
    assert result.stopped_up == result.stopped_down == "object vanished"
    predicted = result.to_volume(volume.shape, "axial")
    assert dice(predicted, labels == 2) >= 0.99


def test_prompts_come_from_the_previous_mask() -> None:
    volume, labels = _spine()
    segmenter = ThresholdInBox()
    _run(volume, labels, start=18, segmenter=segmenter, direction="up", max_slices=1)
    (prompt,) = segmenter.prompts
    previous = labels[18] == 2
    ys, xs = np.nonzero(previous)
    x0, y0, x1, y1 = prompt.box
    assert x0 < xs.min() and y0 < ys.min() and x1 > xs.max() and y1 > ys.max()  # enlarged
    assert prompt.labels.tolist() == [1] and previous[prompt.points[0][1], prompt.points[0][0]]
    np.testing.assert_array_equal(prompt.mask_input, previous)


def test_direction_and_slice_limit() -> None:
    volume, labels = _spine()
    up = _run(volume, labels, start=18, direction="up", max_slices=2)
    assert sorted(up.masks) == [18, 19, 20]
    assert up.stopped_up == "slice limit reached"
    assert up.stopped_down == "not propagated downwards"
    top = _run(volume, labels, start=34, direction="up")
    assert top.stopped_up == "object vanished" and max(top.masks) == 34


def test_edge_of_volume() -> None:
    volume, labels = _spine()
    volume, labels = volume[:32], labels[:32]  # the last vertebra (26–34) runs out of the volume
    result = _run(volume, labels, start=29, direction="up")
    assert sorted(result.masks) == [29, 30, 31] and result.stopped_up == "edge of the volume"


def test_stops_when_the_object_fades_into_its_surroundings() -> None:
    class EchoPrior(ThresholdInBox):
        """Returns its prior whatever the slice shows, as a backend finding nothing might."""

        def predict(self, prompt: Prompt) -> np.ndarray:
            return prompt.mask_input

    volume, labels = _spine()
    result = _run(volume, labels, start=22, segmenter=EchoPrior(), direction="up")
    assert sorted(result.masks) == [22]  # slice 23 is disc: the mask there is plain soft tissue
    assert result.stopped_up.startswith("object faded into its surroundings")


def test_stops_when_the_object_is_darker_than_the_bone_it_replaced() -> None:
    """A disc blob in the body's footprint that still stands out from the fat around it."""

    class EchoPrior(ThresholdInBox):
        def predict(self, prompt: Prompt) -> np.ndarray:
            return prompt.mask_input

    volume, labels = _spine()
    volume[23][labels[22] == 2] = 180.0  # contrast 56 % of the body's, mean 60 % of the bone's
    result = _run(volume, labels, start=22, segmenter=EchoPrior(), direction="up")
    assert sorted(result.masks) == [22]
    assert result.stopped_up.startswith("object darker than the bone it replaced")
    rules = PropagationRules(min_mean_fraction=None)
    without = _run(volume, labels, start=22, segmenter=EchoPrior(), direction="up", rules=rules)
    assert sorted(without.masks) == [22, 23]  # then slice 24 (plain soft tissue) fades


def test_stops_when_shape_jumps() -> None:
    volume, labels = _spine()
    yy, xx = np.mgrid[:64, :64]
    volume[20] = np.where((yy - 30) ** 2 + (xx - 34) ** 2 <= 36, 300.0, 30.0)  # shrinks to 1/4
    result = _run(volume, labels, start=18, direction="up")
    assert sorted(result.masks) == [18, 19, 20]  # the remnant inside the body ends it
    np.testing.assert_array_equal(result.masks[20], volume[20] > 150)
    assert result.stopped_up.startswith("shape changed abruptly")
    without_remnant = _run(
        volume, labels, start=18, direction="up", rules=PropagationRules(keep_body_remnant=False)
    )
    assert sorted(without_remnant.masks) == [18, 19]


def test_pieces_that_do_not_continue_from_the_previous_slice_are_dropped() -> None:
    volume, labels = _spine()
    volume[19:22, 17:20, 20:23] = 300.0  # a separate bony piece in the box's corner
    kept = _run(volume, labels, start=18, segmenter=AllBoneInBox(), direction="up")
    assert sorted(kept.masks) == list(range(18, 23))
    assert not any(mask[17:20, 20:23].any() for mask in kept.masks.values())
    loose = _run(
        volume,
        labels,
        start=18,
        segmenter=AllBoneInBox(),
        direction="up",
        rules=PropagationRules(keep_overlapping=False, max_growth_mm=None),
    )
    assert loose.masks[19][17:20, 20:23].all()


def test_a_part_left_out_where_the_body_ends_is_followed_on_its_own() -> None:
    """The body shrinks to its last endplate bone while a posterior bar runs on, now detached."""
    volume, labels = _spine()
    yy, xx = np.mgrid[:64, :64]
    bar = (yy >= 39) & (yy <= 48) & (xx >= 28) & (xx <= 36)  # joined to the body on slice 22
    labels[22][bar] = 2
    volume[22][bar] = volume[23][bar] = 300.0
    remnant = (yy - 30) ** 2 + (xx - 34) ** 2 <= 49  # ends at row 37: a gap above the bar
    volume[23][remnant] = 300.0
    runs = {
        name: _run(volume, labels, start=22, direction="up", max_slices=1, rules=rules)
        for name, rules in (
            ("parts", PropagationRules()),
            (
                "no parts",
                PropagationRules(
                    min_part_fraction=None, arch_beyond_body_mm=None, keep_body_remnant=False
                ),
            ),
        )
    }
    np.testing.assert_array_equal(runs["parts"].masks[23], remnant | bar)
    assert sorted(runs["no parts"].masks) == [22]  # the remnant alone is too abrupt a change
    assert runs["no parts"].stopped_up.startswith("shape changed abruptly")


def test_the_arch_is_followed_alone_beyond_its_body_until_it_meets_other_bone() -> None:
    """Past the body's end a posterior bar runs on, sloping 3 px (mm) per slice: more than the
    growth limit lets a mask move, within one arch step; it then joins a large block of bone."""
    volume, labels = _spine()
    yy, xx = np.mgrid[:64, :64]

    def bar(shift: int) -> np.ndarray:
        return (yy >= 39 + shift) & (yy <= 48 + shift) & (xx >= 28) & (xx <= 36)

    labels[22][bar(0)] = 2
    for z, shift in ((22, 0), (23, 3), (24, 6), (25, 9)):
        volume[z][bar(shift)] = 300.0
    volume[25][(yy >= 40) & (xx >= 24) & (xx <= 40)] = 300.0  # the next vertebra's bone
    arch = _run(volume, labels, start=22, direction="up")
    assert sorted(arch.masks) == [22, 23, 24]
    np.testing.assert_array_equal(arch.masks[23], bar(3))
    assert "the arch, followed alone, met other bone" in arch.stopped_up
    body_only = _run(
        volume, labels, start=22, direction="up", rules=PropagationRules(arch_beyond_body_mm=None)
    )
    assert sorted(body_only.masks) == [22]


def test_the_arch_the_endplate_slice_dropped_is_traced_from_the_slice_before() -> None:
    """The last body slice's mask kept only the body; the arch of the slice before runs on, past
    it (sloping 3 px per slice, detached from the body), to the slice where the body ended."""
    yy, xx = np.mgrid[:64, :64]
    body = (yy - 28) ** 2 + (xx - 32) ** 2 <= 100

    def bar(shift: int) -> np.ndarray:
        return (yy >= 42 + shift) & (yy <= 52 + shift) & (xx >= 30) & (xx <= 34)

    endplate = (yy - 28) ** 2 + (xx - 32) ** 2 <= 36
    pixels = {21: np.where(endplate | bar(3), 300.0, 30.0), 22: np.where(bar(6), 300.0, 30.0)}
    bodies = [(21, endplate), (20, body | bar(0))]  # the last one first
    walk = _ArchWalk(150.0, 3.0, (1.0, 1.0), max_slices=20, endplate_slices=2)
    args = (pixels.__getitem__, 22, walk, PropagationRules())
    traced = _traced_arch(bodies, *args)
    assert traced is not None
    arches, seed = traced
    assert seed >= bar(0).sum() and sorted(arches) == [21, 22]
    np.testing.assert_array_equal(arches[21], bar(3))
    np.testing.assert_array_equal(arches[22], bar(6))
    assert _traced_arch(bodies[:1], *args) is None  # the endplate leads nowhere


def test_where_the_body_faded_the_arch_is_not_taken_from_the_slice_by_the_disc() -> None:
    """The mask on the slice before the disc is the start footprint echoed over a smaller
    endplate; its thin parts touch a decoy of other bone on the disc slice. The arch comes from
    the slice before it (the bar sloping 3 px per slice), not from the echo."""

    class EchoPrior(ThresholdInBox):
        def predict(self, prompt: Prompt) -> np.ndarray:
            return prompt.mask_input

    yy, xx = np.mgrid[:64, :64]
    radius2 = (yy - 28) ** 2 + (xx - 32) ** 2

    def bar(shift: int) -> np.ndarray:
        return (yy >= 42 + shift) & (yy <= 52 + shift) & (xx >= 30) & (xx <= 34)

    decoy = (yy >= 40) & (yy <= 43) & (xx >= 30) & (xx <= 34)  # bone beside the disc
    volume = np.full((25, 64, 64), 30.0, dtype=np.float32)
    volume[20][(radius2 <= 110) | bar(0)] = 300.0
    volume[21][(radius2 <= 100) | bar(3)] = 300.0  # the endplate, a little smaller
    volume[22][bar(6) | decoy] = 300.0  # the disc, with the arch and other bone
    start_mask = (radius2 <= 110) | bar(0)
    result = propagate(volume, True, SPACING, "axial", 20, start_mask, EchoPrior(), direction="up")
    assert result.stopped_up.startswith("object faded into its surroundings")
    assert "the arch, followed alone" in result.stopped_up
    np.testing.assert_array_equal(result.masks[21], start_mask | bar(3))
    np.testing.assert_array_equal(result.masks[22], bar(6))  # not the decoy


def test_growth_per_slice_is_limited() -> None:
    volume, labels = _spine()
    volume[19:23] = np.where(labels[19:23] > 0, 300.0, 200.0)  # bone all around: a leak
    only_growth = PropagationRules(min_contrast_fraction=0.0)
    result = _run(
        volume, labels, start=18, segmenter=AllBoneInBox(), direction="up", rules=only_growth
    )
    assert sorted(result.masks) == [18, 19]
    grown = result.masks[19] & ~result.masks[18]
    depth = ndi.distance_transform_edt(~result.masks[18], sampling=SPACING[1::-1])
    assert grown.any() and depth[grown].max() <= 2.0  # at most max_growth_mm per slice
    assert result.stopped_up.startswith("grew beyond the start object")


def test_an_under_segmented_slice_does_not_cap_the_following_ones() -> None:
    """On pixels coarser than the growth limit the outline cannot grow back by itself."""
    volume, labels = _spine()
    volume[19, 22:29, 36:48] = 30.0  # a bay in one slice's edge (a partial-volume dip)
    never_grow = {"max_growth_mm": 0.5, "min_contrast_fraction": 0.0}
    runs = {
        regrow: _run(
            volume,
            labels,
            start=18,
            direction="up",
            max_slices=2,
            rules=PropagationRules(**never_grow, regrow_within_start=regrow),
        )
        for regrow in (True, False)
    }
    body = labels[20] == 2
    assert not runs[True].masks[19][22:29, 36:48].any()  # the dip itself is followed
    np.testing.assert_array_equal(runs[True].masks[20], body)  # then the outline recovers
    assert (body & ~runs[False].masks[20])[22:29, 36:48].any()  # without: capped for good


def test_cancel_keeps_what_was_done_and_progress_is_reported() -> None:
    volume, labels = _spine()
    cancel = threading.Event()
    calls: list[tuple[int, int]] = []

    def on_progress(done: int, total: int) -> None:
        calls.append((done, total))
        if done == 2:
            cancel.set()

    result = _run(volume, labels, start=18, on_progress=on_progress, cancel=cancel)
    assert sorted(result.masks) == [18, 19, 20]
    assert result.stopped_up == result.stopped_down == "cancelled"
    assert calls[0] == (1, 39) and calls[-1] == (39, 39)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_backend_errors_stop_cleanly() -> None:
    volume, labels = _spine()
    result = _run(volume, labels, start=18, segmenter=FailingSegmenter())
    assert sorted(result.masks) == [18]
    assert result.stopped_up == "segmenter failed: model crashed"


def test_other_planes_write_back_to_the_right_voxels() -> None:
    volume, labels = _spine()
    from spinalsam.planes import take_slice

    start = take_slice(labels, "sagittal", 32) > 0  # all three vertebrae in one sagittal slice
    result = propagate(
        volume,
        True,
        SPACING,
        "sagittal",
        32,
        start,
        ThresholdInBox(),
        rules=PropagationRules(max_area_ratio=3.0),
    )
    predicted = result.to_volume(volume.shape, "sagittal")
    assert dice(predicted, labels > 0) >= 0.9


def test_bad_starts_are_clear_errors() -> None:
    volume, labels = _spine()
    with pytest.raises(PropagationError, match="segment the object"):
        propagate(volume, True, SPACING, "axial", 18, np.zeros((64, 64), bool), ThresholdInBox())
    with pytest.raises(PropagationError, match="outside the volume"):
        propagate(volume, True, SPACING, "axial", 99, labels[18] > 0, ThresholdInBox())
    with pytest.raises(PropagationError, match="does not fit"):
        propagate(volume, True, SPACING, "axial", 18, np.ones((5, 5), bool), ThresholdInBox())
    with pytest.raises(PropagationError, match="direction"):
        _run(volume, labels, start=18, direction="sideways")
    with pytest.raises(PropagationError, match="empty"):
        prompt_from_mask(np.zeros((4, 4), bool))


def test_embedded_default_backend_segments_each_phantom_vertebra() -> None:
    """The real default backend, one box per vertebra: whole vertebra, stopped at both discs."""
    volume, labels = make_spine_phantom(shape=(40, 96, 96), n_vertebrae=3)
    for k in (1, 2, 3):
        slices = np.flatnonzero((labels == k).any(axis=(1, 2)))
        middle = int(slices.mean())
        ys, xs = np.nonzero(labels[middle] == k)
        segmenter = create_segmenter("default")
        pixels = volume[middle]
        segmenter.set_image(SliceImage(pixels, render(pixels, True), True, (1.0, 1.0)))
        box = np.array([xs.min() - 3, ys.min() - 3, xs.max() + 3, ys.max() + 3])
        start = segmenter.predict(Prompt(box=box))
        result = propagate(volume, True, (1.0, 1.0, 2.0), "axial", middle, start, segmenter)
        assert dice(result.to_volume(volume.shape, "axial"), labels == k) >= 0.95
        assert slices.min() - 1 <= min(result.masks) and max(result.masks) <= slices.max() + 1


def test_the_smallest_object_is_set_in_square_millimetres() -> None:
    """The same 12-pixel rod: 48 mm² on 2 mm pixels (kept), 12 mm² on 1 mm pixels (vanished)."""
    volume = np.full((12, 32, 32), 30.0, dtype=np.float32)
    volume[2:10, 14:17, 14:18] = 300.0  # 3 × 4 pixels on eight slices
    start = volume[6] > 150

    def run(spacing, rules=None):
        rules = rules or PropagationRules()
        return propagate(volume, True, spacing, "axial", 6, start, ThresholdInBox(), rules=rules)

    assert sorted(run((2.0, 2.0, 2.0)).masks) == list(range(2, 10))
    small = run((1.0, 1.0, 2.0))
    assert sorted(small.masks) == [6] and small.stopped_up == "object vanished"
    in_pixels = run((1.0, 1.0, 2.0), PropagationRules(min_area_mm2=None))  # 10 px: kept
    assert sorted(in_pixels.masks) == list(range(2, 10))


class FollowsPrior(ThresholdInBox):
    """Declares that it follows the prior mask, as the learned default does: its answer is the
    bone joined to, or touching, the previous slice's mask, wherever it moved."""

    follows_prior = True

    def predict(self, prompt: Prompt) -> np.ndarray:
        assert self.image is not None and prompt.mask_input is not None
        self.prompts.append(prompt)
        pieces, _ = ndi.label(self.image.pixels > 150)
        touching = set(np.unique(pieces[ndi.binary_dilation(prompt.mask_input)])) - {0}
        return np.isin(pieces, list(touching))


def _sloping_process() -> tuple[np.ndarray, np.ndarray]:
    """A 24 × 10 px body with a 3 px process that moves 3 px (3 mm) per slice, as a spinous
    process slopes away from its body at 3 mm slices; more than the 2 mm growth clip allows."""
    volume = np.full((12, 64, 64), 30.0, dtype=np.float32)
    labels = np.zeros(volume.shape, dtype=np.uint16)
    for z in range(2, 10):
        labels[z, 20:30, 16:40] = 1  # the body, the same on every slice
        x = 14 + 3 * (z - 2)
        labels[z, 30:44, x : x + 3] = 1  # the process, moving sideways slice after slice
    volume[labels > 0] = 300.0
    return volume, labels


def test_the_segmenter_declares_whether_its_answer_is_clipped() -> None:
    assert rules_for(ThresholdInBox()) == PropagationRules()
    assert rules_for(FollowsPrior()) == PRIOR_FOLLOWING_RULES
    assert rules_for(BoundedSegmenter(FollowsPrior(), 512 * 512)) == PRIOR_FOLLOWING_RULES
    assert rules_for(create_segmenter("default")) == PRIOR_FOLLOWING_RULES
    assert rules_for(create_segmenter("classical")) == PropagationRules()
    assert PRIOR_FOLLOWING_RULES.max_growth_mm is None
    assert PRIOR_FOLLOWING_RULES.min_part_fraction is None
    assert PRIOR_FOLLOWING_RULES.arch_beyond_body_mm is None


def test_a_prior_following_segmenter_keeps_a_process_that_moves_more_than_the_clip() -> None:
    volume, labels = _sloping_process()
    start = labels[5] == 1
    spacing = (1.0, 1.0, 3.0)
    runs = {
        name: propagate(volume, True, spacing, "axial", 5, start, segmenter)
        for name, segmenter in (("clipped", AllBoneInBox()), ("trusted", FollowsPrior()))
    }
    trusted = runs["trusted"].to_volume(volume.shape, "axial")
    assert sorted(runs["trusted"].masks) == list(range(2, 10))
    assert dice(trusted, labels == 1) == pytest.approx(1.0)
    clipped = runs["clipped"].to_volume(volume.shape, "axial")
    process = labels[:, 30:44] == 1
    lost = process & ~clipped[:, 30:44]
    assert lost.sum() > 0.4 * process.sum()  # the growth clip cuts the moving process off
    # explicit rules still win over the segmenter's own
    forced = propagate(
        volume, True, spacing, "axial", 5, start, FollowsPrior(), rules=PropagationRules()
    )
    np.testing.assert_array_equal(forced.to_volume(volume.shape, "axial"), clipped)


def test_a_prior_following_segmenter_stops_where_it_outgrows_the_start_object() -> None:
    """The area cap is the defaults' (× 1.5 the start slice, the largest cross-section): a
    neighbour that joins in gradually is the sagittal check's job (tests/test_crosscheck.py),
    a mask half again as large as the start is not this object any more."""
    volume = np.full((10, 64, 64), 30.0, dtype=np.float32)
    volume[:, 20:30, 20:30] = 300.0  # 100 px on every slice
    volume[6:, 20:30, 30:36] = 300.0  # from slice 6 on, 160 px: a neighbour joins in
    start = volume[3] > 150
    assert PRIOR_FOLLOWING_RULES.max_area_vs_start == PropagationRules().max_area_vs_start
    trusted = propagate(volume, True, (1.0, 1.0, 2.0), "axial", 3, start, FollowsPrior())
    assert max(trusted.masks) == 5
    assert trusted.stopped_up.startswith("grew beyond the start object (area ×1.60")


def test_where_the_body_ends_a_prior_following_segmenter_follows_the_arch_on() -> None:
    """Past the body only the arch is left: a third of the last mask and inside it. The IoU test
    calls that a jump; for a segmenter that follows its prior it is the vertebra going on."""
    volume = np.full((12, 64, 64), 30.0, dtype=np.float32)
    labels = np.zeros(volume.shape, dtype=np.uint16)
    labels[2:10, 36:48, 26:38] = 1  # the arch, on every slice
    labels[2:6, 16:36, 20:44] = 1  # the body, ending after slice 5
    volume[labels > 0] = 300.0
    start = labels[4] == 1

    def run(rules: PropagationRules):
        return propagate(
            volume, True, (1.0, 1.0, 2.0), "axial", 4, start, FollowsPrior(), rules=rules
        )

    runs = {
        "iou": run(replace(PRIOR_FOLLOWING_RULES, min_inside_previous=None)),
        "inside": run(PRIOR_FOLLOWING_RULES),
    }
    assert runs["iou"].stopped_up.startswith("shape changed abruptly (IoU 0.23")
    assert max(runs["iou"].masks) <= 6  # (the remnant rule keeps the one slice it stopped on)
    assert sorted(runs["inside"].masks) == list(range(2, 10))
    assert dice(runs["inside"].to_volume(volume.shape, "axial"), labels == 1) == pytest.approx(1.0)


def test_a_prior_following_segmenter_is_not_given_the_deepest_points() -> None:
    """Where a body ends its deepest pixel lies over the disc or the next body on the next
    slice; a point there would ask a prior-following network for that instead."""
    volume, labels = _spine()
    segmenter = FollowsPrior()
    _run(volume, labels, start=18, segmenter=segmenter, direction="up", max_slices=1)
    prompt, _ = segmenter.prompts  # slice 19's, then the sagittal check's read
    assert len(prompt.points) == 0 and prompt.box is not None
    np.testing.assert_array_equal(prompt.mask_input, labels[18] == 2)
