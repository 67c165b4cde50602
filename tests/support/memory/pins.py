"""A PinRepository in a dict, for domain tests, with the API's semantics
(tests/storage/contract/test_pin_repository.py runs the same tests against
it and DynamoDB).

Tests script what DynamoDB cannot be made to do on demand: `before_write`
runs before every write that depends on a pin as read (an update, a delete,
the old pin of a replace) and may change the stored pin there, as another
writer would (`write_meanwhile`), or raise (StorageBusy); `before_read` runs
before every read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from chalicelib.pins.idempotency import Claimed, IdempotencyClaim
from chalicelib.pins.model import PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import ClaimTaken, CreatedTaken, StaleRecord
from chalicelib.pins.scan_limit import DEFAULT_MAX_SCANNED_PINS, check_meta_scan, check_scan, indexed_pairs
from chalicelib.queue.outbox_repository import OutboxMessage, OutboxRepository
from tests.support.memory.outbox import MemoryOutbox
from tests.support.pin_filters import in_range, selects, within_time_bounds


def _nothing(*_: object) -> None:
    return None


def rarest_pair_pins(query: PinQuery, pins: Sequence[Pin]) -> int:
    """What a `meta` query reads by its index: the pins of the time range (any
    status) holding its rarest pair, and those with too many pairs to index."""
    timely = [pin for pin in pins if within_time_bounds(pin.created_ms * 1_000_000, query.before_ns, query.after_ns)]
    overflow = sum(indexed_pairs(pin.meta) is None for pin in timely)
    holding = (
        sum(indexed_pairs(pin.meta) is not None and pin.meta.get(key) == value for pin in timely)
        for key, value in query.meta.items()
    )
    return min(holding, default=0) + overflow


class MemoryPinRepository:
    def __init__(
        self, outbox: OutboxRepository | None = None, max_scanned_pins: int = DEFAULT_MAX_SCANNED_PINS
    ) -> None:
        # Where announcements go, as they go to the outbox table on DynamoDB.
        self.outbox = MemoryOutbox() if outbox is None else outbox
        self.max_scanned_pins = max_scanned_pins
        self.before_write: Callable[[Pin], None] = _nothing
        self.before_read: Callable[[], None] = _nothing
        self.writes = 0  # every write tried, refused ones too
        self._pins: dict[tuple[str, int], Pin] = {}
        self._claims: dict[tuple[str, str], tuple[int, Claimed]] = {}
        # The worker writes from threads; reentrant, for hooks that write.
        self._lock = threading.RLock()

    def get(self, tenant_id: str, created_ms: int) -> Pin | None:
        self.before_read()
        with self._lock:
            return self._pins.get((tenant_id, created_ms))

    def create(
        self, pin: Pin, announce: OutboxMessage, replacing: Pin | None = None, claim: IdempotencyClaim | None = None
    ) -> None:
        with self._lock:
            self.writes += 1
            if replacing is not None:
                self._check_unchanged(replacing)
            if claim is not None and self.claimed(pin.tenant_id, claim.key, pin.created_ms) is not None:
                raise ClaimTaken()
            if (pin.tenant_id, pin.created_ms) in self._pins:
                raise CreatedTaken()
            if claim is not None:
                self._claims[(pin.tenant_id, claim.key)] = (claim.expires_ms, Claimed(claim.fingerprint, pin))
            if replacing is not None:
                del self._pins[(replacing.tenant_id, replacing.created_ms)]
            self._pins[(pin.tenant_id, pin.created_ms)] = pin
            self.outbox.add(announce)

    def claimed(self, tenant_id: str, key: str, now_ms: int) -> Claimed | None:
        with self._lock:
            expires_ms, claimed = self._claims.get((tenant_id, key), (0, None))
        return claimed if expires_ms > now_ms else None

    def delete(self, pin: Pin, announce: OutboxMessage) -> None:
        with self._lock:
            self.writes += 1
            self._check_unchanged(pin)
            del self._pins[(pin.tenant_id, pin.created_ms)]
            self.outbox.add(announce)

    def update(
        self,
        pin: Pin,
        *,
        status: str | None = None,
        info: Mapping[str, str] | None = None,
        node_ids: Sequence[str] | None = None,
    ) -> Pin:
        with self._lock:
            self.writes += 1
            self._check_unchanged(pin)
            updated = pin.updated(status, info, node_ids)
            self._pins[(pin.tenant_id, pin.created_ms)] = updated
            return updated

    def find(self, tenant_id: str, query: PinQuery) -> tuple[list[Pin], int]:
        self.before_read()
        with self._lock:
            mine = [pin for (tenant, _), pin in self._pins.items() if tenant == tenant_id]
            # What DynamoDB's counts give before a pin is read: the range's pins of these statuses.
            pins_in_range = sum(in_range(query, pin) for pin in mine)
            check_scan(query, pins_in_range, self.max_scanned_pins)
            check_meta_scan(query, rarest_pair_pins(query, mine), pins_in_range, self.max_scanned_pins)
            found = [pin for pin in mine if selects(query, pin)]
        found.sort(key=lambda pin: pin.created_ms, reverse=True)
        return found[: query.limit], len(found)

    def write_meanwhile(self, pin: Pin) -> None:
        """Another writer updates the stored pin (one version on), as if
        between this test's read of `pin` and its write."""
        with self._lock:
            stored = self._pins[(pin.tenant_id, pin.created_ms)]
            self._pins[(pin.tenant_id, pin.created_ms)] = replace(stored, version=stored.version + 1)

    def _check_unchanged(self, pin: Pin) -> None:
        self.before_write(pin)
        stored = self._pins.get((pin.tenant_id, pin.created_ms))
        if stored is None or stored.request_id != pin.request_id or stored.version != pin.version:
            raise StaleRecord()
