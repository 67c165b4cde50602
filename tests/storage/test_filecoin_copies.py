"""CopyRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.filecoin.backend import CopyState, Receipt
from chalicelib.filecoin.repository import CidRecords, CidState, CopyRecord, Due, Want
from chalicelib.storage.filecoin_repository import DynamoCopyRepository
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.filecoin_copies import MemoryCopies

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
NOW = 1_000
RECEIPT = Receipt("f01234", "bafkzcib", CopyState.PENDING)


@pytest.fixture(params=BACKENDS)
def copies(request):
    if request.param == "memory":
        return MemoryCopies()
    return DynamoCopyRepository(dynamo_connection(request))


def test_wants_are_stored_per_request_and_make_the_cid_due(copies):
    # Given no state, when two requests want copies and one lets go
    copies.want(CID, Want("alice", "r1", 2), NOW)
    copies.want(CID, Want("bob", "r2", 3), NOW + 1)
    copies.unwant(CID, "bob", "r2", NOW + 2)
    copies.unwant(CID, "bob", "r-never", NOW + 3)
    # Then one want is left, and each step made the CID due at its time
    assert copies.records(CID).wants == [Want("alice", "r1", 2)]
    state = copies.records(CID).state
    assert (state.version, state.due_ms) == (4, NOW + 3)
    assert copies.due(NOW + 4, 10) == [Due(CID, NOW + 3)]
    assert copies.due(NOW + 3, 10) == []


def test_a_copy_is_added_only_at_the_state_version_read_and_only_once(copies):
    copies.mark_due(CID, NOW)
    record = CopyRecord(CID, 0, RECEIPT, created_ms=NOW, updated_ms=NOW)
    # When added at a version no longer stored, then nothing is written
    assert not copies.add_copy(record, expected_version=0)
    assert copies.copies(CID) == []
    # When added at the version read, then it is stored at version 1 and the state steps on
    assert copies.add_copy(record, expected_version=1)
    assert copies.copies(CID) == [replace(record, version=1)]
    assert copies.records(CID).state.version == 2
    # And the same key is never added twice
    assert not copies.add_copy(record, expected_version=2)


def test_a_copy_is_saved_only_from_the_version_read(copies):
    record = CopyRecord(CID, 0, RECEIPT, created_ms=NOW, updated_ms=NOW)
    copies.add_copy(record, expected_version=0)
    full = Receipt(
        "f01234",
        "bafkzcib",
        CopyState.PROVING,
        data_set_id="7",
        piece_id="3",
        transactions=("0xaa", "0xbb"),
        last_proven_epoch=120,
        ends_epoch=9_000,
        detail="proven",
    )
    saved = replace(record, receipt=full, updated_ms=NOW + 5, attempt=1, checked_ms=NOW + 5, lapsed_ms=7, version=2)
    # When saved from version 1, then it is stored whole; a second save from 1 is refused
    assert copies.save_copy(saved)
    assert not copies.save_copy(replace(saved, updated_ms=NOW + 9))
    assert copies.copy(CID, "f01234", 0) == saved
    assert copies.copy(CID, "f01234", 1) is None


def test_copies_are_listed_oldest_first(copies):
    later = CopyRecord(CID, 0, replace(RECEIPT, provider_id="f0a"), created_ms=NOW + 1, updated_ms=NOW + 1)
    sooner = CopyRecord(CID, 1, replace(RECEIPT, provider_id="f0b"), created_ms=NOW, updated_ms=NOW)
    copies.add_copy(later, 0)
    copies.add_copy(sooner, 1)
    assert [record.key for record in copies.copies(CID)] == [("f0b", 1), ("f0a", 0)]


def test_the_state_is_written_only_from_the_version_read(copies):
    # Given no state, when it is written as version 1, then it is stored, in the due index
    assert copies.set_state(CidState(CID, version=1, due_ms=NOW, waiting="spend cap reached", shown="0/2 pending"))
    assert copies.records(CID).state == CidState(CID, 1, NOW, "spend cap reached", "0/2 pending")
    # When written from a version no longer stored, then nothing changes
    assert not copies.set_state(CidState(CID, version=1))
    # When written from the version read without a due time, then it leaves the index
    assert copies.set_state(CidState(CID, version=2))
    assert copies.records(CID).state == CidState(CID, 2)
    assert copies.due(NOW + 10, 10) == []


def test_due_cids_come_soonest_first_across_partitions(copies):
    cids = [f"bafkrei{n:04d}" for n in range(40)]
    for n, cid in enumerate(cids):
        copies.mark_due(cid, NOW + (n * 7) % 40)
    due = copies.due(NOW + 100, 5)
    assert [item.due_ms for item in due] == [NOW, NOW + 1, NOW + 2, NOW + 3, NOW + 4]


def test_spend_is_reserved_only_within_the_cap(copies):
    # Given a cap of 100, when 60 and then 50 are reserved, then the second is refused
    assert copies.reserve_spend("2026-11", 60, 100)
    assert not copies.reserve_spend("2026-11", 50, 100)
    assert copies.reserve_spend("2026-11", 40, 100)
    assert not copies.reserve_spend("2026-12", 101, 100)
    # And a release gives it back
    copies.release_spend("2026-11", 40)
    assert (copies.spent("2026-11"), copies.spent("2026-12")) == (60, 0)


def test_spend_amounts_beyond_64_bits_are_kept_exactly(copies):
    # USDFC has 18 decimals: a thousand tokens is 10**21 units
    cap = 10**21
    assert copies.reserve_spend("2026-11", cap - 1, cap)
    assert copies.spent("2026-11") == cap - 1


def test_one_read_gives_the_state_the_wants_and_the_copies_of_a_cid(copies):
    # Given nothing recorded, then nothing is read
    assert copies.records(CID) == CidRecords(None, [], [])
    # Given a want and two copies of the CID, and a want of another
    copies.want(CID, Want("alice", "r1", 2), NOW)
    copies.want("bafkreiother", Want("bob", "r2", 1), NOW)
    later = CopyRecord(CID, 0, replace(RECEIPT, provider_id="f0a"), created_ms=NOW + 1, updated_ms=NOW + 1)
    sooner = CopyRecord(CID, 0, replace(RECEIPT, provider_id="f0b"), created_ms=NOW, updated_ms=NOW)
    copies.add_copy(later, 1)
    copies.add_copy(sooner, 2)
    # Then one read has them all, the copies oldest first
    records = copies.records(CID)
    assert (records.state.version, records.state.due_ms) == (3, NOW)
    assert records.wants == [Want("alice", "r1", 2)]
    assert [record.provider_id for record in records.copies] == ["f0b", "f0a"]
