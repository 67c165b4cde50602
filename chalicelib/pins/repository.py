"""Where pin requests are kept, with their exact counts: what the pin service,
the API and the workers need of storage, and the errors storage raises.

Versioned writes: several actors write one pin (the API deletes or replaces
it, pin workers move its status and report progress, the drain records new
replicas), each from what it read. Every update and delete states the
version it read; a write from an older version is refused with StaleRecord,
so no writer silently undoes another's (a lost `node_ids` would leave a node
holding content no unpin releases). The caller reads the pin again and
decides anew, a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from chalicelib.pins.idempotency import Claimed, IdempotencyClaim
from chalicelib.pins.model import PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.queue.outbox_repository import OutboxMessage


class CreatedTaken(Exception):
    """Another pin of the tenant already has this `created` millisecond."""


class StaleRecord(Exception):
    """The pin changed or vanished since it was read."""


class ClaimTaken(Exception):
    """Another request claimed the idempotency key meanwhile."""


class PinRepository(Protocol):
    def get(self, tenant_id: str, created_ms: int) -> Pin | None:
        """The tenant's pin created at that millisecond, as stored now."""

    def create(
        self, pin: Pin, announce: OutboxMessage, replacing: Pin | None = None, claim: IdempotencyClaim | None = None
    ) -> None:
        """Store a new pin, delete `replacing` (as read) if given, claim the
        idempotency key with the pin as its answer if given, and write
        `announce`, all at once or not at all.

        Raises CreatedTaken when the pin's millisecond is taken, StaleRecord
        when `replacing` changed since it was read, ClaimTaken when the key
        is claimed and its claim has not expired.
        """

    def claimed(self, tenant_id: str, key: str, now_ms: int) -> Claimed | None:
        """The tenant's claim of an idempotency key, unless none or expired."""

    def delete(self, pin: Pin, announce: OutboxMessage) -> None:
        """Delete the pin (as read) and write `announce` at once. Raises
        StaleRecord when it changed or vanished since it was read."""

    def update(
        self,
        pin: Pin,
        *,
        status: str | None = None,
        info: Mapping[str, str] | None = None,
        node_ids: Sequence[str] | None = None,
    ) -> Pin:
        """Write what is given in place of the pin's (as read): its status
        (counts follow), its whole `info`, its `node_ids`. Returns the pin as
        now stored, one version on. Raises StaleRecord when it changed or
        vanished since it was read, so a deleted request never comes back.
        """

    def find(self, tenant_id: str, query: PinQuery) -> tuple[list[Pin], int]:
        """One page of the tenant's pins matching `query`, newest first, and
        how many match in all (exact)."""
