"""Usage in memory: a pin repository that records its writes' bytes changes
as the pins table does (chalicelib.storage.usage_changes), a ledger that
folds them on demand (a tenant's as one shard, the CIDs' holds applied with
a version check as the fold's transaction conditions them), the operator's
unique bytes, and tenants' plans in a dict."""

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
from chalicelib.usage.pin_bytes import bytes_change, cold_change, filecoin_change, hold_change
from chalicelib.usage.plans import TenantPlan
from chalicelib.usage.unique import CidHold, HoldChange, held_after
from tests.support.memory.pins import MemoryPinRepository


class MemoryUsagePins(MemoryPinRepository):
    """Each write and its bytes change at once (under the repository's lock),
    as one transaction writes both on DynamoDB."""

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        super().__init__()
        self.clock = clock
        self.unfolded: dict[str, list[tuple[BytesChange, HoldChange | None]]] = defaultdict(list)
        self.folded: dict[str, dict[Month, FoldedMonth]] = defaultdict(dict)
        self.holds: dict[str, CidHold] = {}
        self.operator_months: dict[Month, FoldedMonth] = {}
        # Called by a fold between its read of the holds and its commit: a test's other folder.
        self.before_fold_commit: Callable[[str], None] = lambda tenant_id: None

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
        delta, cold, filecoin = bytes_change(before, after), cold_change(before, after), filecoin_change(before, after)
        pin, at = after or before, self.clock()
        if (delta or cold or filecoin) and pin is not None:
            hold = hold_change(before, after)
            held = None if hold is None else HoldChange(hold[0], at, hold[1], hold[2])
            self.unfolded[pin.tenant_id].append((BytesChange(at, delta, cold, filecoin), held))

    def count(self, tenant_id: str, statuses: frozenset[str], lo: int, hi: int) -> int:
        query = PinQuery(statuses=statuses, after_ns=lo * 1_000_000 - 1, before_ns=(hi + 1) * 1_000_000, limit=1)
        return self.find(tenant_id, query)[1]

    def ledger(self, tenant_id: str) -> BytesLedger:
        with self._lock:
            return BytesLedger(dict(self.folded[tenant_id]), [change for change, _ in self.unfolded[tenant_id]])

    def operator_ledger(self) -> BytesLedger:
        with self._lock:
            return BytesLedger(dict(self.operator_months))

    def fold(self, tenant_id: str | None = None) -> int:
        """What the usage folder does with the tenant's (every tenant's) changes
        not folded yet; returns how many times a fold met another and began again."""
        return sum(self._fold(tenant) for tenant in ([tenant_id] if tenant_id else list(self.unfolded)))

    def _fold(self, tenant_id: str) -> int:
        again = 0
        while True:
            with self._lock:
                changes = list(self.unfolded[tenant_id])
                by_cid: dict[str, list[HoldChange]] = defaultdict(list)
                for _, held in changes:
                    if held is not None:
                        by_cid[held.cid].append(held)
                read = {cid: self.holds.get(cid, CidHold()) for cid in by_cid}
            self.before_fold_commit(tenant_id)
            with self._lock:
                if all(self.holds.get(cid, CidHold()).version == hold.version for cid, hold in read.items()):
                    self._commit(tenant_id, changes, read, by_cid)
                    return again
            again += 1

    def _commit(
        self,
        tenant_id: str,
        changes: list[tuple[BytesChange, HoldChange | None]],
        read: Mapping[str, CidHold],
        by_cid: Mapping[str, list[HoldChange]],
    ) -> None:
        months = self.folded[tenant_id]
        for change, _ in changes:
            months[change.month] = months.get(change.month, FoldedMonth()).plus(change)
        for cid, hold in read.items():
            self.holds[cid], booked = held_after(hold, by_cid[cid])
            for change in booked:
                self.operator_months[change.month] = self.operator_months.get(change.month, FoldedMonth()).plus(change)
        del self.unfolded[tenant_id][: len(changes)]


class MemoryPlans:
    def __init__(self) -> None:
        self.stored: dict[str, TenantPlan] = {}

    def get(self, tenant_id: str) -> TenantPlan:
        return self.stored.get(tenant_id, TenantPlan())

    def put(self, tenant_id: str, plan: TenantPlan) -> None:
        self.stored[tenant_id] = plan
