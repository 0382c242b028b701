"""The embedded default: a small prompt-conditioned U-Net, run with ONNX Runtime (no torch).

One network answers boxes, clicks (positive and negative), and a prior mask (propagation and
corrections). It sees a fixed-size crop around the prompt (crops.py): for a box, the box's longer
side × `box_context`, square in mm; for clicks alone (a click does not say how large the object
is), `point_mm` across when the spacing is known, enlarged while the answer runs into the crop's
border, and without spacing the smallest of several sizes at which the answer stops changing,
then read once more in the box of that first answer, with the answer as the prior — the same
view a drawn box gives — and only the piece of that answer holding the click is kept
(neighbours across a disc often come along). The weights, their training configuration, data
hashes and validation numbers live in weights/ (see `python -m spinalsam.train_default`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from spinalsam.segmenters.base import BackendInfo, Prompt, SegmenterError, SliceImage
from spinalsam.segmenters.crops import Frame, box_frame, encode, gray_of, paste, point_frame
from spinalsam.segmenters.morphology import components_touching, mask_bounds

__all__ = [
    "DEFAULT_WEIGHTS",
    "LearnedConfig",
    "LearnedSegmenter",
    "boxed_pieces",
    "clicked_pieces",
    "describe_weights",
    "predict_mask",
]

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "default.onnx"

# (N, CHANNELS, S, S) float32 inputs → (N, 1, S, S) float32 logits
Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LearnedConfig:
    """How prompts become crops; stored beside the weights, since training used the same."""

    size: int = 64  # crop side in network pixels
    box_context: float = 1.5  # crop side / the box's longer side
    point_mm: float = 110.0  # first crop side for clicks alone, with spacing (a vertebra + margin)
    point_fraction: float = 0.3  # the same without spacing, as a fraction of the shorter side
    enlarge: float = 1.6  # crop growth when the answer reaches the crop's border
    max_enlarge: int = 3
    # A box crop magnifies slice pixels at most this much (crop pixels per slice pixel): on
    # coarse (3 mm) slices the crop then shows more context instead of a blur the network never
    # saw. Chosen on 3 mm copies of the development volumes (+0.012 box Dice there); no change
    # on the held-out 3 mm volume (docs/learned.md, "Box reads").
    max_magnification: float = 3.0
    # Clicks without spacing (8-bit renders): the crop sides read in turn, as fractions of the
    # shorter image side (`scan_steps` from `scan_min` to `scan_max`, geometric), and how alike
    # two neighbouring sizes' answers must be (IoU) for the smaller to be taken as the object's
    # scale (docs/learned.md, "Clicks on renders without spacing").
    scan_min: float = 0.1
    scan_max: float = 1.6
    scan_steps: int = 7
    scan_agreement: float = 0.8

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _logits(
    run: Runner, gray: np.ndarray, frame: Frame, config: LearnedConfig, **prompt: Any
) -> np.ndarray:
    """The crop's logits."""
    inputs = encode(gray, frame, config.size, **prompt)
    return np.asarray(run(inputs[None]), dtype=np.float32).reshape(config.size, config.size)


def _mask(logits: np.ndarray, frame: Frame, shape: tuple[int, int]) -> np.ndarray:
    """The slice mask the crop's logits give (resampling them is a click's third-largest cost,
    so a click pastes only the reads it keeps)."""
    region_logits, region = paste(logits, frame, shape)
    mask = np.zeros(shape, dtype=bool)
    mask[region] = region_logits > 0
    return mask


