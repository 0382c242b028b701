"""The image memory all sessions of one server hold together, against one cap.

Each session's inputs are bounded by the `Budget` (≤ 512³ voxels, ~0.8 GB with labels), but a
public server has many sessions, each kept for up to its time-to-live after its last change: a
few dozen clients uploading large volumes would otherwise run the process out of memory and end
every user's work. Sessions report what they hold here; an upload that would take the server
past the cap is refused with a message, and the uploader's current work stays as it was.
"""

from __future__ import annotations

import os
import threading
import weakref

__all__ = ["ImageLedger", "LedgerFull", "default_cap_bytes"]


class LedgerFull(RuntimeError):
    """Holding more would take the server past its image-memory cap."""


def default_cap_bytes() -> int:
    """Half of the machine's physical memory: the rest is the process, the model and the queue."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: a conservative 4 GiB
        return 4 << 30


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MB"


class ImageLedger:
    """Bytes of image data held per session; one instance per server, shared by its sessions.

    Sessions are held weakly: Gradio drops sessions without calling their delete callback when
    its session capacity is reached, and a dropped session's share must come back then too.
    Gradio also deep-copies each new session's state: the copy must share this ledger, not get
    its own, so `__deepcopy__` returns the same object.
    """

    def __init__(self, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self._held: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> ImageLedger:
        return self

    def hold(self, owner: object, nbytes: int) -> None:
        """Let `owner` hold `nbytes` instead of what it held, or raise LedgerFull (no change)."""
        with self._lock:
            others = sum(self._held.values()) - self._held.get(owner, 0)
            if others + nbytes > self.cap_bytes:
                raise LedgerFull(
                    f"the server already holds {_size(others)} of images for other sessions "
                    f"and this one needs {_size(nbytes)} (cap {_size(self.cap_bytes)})"
                )
            self._held[owner] = nbytes

    def release(self, owner: object) -> None:
        """`owner` holds nothing any more (its session ended)."""
        with self._lock:
            self._held.pop(owner, None)

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(self._held.values())
