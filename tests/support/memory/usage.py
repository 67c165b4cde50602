"""Usage in memory: a pin repository that records its writes' bytes changes
as the pins table does (chalicelib.storage.usage_changes), a ledger that
folds them on demand, and tenants' plans in a dict."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from chalicelib.pins.idempotency import IdempotencyClaim
from chalicelib.pins.model import PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.usage.ledger import BytesChange, BytesLedger, FoldedMonth
from chalicelib.usage.months import Month
from chalicelib.usage.pin_bytes import bytes_change, cold_change
from chalicelib.usage.plans import TenantPlan
from tests.support.memory.pins import MemoryPinRepository


class MemoryUsagePins(MemoryPinRepository):
    """Each write and its bytes change at once (under the repository's lock),
    as one transaction writes both on DynamoDB."""

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        super().__init__()
        self.clock = clock
        self.unfolded: dict[str, list[BytesChange]] = defaultdict(list)
        self.folded: dict[str, dict[Month, FoldedMonth]] = defaultdict(dict)

    def create(
        self, pin: Pin, announce: OutboxMessage, replacing: Pin | None = None, claim: IdempotencyClaim | None = None
    ) -> None:
        with self._lock:
            super().create(pin, announce, replacing, claim)
            self._record(replacing, None)

    def delete(self, pin: Pin, announce: OutboxMessage) -> None:
        with self._lock:
            super().delete(pin, announce)
            self._record(pin, None)

    def update(
        self,
        pin: Pin,
        *,
        status: str | None = None,
        info: Mapping[str, str] | None = None,
        node_ids: Sequence[str] | None = None,
    ) -> Pin:
        with self._lock:
            updated = super().update(pin, status=status, info=info, node_ids=node_ids)
            self._record(pin, updated)
            return updated

    def _record(self, before: Pin | None, after: Pin | None) -> None:
        delta, cold = bytes_change(before, after), cold_change(before, after)
        pin = after or before
        if (delta or cold) and pin is not None:
            self.unfolded[pin.tenant_id].append(BytesChange(self.clock(), delta, cold))

    def count(self, tenant_id: str, statuses: frozenset[str], lo: int, hi: int) -> int:
        query = PinQuery(statuses=statuses, after_ns=lo * 1_000_000 - 1, before_ns=(hi + 1) * 1_000_000, limit=1)
        return self.find(tenant_id, query)[1]

    def ledger(self, tenant_id: str) -> BytesLedger:
        with self._lock:
            return BytesLedger(dict(self.folded[tenant_id]), list(self.unfolded[tenant_id]))

    def fold(self) -> None:
        """What the usage folder does with every change not folded yet."""
        with self._lock:
            for tenant_id, changes in self.unfolded.items():
                months = self.folded[tenant_id]
                for change in changes:
                    months[change.month] = months.get(change.month, FoldedMonth()).plus(change)
                changes.clear()


class MemoryPlans:
    def __init__(self) -> None:
        self.stored: dict[str, TenantPlan] = {}

    def get(self, tenant_id: str) -> TenantPlan:
        return self.stored.get(tenant_id, TenantPlan())

    def put(self, tenant_id: str, plan: TenantPlan) -> None:
        self.stored[tenant_id] = plan
