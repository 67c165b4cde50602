"""HoldRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import pytest

from chalicelib.fleet.hold_repository import Added, Hold, Holder, Lease, Removed
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


def test_the_last_hold_leaves_with_the_lease_and_others_just_leave(holds):
    holds.add(ALICE, NOW)
    holds.add(BOB, NOW)
    # Not the last: the lease is refused, and nothing changes
    assert holds.remove(ALICE, NOW, LEASE) is Removed.NOT_LAST
    assert holds.held(ALICE)
    assert holds.remove(ALICE, NOW, None) is Removed.REMOVED
    assert holds.remove(ALICE, NOW, None) is Removed.NOT_HELD
    # The last one takes the lease in the same step
    assert holds.remove(BOB, NOW, LEASE) is Removed.REMOVED
    assert holds.lease("node-a", CID) == LEASE
    assert not holds.held(BOB)


def test_no_hold_is_added_while_a_lease_is_active_and_one_is_after_it_expires(holds):
    holds.add(ALICE, NOW)
    holds.remove(ALICE, NOW, LEASE)
    assert holds.add(BOB, NOW + 60) is Added.RELEASING
    assert not holds.held(BOB)
    assert holds.add(BOB, NOW + 61) is Added.ADDED


def test_a_lease_is_taken_again_only_by_its_owner_or_by_force_once_free(holds):
    holds.add(ALICE, NOW)
    holds.remove(ALICE, NOW, LEASE)
    later = Lease("m1", NOW + 120)
    assert holds.take_lease("node-a", CID, later, NOW, force=False)
    assert holds.lease("node-a", CID) == later
    assert not holds.take_lease("node-a", CID, Lease("m9", NOW + 120), NOW, force=True)
    holds.end_lease("node-a", CID, "m9")  # not its lease: nothing happens
    assert holds.lease("node-a", CID) == later
    holds.end_lease("node-a", CID, "m1")
    assert holds.lease("node-a", CID) is None
    assert holds.take_lease("node-a", CID, Lease("m9", NOW + 120), NOW, force=True)
    assert not holds.take_lease("node-a", CID, Lease("m8", NOW + 120), NOW, force=False)


def test_no_lease_is_taken_while_the_pin_is_held(holds):
    holds.add(ALICE, NOW)
    assert not holds.take_lease("node-a", CID, LEASE, NOW, force=True)
    assert holds.lease("node-a", CID) is None


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
