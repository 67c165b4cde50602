"""Pin requests of one tenant: create, read, list, replace, delete.

Knows nothing of HTTP or of tables. Every change is one write of the
repository (pin, counts, outbox message), then the message is handed to the
queue.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable

from chalicelib.busy import StorageBusy
from chalicelib.fleet.node import Node
from chalicelib.fleet.placement import delegates_of, place
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.pins.idempotency import WINDOW_MS as IDEMPOTENCY_WINDOW_MS
from chalicelib.pins.idempotency import IdempotencyClaim, IdempotencyKeyReused, fingerprint
from chalicelib.pins.model import PinQuery, PinRequest
from chalicelib.pins.pin import Pin, queued_pin
from chalicelib.pins.repository import ClaimTaken, CreatedTaken, PinRepository, StaleRecord
from chalicelib.pins.request_ids import created_ms_of, new_request_id
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import PinRequested, ReleasedPin, UnpinRequested
from chalicelib.queue.outbox import Outbox
from chalicelib.usage.quotas import QuotaCheck

# Attempts before giving up on a millisecond or a pin that keeps changing
# (workers write it): the client is then told to retry (StorageBusy).
WRITE_ATTEMPTS = 20


class PinNotFound(LookupError):
    """No such request for this tenant (unknown, deleted, replaced or another tenant's)."""


class NoStorageNodes(RuntimeError):
    """The fleet is empty: there is nowhere to pin."""


class PinService:
    def __init__(
        self,
        store: PinRepository,
        registry: NodeRegistry,
        outbox: Outbox,
        replication_factor: int,
        clock: Callable[[], int] = now_ms,
        min_free_bytes: int = 0,
        quotas: QuotaCheck | None = None,
    ) -> None:
        # None: no quotas (every tenant unlimited).
        self._quotas = quotas
        self._store = store
        self._registry = registry
        self._outbox = outbox
        self._replicas = replication_factor
        self._min_free_bytes = min_free_bytes
        self._clock = clock
        self._last_ms = 0

    def get(self, tenant_id: str, request_id: str) -> Pin:
        created_ms = created_ms_of(request_id)
        pin = None if created_ms is None else self._store.get(tenant_id, created_ms)
        if pin is None or pin.request_id != request_id:
            raise PinNotFound(request_id)
        return pin

    def list(self, tenant_id: str, query: PinQuery) -> tuple[builtins.list[Pin], int]:
        return self._store.find(tenant_id, query)

    def create(self, tenant_id: str, request: PinRequest, idempotency_key: str | None = None) -> Pin:
        claim = self._claim(idempotency_key, request, replacing=None)
        replayed = self._replayed(tenant_id, claim)
        if replayed is not None:
            return replayed
        self._check_quotas(tenant_id, None, request)
        return self._insert(tenant_id, request, None, claim)

    def replace(self, tenant_id: str, request_id: str, request: PinRequest, idempotency_key: str | None = None) -> Pin:
        claim = self._claim(idempotency_key, request, replacing=request_id)
        # A retry finds the first answer, though the pin it replaced is gone.
        replayed = self._replayed(tenant_id, claim)
        if replayed is not None:
            return replayed
        for _ in range(WRITE_ATTEMPTS):
            old = self.get(tenant_id, request_id)
            self._check_quotas(tenant_id, old, request)
            try:
                return self._insert(tenant_id, request, old, claim)
            except StaleRecord:
                continue  # a worker wrote the old pin meanwhile: read it again
        raise StorageBusy("the pin kept changing during replace")

    def _check_quotas(self, tenant_id: str, replacing: Pin | None, request: PinRequest) -> None:
        """Raises QuotaExceeded (nothing written) for a request beyond a quota."""
        if self._quotas is not None:
            self._quotas.check_create(tenant_id, replacing, request.meta)

    def _claim(self, key: str | None, request: PinRequest, replacing: str | None) -> IdempotencyClaim | None:
        if key is None:
            return None
        return IdempotencyClaim(key, fingerprint(request, replacing), self._clock() + IDEMPOTENCY_WINDOW_MS)

    def _replayed(self, tenant_id: str, claim: IdempotencyClaim | None) -> Pin | None:
        """The first answer to a retried request; raises IdempotencyKeyReused
        when the key was claimed for another request."""
        if claim is None:
            return None
        claimed = self._store.claimed(tenant_id, claim.key, self._clock())
        if claimed is None:
            return None
        if claimed.fingerprint != claim.fingerprint:
            raise IdempotencyKeyReused(claim.key)
        return claimed.pin

    def delete(self, tenant_id: str, request_id: str) -> None:
        for _ in range(WRITE_ATTEMPTS):
            old = self.get(tenant_id, request_id)
            entry = self._outbox.entry_for(UnpinRequested(tenant_id, old.request_id, old.cid_key, tuple(old.node_ids)))
            try:
                self._store.delete(old, entry)
            except StaleRecord:
                continue  # a worker wrote it meanwhile: its unpin must name the nodes it has now
            self._outbox.publish(entry)
            return
        raise StorageBusy("the pin kept changing during delete")

    def _insert(
        self, tenant_id: str, request: PinRequest, replacing: Pin | None, claim: IdempotencyClaim | None
    ) -> Pin:
        nodes = self._placement(request.cid.key)
        node_ids = tuple(node.node_id for node in nodes)
        released = (
            None
            if replacing is None
            else ReleasedPin(replacing.request_id, replacing.cid_key, tuple(replacing.node_ids))
        )
        for _ in range(WRITE_ATTEMPTS):
            created_ms = self._next_ms()
            pin = queued_pin(tenant_id, created_ms, new_request_id(created_ms), request, delegates_of(nodes), node_ids)
            entry = self._outbox.entry_for(
                PinRequested(
                    tenant_id, pin.request_id, created_ms, request.cid.key, node_ids, request.origins, released
                )
            )
            try:
                self._store.create(pin, entry, replacing=replacing, claim=claim)
            except CreatedTaken:
                continue  # another container took this millisecond: take the next
            except ClaimTaken:
                # A retry of the same request raced this one and won: its answer is ours.
                replayed = self._replayed(tenant_id, claim)
                if replayed is None:
                    continue  # its claim expired meanwhile
                return replayed
            self._outbox.publish(entry)
            return pin
        raise StorageBusy("no free millisecond for a new pin")

    def _placement(self, cid_key: str) -> builtins.list[Node]:
        nodes = self._registry.nodes()
        if not nodes:
            raise NoStorageNodes("no storage nodes are registered")
        return place(cid_key, nodes, self._replicas, self._min_free_bytes)

    def _next_ms(self) -> int:
        # Strictly increasing within this process, so a burst of requests
        # never collides on `created` here; other processes are caught by
        # the conditional write.
        self._last_ms = max(self._clock(), self._last_ms + 1)
        return self._last_ms
