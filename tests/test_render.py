"""The image panel's overlay: each label tinted and outlined in its colour over the gray slice."""

from __future__ import annotations

import numpy as np
import pytest

from spinalsam.labels import LABEL_PALETTE
from spinalsam.render import RenderError, overlay


def test_overlay_tints_and_outlines_each_label() -> None:
    gray = np.full((12, 12), 100, np.uint8)
    labels = np.zeros((12, 12), np.int64)
    labels[2:7, 2:7] = 1
    labels[8:11, 8:11] = 3
    out = overlay(gray, labels, alpha=0.5)
    assert out.shape == (12, 12, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [100, 100, 100]  # background untouched
    assert out[2, 2].tolist() == list(LABEL_PALETTE[0])  # contour: full colour
    expected_fill = np.round(0.5 * 100 + 0.5 * np.array(LABEL_PALETTE[0]))
    assert out[4, 4].tolist() == expected_fill.tolist()  # interior: blended
    assert out[8, 8].tolist() == list(LABEL_PALETTE[2])


def test_overlay_custom_colours_and_zero_alpha() -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    labels = np.zeros((8, 8), np.uint8)
    labels[1:7, 1:7] = 5
    out = overlay(gray, labels, colors={5: (0, 0, 255)}, alpha=0.0)
    assert out[4, 4].tolist() == [gray[4, 4]] * 3  # alpha 0: interior stays gray
    assert out[1, 1].tolist() == [0, 0, 255]  # but the outline is always drawn


def test_overlay_rejects_mismatched_shapes() -> None:
    with pytest.raises(RenderError, match="differ in size"):
        overlay(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.int64))
    with pytest.raises(RenderError, match="between 0 and 1"):
        overlay(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.int64), alpha=2)


def test_overlay_refuses_labels_that_are_not_ids() -> None:
    with pytest.raises(RenderError, match="whole numbers"):
        overlay(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32))


def test_overlay_outlines_labels_at_the_image_edge_and_where_two_labels_touch() -> None:
    """The overlay is drawn in the labels' bounding box only; its outline must still be the
    whole slice's: none along the image's own edge, one on both sides where labels meet."""
    gray = np.full((10, 10), 50, np.uint8)
    labels = np.zeros((10, 10), np.int64)
    labels[0:5, 0:4] = 1  # touches the top and left edges
    labels[0:5, 4:7] = 2  # touches label 1
    out = overlay(gray, labels, alpha=0.5)
    c1, c2 = (list(LABEL_PALETTE[i]) for i in (0, 1))
    fill1 = np.round(0.5 * 50 + 0.5 * np.array(LABEL_PALETTE[0])).tolist()
    assert out[0, 1].tolist() == fill1  # on the image's edge: interior, not outline
    assert out[4, 1].tolist() == c1  # the lower side borders the background
    assert out[2, 3].tolist() == c1 and out[2, 4].tolist() == c2  # both sides of the seam
    assert out[2, 7].tolist() == [50, 50, 50] and out[9, 9].tolist() == [50, 50, 50]
    assert np.array_equal(overlay(gray, np.zeros_like(labels)), np.repeat(gray[..., None], 3, 2))
