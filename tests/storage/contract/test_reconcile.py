"""ReconcileRepository contract: the same behaviour in memory and on DynamoDB,
over the same pins as the HoldRepository it sits beside."""

from __future__ import annotations

import pytest

from chalicelib.fleet.hold_repository import Hold, Holder, Lease
from chalicelib.fleet.reconcile_repository import ReconcileCursor, Sighting, Tally
from chalicelib.storage.hold_repository import DynamoHoldRepository
from chalicelib.storage.node_pin import STATE, NodePin, node_pin_key
from chalicelib.storage.reconcile_repository import DynamoReconcileRepository
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.holds import MemoryHolds
from tests.support.memory.reconcile import MemoryReconcile

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
ALICE = Hold("node-a", CID, "alice", "r1")
BOB = Hold("node-a", CID, "bob", "r2")
NOW = 1_000
LEASE = Lease("reconciler", NOW + 60)


@pytest.fixture(params=BACKENDS)
def stores(request):
    """(holds, reconcile repository, a way to set a pin's stored count as a bug would)."""
    if request.param == "memory":
        holds = MemoryHolds()

        def miscount(node_id: str, cid_key: str, holders: int) -> None:
            holds._state(node_id, cid_key).holders = holders

        return holds, MemoryReconcile(holds), miscount
    dynamo = dynamo_connection(request)

    def set_count(node_id: str, cid_key: str, holders: int) -> None:
        NodePin(node_pin_key(node_id, cid_key), STATE).update(actions=[NodePin.holders.set(holders)])

    return DynamoHoldRepository(dynamo), DynamoReconcileRepository(), set_count


def test_a_pin_nothing_ever_held_tallies_empty(stores):
    _, pins, _ = stores
    assert pins.tally("node-a", CID) == Tally(0, 0, 0, None, None)


def test_holds_added_and_removed_are_counted_and_each_is_a_change(stores):
    holds, pins, _ = stores
    holds.add(ALICE, NOW)
    holds.add(BOB, NOW)
    assert pins.tally("node-a", CID) == Tally(2, 2, 2, None, None)
    holds.remove(ALICE, 2, LEASE)
    assert pins.tally("node-a", CID) == Tally(1, 1, 3, None, None)
    # A hold of another node or CID is not this pin's
    holds.add(Hold("node-b", CID, "alice", "r1"), NOW)
    assert pins.tally("node-a", CID).held_by == 1


def test_a_wrong_count_is_corrected_only_at_the_changes_read(stores):
    # Given a pin held twice whose count says 0 (as the old unconditional release left it)
    holds, pins, miscount = stores
    holds.add(ALICE, NOW)
    holds.add(BOB, NOW)
    miscount("node-a", CID, 0)
    read = pins.tally("node-a", CID)
    assert (read.holders, read.held_by) == (0, 2)
    # When a hold is removed after the read, then the correction of that read is refused
    holds.add(Hold("node-a", CID, "carol", "r3"), NOW)
    assert not pins.recount("node-a", CID, read)
    # When it is made from a fresh read, then the count is the holds'
    fresh = pins.tally("node-a", CID)
    assert pins.recount("node-a", CID, fresh)
    assert pins.tally("node-a", CID) == Tally(3, 3, fresh.changes + 1, None, None)
    assert holds.state("node-a", CID).holders == 3


def test_an_unheld_pin_is_sighted_and_taken_only_as_sighted(stores):
    holds, pins, _ = stores
    # Given a pin no hold covers, sighted
    unheld = pins.tally("node-a", CID)
    assert pins.sight("node-a", CID, unheld, NOW)
    sighting = Sighting(NOW, 0)
    assert pins.tally("node-a", CID).unheld == sighting
    # When a hold comes and goes, then the sighting no longer stands
    holds.add(ALICE, NOW)
    holds.remove(ALICE, 1, Lease("m1", NOW))  # its lease is already over
    assert not pins.take_unheld("node-a", CID, sighting, LEASE, NOW + 1)
    # And a sighting at the changes since is refused for a stale read
    assert not pins.sight("node-a", CID, unheld, NOW + 1)
    again = pins.tally("node-a", CID)
    assert pins.sight("node-a", CID, again, NOW + 2)
    resighted = Sighting(NOW + 2, 2)
    # When nothing changed since, then the lease is taken and the sighting forgotten
    assert pins.take_unheld("node-a", CID, resighted, LEASE, NOW + 3)
    after = pins.tally("node-a", CID)
    assert (after.lease, after.unheld) == (LEASE, None)
    assert holds.state("node-a", CID).lease == LEASE


