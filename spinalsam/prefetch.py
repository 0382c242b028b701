"""Embed the slices around the one on screen while the user looks at it.

SAM's encoder is the only slow step (seconds per slice on a CPU, docs/speed.md); a click on an
already-embedded slice costs tens of milliseconds. Users scroll to neighbouring slices far more
often than they jump, so while they look at a slice a per-session background worker embeds the
slices next to it, nearest first and in the direction they last moved, into the shared embedding
cache (which dedupes work with the foreground and other sessions). Moving on drops the old plan;
closing the session stops the worker and lets go of the volume.

The worker only ever waits on one encoder run at a time, so at most one slice of work is queued
on the model's shared prefetch thread per session, and a plan ends early when the slice changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from spinalsam.segmenters.base import SliceImage

__all__ = ["NeighbourPrefetcher", "neighbour_order"]

log = logging.getLogger(__name__)

# Starts a background embedding of one slice (the segmenter's `prefetch`); None = not wanted.
StartEmbedding = Callable[[SliceImage], "Future[object] | None"]


def neighbour_order(index: int, count: int, radius: int, direction: int = 1) -> list[int]:
    """`index` first, then the slices within `radius` of it, nearest first, alternating sides
    and starting on the side of `direction` (+1 / -1: where the user moved last)."""
    step = -1 if direction < 0 else 1
    order = [index] if 0 <= index < count else []
    for distance in range(1, radius + 1):
        for candidate in (index + step * distance, index - step * distance):
            if 0 <= candidate < count:
                order.append(candidate)
    return order


class NeighbourPrefetcher:
    """One session's background embedding of the slices around the current one."""

    def __init__(self, radius: int) -> None:
        self.radius = max(0, radius)
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every new plan and by close(): older plans stop
        self._last: tuple[object, int] | None = None  # (volume identity, index) of the last plan
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self._unwanted = False  # the backend embeds nothing ahead (its `start` returned None)

    def __deepcopy__(self, memo: dict) -> NeighbourPrefetcher:
        # Gradio deep-copies a new session's state: the copy gets its own (idle) worker.
        return NeighbourPrefetcher(self.radius)

    def follow(
        self,
        volume: object,
        index: int,
        count: int,
        render: Callable[[int], SliceImage],
        start: StartEmbedding,
    ) -> None:
        """Embed `index` and its neighbours of `volume` (any identity: a new one is a new plan),
        rendering each slice with `render` only when its turn comes."""
        with self._lock:
            if self._closed or self._unwanted:
                return
            last = self._last if self._last is not None and self._last[0] == volume else None
            direction = index - last[1] if last is not None else 1
            if last is not None and direction == 0:
                return  # the same slice shown again: its plan is running or done
            self._last = (volume, index)
            self._generation += 1
            generation = self._generation
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="sam-neighbours")
            plan = neighbour_order(index, count, self.radius, direction)
            self._executor.submit(self._run, generation, plan, render, start)

    def close(self) -> None:
        """Stop after the embedding in flight (an encoder run cannot be interrupted) and drop
        every queued plan with the volume it holds."""
        with self._lock:
            self._closed = True
            self._generation += 1
            executor, self._executor = self._executor, None
            self._last = None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _current(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation and not self._closed

    def _run(
        self,
        generation: int,
        plan: list[int],
        render: Callable[[int], SliceImage],
        start: StartEmbedding,
    ) -> None:
        for index in plan:
            if not self._current(generation):
                return
            try:
                future = start(render(index))
                if future is None:
                    with self._lock:
                        self._unwanted = True
                    return
                future.result()  # one slice at a time: the plan stays cancellable
            except Exception as exc:  # a background failure must never reach the user's click
                log.warning("background embedding of slice %d failed: %s", index, exc)
                return
