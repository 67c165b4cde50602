"""A per-container cache of what a tenant's or token's record says: one read
per key per period, so a change reaches every warm container within it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from chalicelib.pins.timestamps import now_ms

K = TypeVar("K")
V = TypeVar("V")

_MAX_CACHED = 10_000


class ExpiringCache(Generic[K, V]):
    def __init__(self, cache_seconds: int, clock: Callable[[], int] = now_ms, max_entries: int = _MAX_CACHED) -> None:
        self._ttl_ms = cache_seconds * 1000
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[K, tuple[int, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, read: Callable[[K], V]) -> V:
        """The cached value of `key`, or `read(key)` once the period is over.
        Two threads missing at once may both read: the later one is kept."""
        now = self._clock()
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self._ttl_ms:
            return cached[1]
        value = read(key)
        with self._lock:
            # Bounded: a flood of made-up keys costs a re-read of the real ones, not memory.
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key] = (now, value)
        return value
