"""API requests by class and retrieval egress, counted per container and
flushed at most once a minute (FLUSH_SECONDS) as one ADD per tenant and month.

A request never waits for a write of its own: the one that finds the minute
over flushes what the container counted, and a flush that fails keeps its
counts for the next. What a container counted since its last flush is lost
if it ends first (at most a minute of its requests), so these figures are a
lower bound, within a minute per container; bytes pinned are exact
(chalicelib.usage.ledger). The alternative, an EMF metric per request and a
monthly rollup from CloudWatch, costs a GetMetricData per tenant and month
and CloudWatch's per-metric price per tenant dimension; one UpdateItem a
minute per container and tenant costs ~1.3 write units a minute.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Protocol

from chalicelib.pins.timestamps import now_ms
from chalicelib.usage.months import Month

logger = logging.getLogger("pinning.usage")

CLASSES = ("read", "write", "retrieve")
EGRESS = "egress_bytes"
FLUSH_SECONDS = 60


class RequestCounts(Protocol):
    def add(self, tenant_id: str, month: Month, counts: Mapping[str, int]) -> None:
        """ADD the counts (by class, and EGRESS) to the tenant's month, in one write."""

    def month(self, tenant_id: str, month: Month) -> dict[str, int]:
        """The tenant's counts of the month (absent ones: 0)."""


class RequestMeter:
    def __init__(
        self, counts: RequestCounts, flush_seconds: int = FLUSH_SECONDS, clock: Callable[[], int] = now_ms
    ) -> None:
        self._counts = counts
        self._flush_ms = flush_seconds * 1000
        self._clock = clock
        self._pending: dict[tuple[str, Month], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._last_flush = clock()
        self._lock = threading.Lock()

    def request(self, tenant_id: str, kind: str) -> None:
        self._add(tenant_id, kind, 1)

    def egress(self, tenant_id: str, count: int) -> None:
        self._add(tenant_id, EGRESS, count)

    def _add(self, tenant_id: str, name: str, count: int) -> None:
        now = self._clock()
        with self._lock:
            self._pending[(tenant_id, Month.of_ms(now))][name] += count
            due = now - self._last_flush >= self._flush_ms
            if due:
                self._last_flush = now
        if due:
            self.flush()

    def flush(self) -> None:
        """Write what was counted: one ADD per tenant and month; kept for the next flush if a write fails."""
        with self._lock:
            taken, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        for (tenant_id, month), counts in taken.items():
            try:
                self._counts.add(tenant_id, month, counts)
            except Exception:  # a count must never fail the request that flushes it
                logger.warning("usage counts kept for the next flush", exc_info=True, extra={"tenant": tenant_id})
                with self._lock:
                    for name, count in counts.items():
                        self._pending[(tenant_id, month)][name] += count
