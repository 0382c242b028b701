"""Windowing: presets, the linear HU → uint8 map, pass-through of 8-bit renders, validation."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest

from spinalsam.ops import WindowPreset
from spinalsam.windowing import (
    DEFAULT_PRESET,
    PRESETS,
    Window,
    WindowError,
    apply_window,
    render,
    window_from,
)


def test_presets_are_exactly_the_protocol_names() -> None:
    assert set(PRESETS) == {"bone", "spine", "soft_tissue", "lung", "brain"}
    assert set(PRESETS) == set(get_args(WindowPreset))  # what set_window may ask for
    assert all(w.width > 0 for w in PRESETS.values())
    with pytest.raises(TypeError):
        PRESETS["bone"] = Window(0, 1)  # type: ignore[index]


def test_apply_window_is_linear_and_clipped() -> None:
    hu = np.array([-1000, -50, 0, 25, 50, 3000, np.nan], dtype=np.float32)
    out = apply_window(hu, Window(level=0, width=100))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 191, 255, 255, 0]


def test_apply_window_keeps_shape() -> None:
    assert apply_window(np.zeros((3, 4), np.int16), PRESETS["lung"]).shape == (3, 4)


def test_bone_shows_bone_bright_and_air_black() -> None:
    out = apply_window(np.array([-1000.0, 40.0, 1000.0]), PRESETS["bone"])
    assert out[0] == 0 and 0 < out[1] < out[2]


def test_render_passes_8bit_renders_through() -> None:
    pixels = np.array([[0.0, 17.0, 254.6], [300.0, -4.0, 128.0]], dtype=np.float32)
    out = render(pixels, is_hu=False, window=PRESETS["brain"])  # window ignored for renders
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 17, 254], [255, 0, 128]]


def test_render_hu_defaults_to_spine() -> None:
    hu = np.linspace(-1200, 2000, 64, dtype=np.float32).reshape(8, 8)
    assert DEFAULT_PRESET == "spine"
    np.testing.assert_array_equal(render(hu, is_hu=True), apply_window(hu, PRESETS["spine"]))
    np.testing.assert_array_equal(
        render(hu, is_hu=True, window=PRESETS["lung"]), apply_window(hu, PRESETS["lung"])
    )


def test_window_from_presets_and_overrides() -> None:
    assert window_from("lung") == PRESETS["lung"]
    assert window_from() == PRESETS[DEFAULT_PRESET]
    assert window_from(None, level=100, width=500) == Window(100.0, 500.0)
    assert window_from("bone", width=1000) == Window(PRESETS["bone"].level, 1000.0)
    assert window_from("brain", level="35") == Window(35.0, PRESETS["brain"].width)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "liver"}, r"Unknown window preset 'liver'.*bone"),
        ({"width": 0}, r"width must be a positive number"),
        ({"width": -10}, r"width must be a positive number"),
        ({"width": float("inf")}, r"width must be a number"),
        ({"level": float("nan")}, r"level must be a number"),
        ({"level": "high"}, r"level must be a number.*'high'"),
    ],
)
def test_window_from_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        window_from(**kwargs)