def test_an_unheld_pin_is_not_taken_while_held_or_while_another_removes_it(stores):
    holds, pins, _ = stores
    pins.sight("node-a", CID, pins.tally("node-a", CID), NOW)
    sighting = Sighting(NOW, 0)
    # A removal under way (a worker's lease): not taken
    assert holds.take_lease("node-a", CID, Lease("m1", NOW + 100), NOW, force=True)
    assert not pins.take_unheld("node-a", CID, sighting, LEASE, NOW + 1)
    holds.end_lease("node-a", CID, "m1")
    # A hold taken since: not taken
    holds.add(ALICE, NOW)
    assert not pins.take_unheld("node-a", CID, sighting, LEASE, NOW + 1)
    assert holds.held(ALICE)


def test_a_nodes_cursor_is_kept_until_replaced(stores):
    holds, pins, _ = stores
    assert pins.cursor("node-a") == ReconcileCursor()
    holds.add(ALICE, NOW)
    holds.add(Hold("node-a", "bafkrei2", "bob", "r2"), NOW)
    _, after = holds.holders_on("node-a", None, 1)
    repairs = (Holder(CID, "alice", "r1"), Holder("bafkrei2", "bob", "r2"))
    pins.save_cursor("node-a", ReconcileCursor(after, 7, repairs))
    assert pins.cursor("node-a") == ReconcileCursor(after, 7, repairs)
    assert pins.cursor("node-b") == ReconcileCursor()
    # The cursor still pages on from where it was ("bafkrei2" sorts first)
    assert holds.holders_on("node-a", pins.cursor("node-a").held_after, 1)[0] == [Holder(CID, "alice", "r1")]
    pins.save_cursor("node-a", ReconcileCursor())
    assert pins.cursor("node-a") == ReconcileCursor()


def test_an_orphaned_hold_is_noted_once_and_only_while_stored(stores):
    holds, pins, _ = stores
    alice, bob = Holder(CID, "alice", "r1"), Holder(CID, "bob", "r2")
    holds.add(ALICE, NOW)
    holds.add(BOB, NOW)
    assert pins.orphans("node-a", [alice, bob]) == {}
    # Noted once: a later note keeps the first sighting
    assert pins.note_orphan("node-a", alice, NOW)
    assert not pins.note_orphan("node-a", alice, NOW + 1)
    assert pins.orphans("node-a", [alice, bob]) == {alice: NOW}
    # A hold that is not stored is not noted (nor made)
    carol = Holder(CID, "carol", "r3")
    assert not pins.note_orphan("node-a", carol, NOW)
    assert pins.orphans("node-a", [carol]) == {}
    assert pins.tally("node-a", CID).held_by == 2
    # The note is not the pin's: its count and changes stay
    assert pins.tally("node-a", CID) == Tally(2, 2, 2, None, None)


def test_an_orphan_note_is_forgotten_and_goes_with_its_hold(stores):
    holds, pins, _ = stores
    alice = Holder(CID, "alice", "r1")
    holds.add(ALICE, NOW)
    pins.note_orphan("node-a", alice, NOW)
    # Forgotten (its request is back): noted anew later
    pins.forget_orphan("node-a", alice)
    assert pins.orphans("node-a", [alice]) == {}
    assert pins.note_orphan("node-a", alice, NOW + 5)
    assert pins.orphans("node-a", [alice]) == {alice: NOW + 5}
    # Given up and taken again: the new hold is not noted
    holds.remove(ALICE, 1, Lease("m1", NOW))
    holds.end_lease("node-a", CID, "m1")
    holds.add(ALICE, NOW + 6)
    assert pins.orphans("node-a", [alice]) == {}
    # Forgetting a hold that is gone makes nothing
    holds.remove(ALICE, 1, Lease("m2", NOW))
    pins.forget_orphan("node-a", alice)
    assert not holds.held(ALICE)
    assert pins.tally("node-a", CID).held_by == 0
