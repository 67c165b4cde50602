"""HoldRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import pytest

from chalicelib.fleet.hold_repository import Added, Hold, Holder, Lease, PinState, Removed
from chalicelib.storage.hold_repository import DynamoHoldRepository
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.holds import MemoryHolds

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
ALICE = Hold("node-a", CID, "alice", "r1")
BOB = Hold("node-a", CID, "bob", "r2")
NOW = 1_000
LEASE = Lease("m1", NOW + 60)


@pytest.fixture(params=BACKENDS)
def holds(request):
    if request.param == "memory":
        return MemoryHolds()
    return DynamoHoldRepository(dynamo_connection(request))


def test_a_hold_is_added_once(holds):
    assert holds.add(ALICE, NOW) is Added.ADDED
    assert holds.add(ALICE, NOW) is Added.ALREADY_HELD
    assert holds.held(ALICE)
    assert not holds.held(BOB)


def test_a_hold_leaves_only_at_the_count_read_and_the_last_takes_the_lease(holds):
    # Given two holds
    holds.add(ALICE, NOW)
    holds.add(BOB, NOW)
    assert holds.state("node-a", CID) == PinState(2, None)
    # When one leaves at a count that is no longer stored, then nothing changes
    assert holds.remove(ALICE, 1, LEASE) is Removed.RECOUNT
    assert holds.held(ALICE) and holds.state("node-a", CID) == PinState(2, None)
    # When it leaves at the count stored, then the other still holds it
    assert holds.remove(ALICE, 2, LEASE) is Removed.REMOVED
    assert holds.state("node-a", CID) == PinState(1, None)
    assert holds.remove(ALICE, 1, LEASE) is Removed.NOT_HELD
    # And the last one takes the lease in the same step
    assert holds.remove(BOB, 1, LEASE) is Removed.LAST
    assert holds.state("node-a", CID) == PinState(0, LEASE)
    assert not holds.held(BOB)


def test_a_pin_nobody_held_has_no_count_and_no_lease(holds):
    assert holds.state("node-a", CID) == PinState(0, None)


def test_no_hold_is_added_while_a_lease_is_active_and_one_is_after_it_expires(holds):
    holds.add(ALICE, NOW)
    holds.remove(ALICE, 1, LEASE)
    assert holds.add(BOB, NOW + 60) is Added.RELEASING
    assert not holds.held(BOB)
    assert holds.add(BOB, NOW + 61) is Added.ADDED
    # The expired lease stays stored until someone ends or replaces it
    assert holds.state("node-a", CID) == PinState(1, LEASE)


def test_a_lease_is_taken_again_only_by_its_owner_or_by_force_once_free(holds):
    holds.add(ALICE, NOW)
    holds.remove(ALICE, 1, LEASE)
    later = Lease("m1", NOW + 120)
    assert holds.take_lease("node-a", CID, later, NOW, force=False)
    assert holds.state("node-a", CID).lease == later
    assert not holds.take_lease("node-a", CID, Lease("m9", NOW + 120), NOW, force=True)
    holds.end_lease("node-a", CID, "m9")  # not its lease: nothing happens
    assert holds.state("node-a", CID).lease == later
    holds.end_lease("node-a", CID, "m1")
    assert holds.state("node-a", CID).lease is None
    assert holds.take_lease("node-a", CID, Lease("m9", NOW + 120), NOW, force=True)
    assert not holds.take_lease("node-a", CID, Lease("m8", NOW + 120), NOW, force=False)


def test_no_lease_is_taken_while_the_pin_is_held(holds):
    holds.add(ALICE, NOW)
    assert not holds.take_lease("node-a", CID, LEASE, NOW, force=True)
    assert holds.state("node-a", CID).lease is None


def test_a_nodes_holders_come_page_by_page(holds):
    cids = [f"bafkrei{i:02d}" for i in range(5)]
    for cid in cids:
        holds.add(Hold("node-a", cid, "alice", f"r-{cid}"), NOW)
    holds.add(Hold("node-b", cids[0], "bob", "elsewhere"), NOW)
    seen: list[Holder] = []
    after = None
    for _ in range(3):
        page, after = holds.holders_on("node-a", after, 2)
        seen += page
        if after is None:
            break
    assert after is None
    assert sorted(seen, key=lambda h: h.cid_key) == [Holder(cid, "alice", f"r-{cid}") for cid in cids]


def test_a_turn_is_taken_by_one_message_and_kept_by_it_until_a_later_one(holds):
    # Given turn 1 of alice's request taken by message m1
    assert holds.take_turn("alice", "r1", 1, "m1")
    # Then m1 keeps it (SQS delivers it again), another message of that turn or an earlier one does not
    assert holds.take_turn("alice", "r1", 1, "m1")
    assert not holds.take_turn("alice", "r1", 1, "m2")
    assert holds.take_turn("bob", "r1", 1, "m2")  # another request's turns are its own
    # When a message of the next turn takes it, then m1 has lost it
    assert holds.take_turn("alice", "r1", 2, "m3")
    assert not holds.take_turn("alice", "r1", 1, "m1")
    assert not holds.take_turn("alice", "r1", 2, "m1")


def test_ended_turns_are_forgotten_and_take_no_place_among_a_nodes_holders(holds):
    holds.add(ALICE, NOW)
    holds.take_turn("alice", "r1", 3, "m1")
    assert holds.holders_on("node-a", None, 10) == ([Holder(CID, "alice", "r1")], None)
    holds.end_turns("alice", "r1")
    holds.end_turns("alice", "r1")  # a repeat changes nothing
    assert holds.take_turn("alice", "r1", 1, "m2")
