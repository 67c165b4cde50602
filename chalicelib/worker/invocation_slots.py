"""A bound per tenant across worker invocations: at most `limit` at once.

Lambda runs up to `MaximumConcurrency` pin worker invocations at once, each
with a share of its own (batch.TenantShare), so one tenant's stalled backlog
could fill all of them and another tenant's message would wait for one to
end. A tenant's messages may be worked on by at most `limit` invocations
(TENANT_INVOCATIONS, below MaximumConcurrency): so one is always free for
the others (docs/deploy.md, "Fairness between tenants").

Each batch takes one *slot* per tenant in it: a lease that ends at the
invocation's deadline, so a crashed invocation frees its slot by itself. A
take is one conditional write; on a conflict, one strongly consistent read
finds a slot free or expired, tried next (at most `limit` tries). A batch
gives its slot back once its last message of the tenant is done: one write.
A tenant refused a slot has its messages deferred at once (batch.py).

Fails open: a lease store that throttles or fails never fails or loses a
pin: the error is logged and counted, and the batch goes on as if the slot
was taken (fairness degrades, pins do not).
"""

from __future__ import annotations

import logging
import math
import random
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TextIO

from chalicelib.metrics import emit_metrics
from chalicelib.pins.timestamps import now_ms

logger = logging.getLogger("pinning.worker")

# The metric counting lease reads and writes that failed (the batch went on).
ERRORS_METRIC = "InvocationSlotErrors"


class SlotRepository(Protocol):
    def take(self, tenant_id: str, slot: int, until_ms: int, now_ms: int) -> bool:
        """Holds the tenant's `slot` until `until_ms` if it is free or its
        lease ended before `now_ms`; False if another holds it."""

    def leases(self, tenant_id: str) -> Mapping[int, int]:
        """Each slot of the tenant's held or left behind: when its lease ends
        (strongly consistent)."""

    def give_back(self, tenant_id: str, slot: int, until_ms: int) -> None:
        """Frees the slot if it is still held until `until_ms` (not taken
        over since that lease ended)."""


@dataclass(frozen=True)
class Slot:
    """One of the tenant's slots, held until `until_ms`; `index` None: taken
    on trust, the lease store having failed (nothing to give back)."""

    tenant_id: str
    index: int | None
    until_ms: int


@dataclass(frozen=True)
class Refused:
    """Every slot of the tenant's is held: defer its messages this long."""

    delay_seconds: int


class InvocationSlots:
    """The slots of each tenant, shared by every invocation of the stage.

    A refused message comes back after `busy_delay_seconds` while the
    tenant's slots turn over (its batches end), so a tenant alone keeps its
    invocations busy; once the leases read have stayed the same for
    `stuck_seconds` (its invocations work on content that does not come, or
    on a large DAG), after `stuck_delay_seconds`: no slot frees sooner than a
    turn's end, and coming back often would only churn the queue. But the
    first `few_refusals` batches refused so come back when the first lease
    ends, where a slot is free at the latest: a tenant's next few pins (not
    a backlog) wait for its running pin's turn, not minutes.
    """

    def __init__(
        self,
        repository: SlotRepository,
        limit: int,
        margin_seconds: float,
        busy_delay_seconds: int,
        stuck_delay_seconds: int,
        stuck_seconds: float = 5.0,
        few_refusals: int = 10,
        clock: Callable[[], int] = now_ms,
        first_slot: Callable[[int], int] = random.randrange,
        metrics: TextIO | None = None,
        stage: str = "",
    ) -> None:
        self.limit = limit
        self._repository = repository
        # A lease ends at the invocation's end: its batch's deadline plus the margin kept.
        self._margin_ms = int(margin_seconds * 1000)
        self._busy_delay = busy_delay_seconds
        self._stuck_delay = stuck_delay_seconds
        self._stuck_ms = int(stuck_seconds * 1000)
        self._few = few_refusals
        self._clock = clock
        # Where the first try goes: spread, so that a long-held slot costs
        # few takes a failed write.
        self._first_slot = first_slot
        self._metrics, self._stage = metrics, stage
        # Per tenant refused: the leases read, since when they were seen unchanged,
        # and how many batches were refused since they count as stuck.
        self._refusals: dict[str, tuple[frozenset[tuple[int, int]], int, int]] = {}
        self._lock = threading.Lock()

    def take(self, tenant_id: str, seconds_left: float) -> Slot | Refused:
        """A slot for a batch with `seconds_left` to work, or how long to defer its tenant's messages."""
        now = self._clock()
        until = now + int(seconds_left * 1000) + self._margin_ms
        try:
            return self._take(tenant_id, now, until)
        except Exception:
            self._failed("invocation slot not taken; going on without one", tenant_id)
            return Slot(tenant_id, None, until)

    def give_back(self, slot: Slot) -> None:
        if slot.index is None:
            return
        try:
            self._repository.give_back(slot.tenant_id, slot.index, slot.until_ms)
        except Exception:
            self._failed("invocation slot not given back; its lease ends by itself", slot.tenant_id)

    def _take(self, tenant_id: str, now: int, until: int) -> Slot | Refused:
        index = self._first_slot(self.limit)
        for _ in range(self.limit):
            if self._repository.take(tenant_id, index, until, now):
                with self._lock:
                    self._refusals.pop(tenant_id, None)
                return Slot(tenant_id, index, until)
            leases = self._repository.leases(tenant_id)
            free = [slot for slot in range(self.limit) if leases.get(slot, 0) < now]
            if not free:
                return Refused(self._delay(tenant_id, leases, now))
            index = free[0]
        # Each slot read free was taken by another batch first.
        return Refused(self._busy_delay)

    def _delay(self, tenant_id: str, leases: Mapping[int, int], now: int) -> int:
        held = frozenset(leases.items())
        with self._lock:
            seen, since, refused = self._refusals.get(tenant_id, (None, now, 0))
            if seen != held:
                self._refusals[tenant_id] = (held, now, 0)
                return self._busy_delay
            if now - since < self._stuck_ms:
                return self._busy_delay
            self._refusals[tenant_id] = (held, since, refused + 1)
        if refused < self._few:
            first_end_ms = min(leases.get(slot, 0) for slot in range(self.limit))
            return max(self._busy_delay, min(self._stuck_delay, math.ceil((first_end_ms - now) / 1000)))
        return self._stuck_delay

    def _failed(self, what: str, tenant_id: str) -> None:
        logger.exception(what, extra={"tenant_id": tenant_id})
        if self._metrics is not None:
            emit_metrics({ERRORS_METRIC: (1, "Count")}, self._stage, self._metrics)


def invocation_slots(
    repository: SlotRepository, limit: int, margin_seconds: float, stuck_delay_seconds: int, stage: str, emit: bool
) -> InvocationSlots | None:
    """The stage's slots (None: no bound), with the deferrals TenantShare makes."""
    if limit <= 0:
        return None
    return InvocationSlots(
        repository,
        limit,
        margin_seconds,
        busy_delay_seconds=1,
        stuck_delay_seconds=stuck_delay_seconds,
        metrics=sys.stdout if emit else None,
        stage=stage,
    )
