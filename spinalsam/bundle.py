"""A whole session in one file (images, geometry, prompts, masks, metrics) to reopen elsewhere.

The format is a plain `.npz` read with `allow_pickle=False` plus one JSON string, so opening a
bundle from a stranger can never execute code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from spinalsam.io import CTImage
from spinalsam.labels import LabelSet
from spinalsam.prompts import PromptSet
from spinalsam.session import Session, SessionError
from spinalsam.windowing import Window

__all__ = ["BUNDLE_VERSION", "load_bundle", "save_bundle"]

BUNDLE_VERSION = 1
MAX_BUNDLE_BYTES = 2 * 1024**3


def save_bundle(session: Session, folder: Path) -> Path:
    if not session.has_image:
        raise SessionError("Nothing to save yet: open an image first.")
    arrays: dict[str, np.ndarray] = {}
    images = []
    for i, img in enumerate(session.images):
        arrays[f"volume_{i}"] = img.ct.volume
        arrays[f"labels_{i}"] = img.labels
        images.append(
            {
                "name": img.ct.name,
                "spacing": img.ct.spacing,
                "origin": img.ct.origin,
                "direction": img.ct.direction,
                "is_hu": img.ct.is_hu,
                "source_orientation": img.ct.source_orientation,
                "plane": img.plane,
                "index": img.index,
                "prompts": [
                    {"plane": plane, "index": index, **prompts.to_json()}
                    for (plane, index), prompts in img.prompts.items()
                    if not prompts.is_empty
                ],
            }
        )
    meta = {
        "version": BUNDLE_VERSION,
        "position": session.position,
        "window": list(session.window) if session.window else None,
        "active_label": session.active_label,
        "labels": [[i, name] for i, name in session.label_set.entries],
        "metrics": session.last_stats,
        "images": images,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    path = folder / "spinalsam_session.npz"
    np.savez_compressed(path, **arrays)
    return path


def load_bundle(session: Session, path: Path) -> str:
    """Replace the session's state by the bundle's; on any problem the session is unchanged."""
    if path.stat().st_size > MAX_BUNDLE_BYTES:
        raise SessionError("That bundle is larger than 2 GB.")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("version") != BUNDLE_VERSION:
                raise SessionError(f"Unsupported bundle version {meta.get('version')!r}.")
            images = [_image(data, i, m) for i, m in enumerate(meta["images"])]
    except SessionError:
        raise
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        zipfile.BadZipFile,
        json.JSONDecodeError,
    ) as exc:
        raise SessionError(f"This is not a valid SpinalSAM session bundle ({exc}).") from exc
    if not images:
        raise SessionError("The bundle holds no image.")
    session.restore(images, int(meta.get("position", 0)))
    session.window = Window(*meta["window"]) if meta.get("window") else None
    session.active_label = int(meta.get("active_label", 1))
    session.label_set = LabelSet(tuple((int(i), str(n)) for i, n in meta.get("labels", [])))
    session.last_stats = {str(k): float(v) for k, v in meta.get("metrics", {}).items()}
    return f"Reopened a saved session with {len(images)} image(s): {images[0][0].name}."


def _image(data: np.lib.npyio.NpzFile, i: int, m: dict) -> tuple[CTImage, np.ndarray, dict]:
    volume = np.asarray(data[f"volume_{i}"], dtype=np.float32)
    labels = np.asarray(data[f"labels_{i}"])
    if volume.ndim != 3 or labels.shape != volume.shape:
        raise ValueError("image and label arrays do not match")
    ct = CTImage(
        volume=volume,
        spacing=tuple(m["spacing"]) if m.get("spacing") else None,
        origin=tuple(m["origin"]),
        direction=tuple(m["direction"]),
        is_hu=bool(m["is_hu"]),
        name=str(m["name"]),
        source_orientation=str(m.get("source_orientation", "LPS")),
    )
    prompts = {(p["plane"], int(p["index"])): PromptSet.from_json(p) for p in m.get("prompts", [])}
    return (
        ct,
        labels,
        {"plane": m.get("plane", "axial"), "index": m.get("index"), "prompts": prompts},
    )
