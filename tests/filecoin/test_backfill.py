"""Copies applied to requests archived before the setting changed
(chalicelib.filecoin.backfill), on the in-memory repositories."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.cold.archive_repository import ARCHIVED, ArchiveHolder
from chalicelib.filecoin.backfill import Backfilled, CopiesBackfill
from chalicelib.filecoin.copies import CopyWants
from chalicelib.filecoin.repository import Want
from chalicelib.filecoin.wanted import WantedCopies
from chalicelib.pins.pin import Pin
from chalicelib.pins.request_ids import new_request_id
from chalicelib.queue.outbox_repository import OutboxMessage
from tests.support.cids import cid_v1
from tests.support.memory.archives import MemoryArchives
from tests.support.memory.filecoin_copies import MemoryCopies
from tests.support.memory.filecoin_tenants import MemoryTenantCopies
from tests.support.memory.pins import MemoryPinRepository


class Setup:
    def __init__(self) -> None:
        self.pins = MemoryPinRepository()
        self.archives = MemoryArchives()
        self.copies = MemoryCopies()
        self.tenants = MemoryTenantCopies({"alice": None, "bob": None})
        # The stage wants no copies: what a stage had before Filecoin was turned on.
        self.wants = CopyWants(self.copies, WantedCopies(self.tenants, stage_copies=0), clock=lambda: 5_000)

    def pin(
        self, tenant_id: str, created_ms: int, status: str = "pinned", *, held: bool, archived: bool, meta=None
    ) -> Pin:
        cid = cid_v1(f"{tenant_id}-{created_ms}")
        pin = Pin(tenant_id, created_ms, new_request_id(created_ms), "queued", cid, cid, meta=meta or {})
        self.pins.create(pin, OutboxMessage("shard#0", f"{created_ms}#e", "{}", created_ms))
        if status != "queued":
            self.pins.update(self.pins.get(tenant_id, created_ms), status=status)
        if held:
            self.archives.hold(ArchiveHolder(cid, tenant_id, pin.request_id))
        if archived:
            state = self.archives.states[cid]
            self.archives.states[cid] = replace(state, state=ARCHIVED)
        return pin

    def backfill(self, page_size: int = 1000) -> CopiesBackfill:
        return CopiesBackfill(self.pins, self.archives, self.wants, page_size=page_size)

    def wanted(self) -> dict[str, int]:
        return {request_id: want.copies for (_, _, request_id), want in self.copies.wanted.items()}


def test_only_archived_pinned_requests_of_the_tenant_get_their_want_as_it_is_now() -> None:
    # Given alice's requests before she was given 2 copies: archived ones, one asking 3 of its own,
    setup = Setup()
    archived = setup.pin("alice", 1_000, held=True, archived=True)
    own = setup.pin("alice", 2_000, held=True, archived=True, meta={"filecoin.copies": "3"})
    # one whose archive is still being made, a hot-only one (no hold), one still queued, and bob's archived one
    setup.pin("alice", 3_000, held=True, archived=False)
    setup.pin("alice", 4_000, held=False, archived=False)
    setup.pin("alice", 5_000, "queued", held=False, archived=False)
    setup.pin("bob", 1_000, held=True, archived=True)
    setup.tenants.set_copies("alice", 2)

    # When her existing requests are backfilled
    done = setup.backfill().run("alice")

    # Then her four pinned requests were read, and the two archived ones want what they would want now
    assert done == Backfilled(pinned=4, wanted=2)
    assert setup.wanted() == {archived.request_id: 2, own.request_id: 3}
    # and each of their CIDs is due for the tracker now
    assert {cid for (cid, _, _) in setup.copies.wanted} == {archived.cid_key, own.cid_key}
    assert all(setup.copies.states[pin.cid_key].due_ms == 5_000 for pin in (archived, own))


def test_pages_visit_every_request_once_and_a_second_run_changes_nothing() -> None:
    # Given five archived pinned requests, read two a page
    setup = Setup()
    pins = [setup.pin("alice", 1_000 * n, held=True, archived=True) for n in range(1, 6)]
    setup.tenants.set_copies("alice", 1)
    pages: list[Backfilled] = []

    # When they are backfilled, twice
    first = setup.backfill(page_size=2).run("alice", pages.append)
    wants = dict(setup.copies.wanted)
    second = setup.backfill(page_size=2).run("alice")

    # Then every request was read once, page by page, and wants its copy once
    assert first == second == Backfilled(pinned=5, wanted=5)
    assert pages == [Backfilled(2, 2), Backfilled(4, 4), Backfilled(5, 5)]
    assert setup.wanted() == {pin.request_id: 1 for pin in pins}
    assert setup.copies.wanted == wants


def test_a_tenant_lowered_to_no_copies_has_its_existing_wants_lowered_too() -> None:
    # Given an archived request wanting 2 copies (the tenant's then)
    setup = Setup()
    pin = setup.pin("alice", 1_000, held=True, archived=True)
    setup.copies.want(pin.cid_key, Want("alice", pin.request_id, 2), 1_000)
    # When the tenant is set to none and its existing requests backfilled
    setup.tenants.set_copies("alice", 0)
    setup.backfill().run("alice")
    # Then the request wants none: the tracker ends its copies at its next visit
    assert setup.wanted() == {pin.request_id: 0}
