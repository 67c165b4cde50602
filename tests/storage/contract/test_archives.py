"""ArchiveRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import random

import pytest

from chalicelib.cold.archive_repository import (
    ARCHIVED,
    ARCHIVING,
    DELETING,
    FAILED,
    ArchivedCar,
    ArchiveHold,
    ArchiveHolder,
    ArchiveLease,
    Held,
    Left,
    Orphan,
)
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.archives import MemoryArchives

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
OTHER = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
ALICE = ArchiveHolder(CID, "alice", "r1")
BOB = ArchiveHolder(CID, "bob", "r2")
NOW = 1_000
CAR = ArchivedCar(
    car_key=f"archives/{CID}.car",
    index_key=f"archives/{CID}.idx",
    car_bytes=123,
    car_sha256="ab" * 32,
    piece_cid_v1="baga6ea4seaq",
    piece_cid_v2="bafkzcib",
    padded_size=128,
    archived_ms=NOW,
)


@pytest.fixture(params=BACKENDS)
def archives(request):
    if request.param == "memory":
        return MemoryArchives()
    return DynamoArchiveRepository(dynamo_connection(request))


def test_a_hold_creates_the_archive_once_and_counts_each_holder(archives):
    # Given no archive, when two requests hold the CID (one twice)
    assert archives.state(CID) is None
    assert archives.hold(ALICE) is Held.ADDED
    assert archives.hold(ALICE) is Held.ALREADY_HELD
    assert archives.hold(BOB) is Held.ADDED
    # Then one archive, being archived, counts both
    state = archives.state(CID)
    assert (state.state, state.holders, state.changes, state.lease, state.car) == (ARCHIVING, 2, 2, None, None)


def test_a_holder_leaves_only_at_the_count_read_and_the_last_orphans_the_archive(archives):
    archives.hold(ALICE)
    archives.hold(BOB)
    # When one leaves at a count no longer stored, then nothing changes
    assert archives.leave(ALICE, 1, NOW) is Left.RECOUNT
    assert archives.state(CID).holders == 2
    assert archives.leave(ALICE, 2, NOW) is Left.REMOVED
    assert archives.leave(ALICE, 1, NOW) is Left.NOT_HELD
    assert archives.state(CID).orphaned_ms is None
    # And the last one orphans it as of its step
    assert archives.leave(BOB, 1, NOW) is Left.LAST
    state = archives.state(CID)
    assert (state.holders, state.orphaned_ms) == (0, NOW)
    assert archives.orphaned(NOW + 1, 10) == [Orphan(CID, NOW)]
    assert archives.orphaned(NOW, 10) == []


def test_a_holder_coming_back_unorphans_the_archive(archives):
    archives.hold(ALICE)
    archives.leave(ALICE, 1, NOW)
    assert archives.hold(BOB) is Held.ADDED
    assert archives.state(CID).orphaned_ms is None
    assert archives.orphaned(NOW + 10, 10) == []


def test_one_archiver_at_a_time_takes_the_lease_and_counts_an_attempt(archives):
    archives.hold(ALICE)
    # When one archiver takes the lease, then another cannot while it is active
    taken = archives.take_lease(CID, ArchiveLease("m1", NOW + 60), NOW)
    assert (taken.lease, taken.attempts) == (ArchiveLease("m1", NOW + 60), 1)
    assert archives.take_lease(CID, ArchiveLease("m2", NOW + 120), NOW + 60) is None
    # And the same one takes it again; another once it expired
    assert archives.take_lease(CID, ArchiveLease("m1", NOW + 70), NOW + 10).attempts == 2
    assert archives.take_lease(CID, ArchiveLease("m2", NOW + 200), NOW + 71).lease.by == "m2"


def test_only_the_lease_holder_records_the_archive(archives):
    archives.hold(ALICE)
    archives.take_lease(CID, ArchiveLease("m1", NOW + 60), NOW)
    assert not archives.record_archived(CID, "m2", CAR)
    assert archives.record_archived(CID, "m1", CAR)
    state = archives.state(CID)
    assert (state.state, state.car, state.lease) == (ARCHIVED, CAR, None)
    # Then no lease is taken on an archived CID
    assert archives.take_lease(CID, ArchiveLease("m3", NOW + 60), NOW) is None


def test_a_failed_attempt_ends_the_lease_and_the_last_fails_the_archive(archives):
    archives.hold(ALICE)
    archives.take_lease(CID, ArchiveLease("m1", NOW + 60), NOW)
    assert not archives.record_failure(CID, "m2", "cut", failed=False)
    assert archives.record_failure(CID, "m1", "cut", failed=False)
    state = archives.state(CID)
    assert (state.state, state.lease, state.last_error) == (ARCHIVING, None, "cut")
    assert archives.take_lease(CID, ArchiveLease("m2", NOW + 60), NOW).attempts == 2
    # When given up without the lease (the dead-letter queue), then it is failed
    assert archives.record_failure(CID, None, "gave up", failed=True)
    state = archives.state(CID)
    assert (state.state, state.last_error) == (FAILED, "gave up")
    assert not archives.record_failure(CID, None, "again", failed=True)


def test_an_orphan_is_deleted_only_if_no_holder_came_back(archives):
    archives.hold(ALICE)
    archives.leave(ALICE, 1, NOW)
    changes = archives.state(CID).changes
    # When a holder came back and left again since the sweep read it, then it is not deleted
    archives.hold(BOB)
    archives.leave(BOB, 1, NOW + 5)
    assert not archives.start_deleting(CID, NOW, changes)
    assert not archives.forget(CID)
    # When nothing changed since, then it is deleting: no hold is taken, and it goes
    state = archives.state(CID)
    assert archives.start_deleting(CID, state.orphaned_ms, state.changes)
    assert archives.state(CID).state == DELETING
    assert archives.hold(ALICE) is Held.DELETING
    assert archives.forget(CID)
    assert archives.state(CID) is None
    # And a new hold starts a new archive
    assert archives.hold(ALICE) is Held.ADDED
    assert archives.state(CID).state == ARCHIVING


def test_orphans_come_oldest_first_a_page_at_a_time(archives):
    for cid, at in ((CID, NOW + 2), (OTHER, NOW + 1)):
        holder = ArchiveHolder(cid, "alice", "r1")
        archives.hold(holder)
        archives.leave(holder, 1, at)
    assert archives.orphaned(NOW + 10, 1) == [Orphan(OTHER, NOW + 1)]
    assert archives.orphaned(NOW + 10, 5) == [Orphan(OTHER, NOW + 1), Orphan(CID, NOW + 2)]


def test_a_cold_only_hold_is_due_to_cool_at_its_time_and_read_back(archives):
    # Given a hold due to cool, one not, and another tenant's
    assert archives.hold(ALICE, cools_at_ms=NOW + 50) is Held.ADDED
    archives.hold(ArchiveHolder(CID, "alice", "r3"))
    archives.hold(BOB)
    # Then each reads back as held, the tenant's holds of the CID are its own
    assert archives.hold_of(ALICE) == ArchiveHold(ALICE, NOW + 50)
    assert archives.hold_of(BOB) == ArchiveHold(BOB, None)
    assert archives.hold_of(ArchiveHolder(CID, "alice", "r9")) is None
    assert archives.holds_of(CID, "alice") == [
        ArchiveHold(ALICE, NOW + 50),
        ArchiveHold(ArchiveHolder(CID, "alice", "r3")),
    ]
    assert archives.holds_of(CID, "ali") == []
    # And only the one due is found, once its time has come
    assert archives.due_to_cool(NOW + 50, 10) == []
    assert archives.due_to_cool(NOW + 51, 10) == [ArchiveHold(ALICE, NOW + 50)]
    # And a hold taken again keeps its time
    assert archives.hold(ALICE, cools_at_ms=NOW + 999) is Held.ALREADY_HELD
    assert archives.hold_of(ALICE).cools_at_ms == NOW + 50


def test_cooling_is_moved_only_from_the_time_read_and_cleared(archives):
    archives.hold(ALICE, cools_at_ms=NOW + 50)
    archives.hold(BOB)
    # When moved from a time no longer stored, then nothing changes
    assert not archives.set_cooling(ALICE, NOW + 49, NOW + 500)
    assert not archives.set_cooling(ALICE, None, NOW + 500)
    # When moved from the time read, then it is due at the new one
    assert archives.set_cooling(ALICE, NOW + 50, NOW + 500)
    assert archives.due_to_cool(NOW + 51, 10) == []
    assert archives.due_to_cool(NOW + 501, 10) == [ArchiveHold(ALICE, NOW + 500)]
    # And a hold not due is made due only from "not due"; cleared, it is no longer found
    assert archives.set_cooling(BOB, None, NOW + 10)
    assert archives.set_cooling(ALICE, NOW + 500, None)
    assert archives.due_to_cool(NOW + 1000, 10) == [ArchiveHold(BOB, NOW + 10)]
    assert archives.hold_of(ALICE) == ArchiveHold(ALICE, None)
    # And a holder gone is neither due nor made due
    archives.leave(BOB, 2, NOW)
    assert archives.due_to_cool(NOW + 1000, 10) == []
    assert not archives.set_cooling(BOB, None, NOW + 10)
    assert archives.hold_of(BOB) is None


def test_holds_due_to_cool_come_soonest_first_a_page_at_a_time(archives):
    archives.hold(ArchiveHolder(OTHER, "alice", "r1"), cools_at_ms=NOW + 2)
    archives.hold(ALICE, cools_at_ms=NOW + 1)
    assert archives.due_to_cool(NOW + 10, 1) == [ArchiveHold(ALICE, NOW + 1)]
    assert [hold.cools_at_ms for hold in archives.due_to_cool(NOW + 10, 5)] == [NOW + 1, NOW + 2]


def test_holds_of_many_cids_come_soonest_first_whichever_partition_keeps_them(archives):
    # Given 40 CIDs' holds due in an order unrelated to their CIDs (the
    # DynamoDB index spreads them over its partitions by CID)
    times = random.Random(3).sample(range(1, 1000), 40)
    holds = {ArchiveHolder(f"bafy-many-{i}", "alice", f"r{i}"): NOW + t for i, t in enumerate(times)}
    for holder, due in holds.items():
        archives.hold(holder, cools_at_ms=due)
    # When the 7 soonest are asked for
    # Then they are the 7 soonest of all, in order
    soonest = sorted(holds.items(), key=lambda item: item[1])[:7]
    assert archives.due_to_cool(NOW + 1000, 7) == [ArchiveHold(holder, due) for holder, due in soonest]
