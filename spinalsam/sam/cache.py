"""A byte-bounded, thread-safe LRU of image embeddings, shared by every session of one model.

SAM's encoder is the only slow step, and users scroll back and forth through the same slices
(and several users open the same example scans), so embeddings are kept by a hash of the pixels
the model saw. Requests for a key already being computed wait for that computation instead of
starting a second one, and `prefetch` starts the encoder in the background as soon as a slice is
shown, so the first click on it rarely waits.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from spinalsam.sam.model import TransformInfo

__all__ = ["CacheStats", "Embedding", "EmbeddingCache", "embedding_key"]


@dataclass(frozen=True)
class Embedding:
    """One slice's image embedding and the frame it was computed in."""

    tensor: torch.Tensor  # (1, C, h, w)
    info: TransformInfo

    @property
    def nbytes(self) -> int:
        return self.tensor.element_size() * self.tensor.nelement()


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int


def embedding_key(display: np.ndarray, model_id: str) -> str:
    """Identity of an embedding: the exact pixels and shape, and which model produced it."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(model_id.encode())
    digest.update(repr((display.shape, display.dtype.str)).encode())
    digest.update(np.ascontiguousarray(display).tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """LRU bounded by total tensor bytes; `max_bytes=0` keeps nothing but still dedupes work."""

    def __init__(self, max_bytes: int, prefetch_workers: int = 1) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Embedding] = OrderedDict()
        self._pending: dict[str, Future[Embedding]] = {}
        self._lock = threading.Lock()
        self._bytes = self._hits = self._misses = self._evictions = 0
        # One worker: a second concurrent encoder run only competes for the same cores.
        self._executor = ThreadPoolExecutor(prefetch_workers, thread_name_prefix="sam-prefetch")

    def __deepcopy__(self, memo: dict) -> EmbeddingCache:
        # Process-wide and shared by design: Gradio deep-copies each new session's state,
        # which must not duplicate the model or the cache.
        return self

    def get_or_compute(self, key: str, compute: Callable[[], Embedding]) -> Embedding:
        """The cached embedding for `key`, computing it (once, across threads) when absent.

        A request that finds the key already being computed waits for that result and counts as
        a hit: the encoder ran once for both.
        """
        with self._lock:
            if key in self._entries:
                self._hits += 1
                self._entries.move_to_end(key)
                return self._entries[key]
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                self._misses += 1
                pending = self._pending[key] = Future()
            else:
                self._hits += 1
        if not owner:
            return pending.result()
        return self._compute(key, compute, pending)

    def prefetch(self, key: str, compute: Callable[[], Embedding]) -> Future[Embedding]:
        """Start computing `key` in the background; the returned future holds the embedding."""
        return self._executor.submit(self.get_or_compute, key, compute)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._hits,
                self._misses,
                self._evictions,
                len(self._entries),
                self._bytes,
                self.max_bytes,
            )

    def close(self) -> None:
        """Stop the prefetch worker (queued prefetches are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _compute(
        self, key: str, compute: Callable[[], Embedding], pending: Future[Embedding]
    ) -> Embedding:
        try:
            value = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._store(key, value)
        pending.set_result(value)
        return value

    def _store(self, key: str, value: Embedding) -> None:
        """Insert and evict least-recently-used entries until the byte budget holds (lock held)."""
        if value.nbytes > self.max_bytes:
            return
        self._entries[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.nbytes
            self._evictions += 1
