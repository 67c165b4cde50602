"""Applies the copies a tenant's requests want now to those archived before.

The copies a request wants are read when its archive is held
(chalicelib.filecoin.wanted), so a tenant's or the stage's new setting, or
Filecoin turned on for a stage that already has archives, reaches what is
archived next. An operator applies it to what is archived already with
`python -m cli.admin tenants filecoin-existing`: each of the tenant's
pinned requests whose archive it holds, archived, has its want recorded
again, as the archiver records it; the tracker then begins or ends copies at
its next visit of each CID. Recording a want again is idempotent, so a run
cut short is simply run again.

Cost: the tenant's pinned requests read a page (one Query) at a time, never
a Scan; per request two reads (its hold, the CID's archive state) and, for
an archived one, one write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.cold.archive_repository import ARCHIVED, ArchiveHolder, ArchiveRepository
from chalicelib.filecoin.copies import CopyWants
from chalicelib.pins.model import MAX_LIMIT, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import PinRepository

_NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class Backfilled:
    """How far a run got: pinned requests read, and those whose want was recorded."""

    pinned: int = 0
    wanted: int = 0


class CopiesBackfill:
    def __init__(
        self, pins: PinRepository, archives: ArchiveRepository, wants: CopyWants, page_size: int = MAX_LIMIT
    ) -> None:
        self._pins = pins
        self._archives = archives
        self._wants = wants
        self._page_size = page_size

    def run(self, tenant_id: str, on_page: Callable[[Backfilled], None] | None = None) -> Backfilled:
        """Records the want of each of the tenant's archived pinned requests, newest first;
        `on_page` hears how far it got after each page."""
        done = Backfilled()
        before_ns: int | None = None
        while True:
            query = PinQuery(statuses=frozenset({"pinned"}), before_ns=before_ns, limit=self._page_size)
            page, _ = self._pins.find(tenant_id, query)
            wanted = sum(self._record(pin) for pin in page)
            done = Backfilled(done.pinned + len(page), done.wanted + wanted)
            if on_page is not None:
                on_page(done)
            if len(page) < self._page_size:
                return done
            # A tenant's requests have distinct creation milliseconds: strictly before the last is the rest.
            before_ns = page[-1].created_ms * _NS_PER_MS

    def _record(self, pin: Pin) -> bool:
        if self._archives.hold_of(ArchiveHolder(pin.cid_key, pin.tenant_id, pin.request_id)) is None:
            return False  # a hot-only request, or one whose archive is not held yet
        state = self._archives.state(pin.cid_key)
        if state is None or state.state != ARCHIVED:
            return False  # the archiver records it once archived
        self._wants.held(pin.cid_key, pin.tenant_id, pin.request_id, pin.meta)
        return True