def clicked_pieces(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The connected pieces of `mask` that hold a click; for a click outside the mask, the
    piece nearest to it.

    A click names one piece (the evaluation protocol's unit too): the box read of a click's
    first answer often returns the clicked vertebra plus pieces of its neighbours across the
    discs, separate from it. Keeping the clicked piece alone raised click Dice on the dev
    sources from 0.834 to 0.904 (docs/learned.md), at the cost of one labelling of the mask's
    bounding box.
    """
    if not mask.any() or len(points) == 0:
        return mask
    x0, y0, x1, y1 = mask_bounds(mask)
    pieces, _ = ndi.label(mask[y0 : y1 + 1, x0 : x1 + 1])
    ys, xs = np.nonzero(pieces)
    named = np.zeros(pieces.shape, dtype=bool)
    for x, y in np.asarray(points, dtype=float) - (x0, y0):
        nearest = np.argmin((xs - x) ** 2 + (ys - y) ** 2)  # the click's own pixel when inside
        named[ys[nearest], xs[nearest]] = True
    out = np.zeros_like(mask)
    out[y0 : y1 + 1, x0 : x1 + 1] = components_touching(pieces, named)
    return out


def boxed_pieces(mask: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The connected pieces of `mask` that lie at least half inside the prompt's box.

    A box says where the object is; the box read sometimes adds a separate piece of a
    neighbour next to it (the body across the canal from a boxed arch on a sagittal slice, a
    rib head beside a vertebra). A piece mostly outside the box is not what was boxed. Raised
    box Dice on the development sources by 0.004 (docs/learned.md), and is mirror-symmetric:
    the box's inside is the pixels the box channel marks.
    """
    if not mask.any():
        return mask
    bx0, by0, bx1, by1 = mask_bounds(mask)  # label the mask's bounding box only (cheap)
    pieces, n = ndi.label(mask[by0 : by1 + 1, bx0 : bx1 + 1])
    if n <= 1:
        return mask
    x0, y0, x1, y1 = (float(v) for v in box)
    inside = np.zeros(pieces.shape, dtype=bool)
    inside[
        max(0, int(np.ceil(y0 - 0.5)) - by0) : max(0, int(np.floor(y1 + 0.5)) + 1 - by0),
        max(0, int(np.ceil(x0 - 0.5)) - bx0) : max(0, int(np.floor(x1 + 0.5)) + 1 - bx0),
    ] = True
    area = np.bincount(pieces.ravel(), minlength=n + 1)
    within = np.bincount(pieces.ravel(), weights=inside.ravel(), minlength=n + 1)
    keep = within >= 0.5 * area
    keep[0] = False
    out = np.zeros_like(mask)
    out[by0 : by1 + 1, bx0 : bx1 + 1] = keep[pieces]
    return out


def _box_frame(box: np.ndarray, image: SliceImage, config: LearnedConfig) -> Frame:
    """The crop a box is read in (a drawn box, a prior's box, a click's first answer's box)."""
    return box_frame(
        box, image.spacing, config.box_context, min_pixels=config.size / config.max_magnification
    )


def _canonical_axes(gray: np.ndarray) -> tuple[int, ...]:
    """The axes (of a (C, H, W) crop) to mirror so that the centroid of the 2-D `gray`'s
    deviation from its mean lies at or below and right of the centre; a mirrored crop gets the
    mirrored axes."""
    mass = np.abs(gray - gray.mean())  # structure, whatever the crop's overall brightness
    rows = np.arange(gray.shape[0]) - (gray.shape[0] - 1) / 2
    cols = np.arange(gray.shape[1]) - (gray.shape[1] - 1) / 2
    off_centre = (float(rows @ mass.sum(axis=1)), float(cols @ mass.sum(axis=0)))
    return tuple(axis for axis, offset in zip((1, 2), off_centre, strict=True) if offset < 0)


def _inside_slice(frame: Frame, size: int, shape: tuple[int, int]) -> np.ndarray:
    """The crop pixels that lie on the slice (a crop near an edge reaches into padding)."""
    xs, ys = frame.grid(size)
    return (xs >= 0) & (xs <= shape[1] - 1) & (ys >= 0) & (ys <= shape[0] - 1)


def _reaches_border(answer: np.ndarray) -> bool:
    """The (size, size) answer reaches the crop's two-pixel border band."""
    band = np.ones(answer.shape, dtype=bool)
    band[2:-2, 2:-2] = False
    return bool(np.any(answer & band))


def _touches_border(logits: np.ndarray, frame: Frame, shape: tuple[int, int]) -> bool:
    """The answer reaches a crop border that lies inside the slice (so a larger crop can help)."""
    return _reaches_border((logits > 0) & _inside_slice(frame, logits.shape[-1], shape))


def _grown_read(
    run: Runner,
    gray: np.ndarray,
    center: tuple[float, float],
    spacing: tuple[float, float],
    config: LearnedConfig,
    channels: dict[str, Any],
) -> np.ndarray:
    """The clicked object's first answer on a slice with spacing: read `point_mm` across,
    enlarged while the answer runs into the crop's border."""
    shape = gray.shape
    side = config.point_mm
    limit = 2.0 * max(shape[0] * spacing[1], shape[1] * spacing[0])
    for attempt in range(config.max_enlarge + 1):
        frame = point_frame(center, side, spacing)
        logits = _logits(run, gray, frame, config, **channels)
        if attempt == config.max_enlarge or side * config.enlarge > limit:
            break
        if not _touches_border(logits, frame, shape):
            break
        side *= config.enlarge
    return _mask(logits, frame, shape)


@dataclass(frozen=True)
class _Read:
    """One crop of a click's scan: its logits, frame, and the clicked piece in crop pixels."""

    logits: np.ndarray
    frame: Frame
    piece: np.ndarray  # (size, size) bool: the clicked piece, inside the slice only
    within: bool  # there is an answer and it does not reach a crop border inside the slice


def _scan_read(
    run: Runner, gray: np.ndarray, frame: Frame, config: LearnedConfig, channels: dict[str, Any]
) -> _Read:
    """One size of the scan, its clicked piece kept in crop pixels: pasting every size onto
    the slice cost ~15 ms of a click on a 512² slice."""
    logits = _logits(run, gray, frame, config, **channels)
    answer = (logits > 0) & _inside_slice(frame, config.size, gray.shape)
    piece = clicked_pieces(answer, frame.to_crop(channels["positive"], config.size))
    within = bool(answer.any()) and not _reaches_border(answer)
    return _Read(logits, frame, piece, within)


def _agreement(small: _Read, large: _Read) -> float:
    """IoU of two reads' clicked pieces, in slice pixels; both crops share their centre, so
    the larger crop's piece is looked up at the smaller crop's pixels (nearest)."""
    size = small.piece.shape[0]
    step_small, step_large = small.frame.step(size), large.frame.step(size)
    ratio = step_small / step_large
    index = np.floor((np.arange(size) + 0.5 - size / 2) * ratio + size / 2).astype(int)
    overlap = np.count_nonzero(small.piece & large.piece[np.ix_(index, index)])
    pixel_small, pixel_large = step_small**2, step_large**2
    inter = overlap * pixel_small
    union = (
        np.count_nonzero(small.piece) * pixel_small
        + np.count_nonzero(large.piece) * pixel_large
        - inter
    )
    return float(inter / union) if union > 0 else 0.0


def _scanned_read(
    run: Runner,
    gray: np.ndarray,
    center: tuple[float, float],
    config: LearnedConfig,
    channels: dict[str, Any],
) -> np.ndarray:
    """The clicked object's first answer on a slice without spacing, read at its own scale.

    Without spacing nothing says how large a vertebra is in pixels: it may fill the picture
    (a zoomed render) or a tenth of it, and a crop inside the object returns a speck. So the
    click is read at growing crop sizes (`scan_*`, fractions of the shorter side) until two
    neighbouring sizes agree: the smaller one's clicked piece lies within its crop and matches
    the larger one's (IoU ≥ `scan_agreement`). A speck changes as the crop grows, the object
    does not (scale-space stability). Where no two sizes agree, the smallest size from
    `point_fraction` whose answer lies within its crop is taken (the largest if none does).
    Pieces are compared in crop pixels, so only the chosen read is pasted onto the slice.
    On renders of the development sources at eight zooms, click Dice went 0.850 → 0.860; on
    held-out sources 0.755 → 0.762 (docs/learned.md, "Clicks on renders without spacing").
    """
    sides = min(gray.shape) * np.geomspace(config.scan_min, config.scan_max, config.scan_steps)
    reads: list[_Read] = []

    def read(i: int) -> _Read:
        while len(reads) <= i:
            frame = point_frame(center, sides[len(reads)], None)
            reads.append(_scan_read(run, gray, frame, config, channels))
        return reads[i]

    chosen = None
    for i in range(len(sides) - 1):
        if read(i).within and _agreement(read(i), read(i + 1)) >= config.scan_agreement:
            chosen = read(i)
            break
    if chosen is None:
        fallback = [
            i for i, side in enumerate(sides) if side >= config.point_fraction * min(gray.shape)
        ]
        chosen = read(next((i for i in fallback if read(i).within), len(sides) - 1))
    return _mask(chosen.logits, chosen.frame, gray.shape)


def predict_mask(
    run: Runner,
    image: SliceImage,
    prompt: Prompt,
    config: LearnedConfig,
    final: Runner | None = None,
) -> np.ndarray:
    """The (H, W) boolean mask for one object's prompt.

    `final` (default: `run`) reads the crop the answer comes from; `run` alone probes how large
    a clicked object is, so a costlier, more exact runner can be spent where it counts. Clicks
    on a slice without spacing spend that time on scanning sizes, so `run` reads their answer.
    """
    final = final or run
    gray = gray_of(image.pixels, image.is_hu)
    shape = gray.shape
    points = np.asarray(prompt.points, dtype=float).reshape(-1, 2)
    labels = np.asarray(prompt.labels).reshape(-1)
    positive, negative = points[labels == 1], points[labels == 0]
    prior = prompt.mask_input
    if prior is not None:
        prior = np.asarray(prior, dtype=bool)
        if prior.shape != shape or not prior.any():
            prior = None
    box = None if prompt.box is None else np.asarray(prompt.box, dtype=float)
    boxed = box is not None  # a drawn box, or the previous mask's box in propagation
    if box is None and prior is not None:  # a prior alone: its box, as propagation gives
        box = np.array(mask_bounds(prior), dtype=float)
    if box is None and len(positive) == 0:
        raise SegmenterError("add a positive click or a box")
    channels = {"positive": positive, "negative": negative, "prior": prior}
    if box is not None:
        if box[2] < box[0] or box[3] < box[1]:
            raise SegmenterError("the box is empty")
        frame = _box_frame(box, image, config)
        answer = _mask(_logits(final, gray, frame, config, box=box, **channels), frame, shape)
        return boxed_pieces(answer, box) if boxed else answer
    center = tuple(positive.mean(axis=0))
    if image.spacing is None:
        mask = _scanned_read(run, gray, center, config, channels)
        final = run  # the scan spent the time of the averaged read
    else:
        mask = _grown_read(run, gray, center, image.spacing, config, channels)
    if not mask.any():
        return mask
    coarse = np.array(mask_bounds(mask), dtype=float)
    frame = _box_frame(coarse, image, config)
    clicks = {"positive": positive, "negative": negative, "prior": mask}
    answer = _mask(_logits(final, gray, frame, config, box=coarse, **clicks), frame, shape)
    return clicked_pieces(answer, positive)


@lru_cache(maxsize=4)  # one read-only session per weights file, shared: run() is thread-safe
def _session(path: str) -> tuple[Any, LearnedConfig]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    meta_path = Path(path).with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return session, LearnedConfig.from_json(meta.get("inference", {}))


def describe_weights(path: Path = DEFAULT_WEIGHTS) -> str:
    """What `check_parameters` reports: the file's hash checked against the one recorded at
    training, so a corrupted or swapped weights file is visible before anyone trusts a mask."""
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    actual = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    expected = meta.get("onnx_sha256", "not recorded")
    verdict = "matches" if actual == expected else "**does not match**"
    trained = ", ".join(meta.get("trained_on", [])) or "unknown sources"
    return (
        f"Embedded default: learned U-Net, {meta.get('parameters', 'an unknown number of')} "
        "parameters, "
        f"`{path.name}` sha256 {actual[:16]}… ({verdict} the recorded {str(expected)[:16]}…); "
        f"trained on {trained} ({meta.get('device', 'unknown device')})."
    )


class LearnedSegmenter:
    """The Segmenter interface over `predict_mask` with the committed ONNX weights."""

    info = BackendInfo(
        name="learned",
        description="Learned prompt-conditioned U-Net (boxes, clicks, prior mask), ONNX Runtime",
    )
    # Trained on neighbouring slices' masks as the prior: propagation trusts its answer rather
    # than clipping it (propagation.rules_for).
    follows_prior = True

    def __init__(self, weights: str | Path = DEFAULT_WEIGHTS) -> None:
        path = Path(weights)
        if not path.is_file():
            raise SegmenterError(f"the learned segmenter's weights are missing: {path}")
        self._session, self.config = _session(str(path.resolve()))
        self._input = self._session.get_inputs()[0].name
        self._image: SliceImage | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> LearnedSegmenter:
        """Gradio deep-copies each new session's state; an ONNX Runtime session cannot be
        copied, and need not be: one is shared by every user (its `run` is thread-safe)."""
        twin = copy.copy(self)
        twin._image = None
        return twin

    def _probe(self, inputs: np.ndarray) -> np.ndarray:
        """One read of each crop in a canonical mirror image: cheap like a plain read, and as
        independent of how the scan is stored as the averaged one.

        The click path's first reads only size the object (its box is then read averaged), but
        a plain read sized it differently on a mirrored slice and the answer changed by
        0.02–0.08 Dice on average. Each crop is mirrored so that the centre of mass of its
        intensity's deviation from the mean lies down-right of the crop's centre: a mirrored
        crop maps to the same canonical crop, at a quarter of the averaged read's cost.
        """
        x = inputs.astype(np.float32)
        flips = [_canonical_axes(crop[0]) for crop in x]
        canonical = np.stack([np.flip(crop, axes) for crop, axes in zip(x, flips, strict=True)])
        out = self._session.run(None, {self._input: canonical})[0]
        return np.stack([np.flip(o, axes) for o, axes in zip(out, flips, strict=True)])

    def _forward(self, inputs: np.ndarray) -> np.ndarray:
        """Logits averaged over the crop's four mirror images, in one batch.

        A convolutional network is not mirror-symmetric by itself: trained with flips it still
        answered a mirrored slice up to 0.1 Dice differently. Averaging the logits of the
        mirrored inputs makes the answer the same whichever way a scan is stored or shown, for
        the price of a 4× batch on a 64² crop (a few milliseconds).
        """
        x = inputs.astype(np.float32)
        flips = (x, x[..., ::-1], x[..., ::-1, :], x[..., ::-1, ::-1])
        out = self._session.run(None, {self._input: np.concatenate(flips)})[0]
        n = len(x)
        parts = [out[i * n : (i + 1) * n] for i in range(4)]
        return (
            parts[0] + parts[1][..., ::-1] + parts[2][..., ::-1, :] + parts[3][..., ::-1, ::-1]
        ) / 4

    def set_image(self, image: SliceImage) -> None:
        self._image = image

    def predict(self, prompt: Prompt) -> np.ndarray:
        if self._image is None:
            raise SegmenterError("no slice is loaded")
        return predict_mask(self._probe, self._image, prompt, self.config, final=self._forward)
