"""Letting a holder go when another transaction is writing its count: both
counted tables (a node's pins, a CID's archive) answer "read the count
again" and change nothing (DynamoDB on moto; the conflict injected)."""

from __future__ import annotations

import pytest
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

from chalicelib.cold.archive_repository import ArchiveHolder, Left
from chalicelib.fleet.hold_repository import Hold, Lease, Removed
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.hold_repository import DynamoHoldRepository
from chalicelib.storage.tables import bind_models

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.fixture
def dynamo(settings) -> DynamoConnection:
    return bind_models(settings)


def conflicting(dynamo: DynamoConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every transaction from now on cancelled: another writer holds its second item."""

    def cancelled(*args, **kwargs):
        cause = VerboseClientError(
            {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}},
            "TransactWriteItems",
            cancellation_reasons=[None, CancellationReason(code="TransactionConflict")],
        )
        raise TransactWriteError("conflict", cause=cause)

    monkeypatch.setattr(dynamo.connection, "transact_write_items", cancelled)


def test_a_node_pin_release_meeting_another_writer_is_recounted(dynamo, monkeypatch):
    # Given a node's pin held by one request
    holds = DynamoHoldRepository(dynamo)
    hold = Hold("node-0", CID, "alice", "r1")
    holds.add(hold, 1_000)
    # When its release meets another writer of the count
    conflicting(dynamo, monkeypatch)
    removed = holds.remove(hold, 1, Lease("token", 2_000))
    monkeypatch.undo()
    # Then it is told to read the count again, and the hold is still there
    assert removed is Removed.RECOUNT
    assert holds.held(hold)


def test_an_archive_release_meeting_another_writer_is_recounted(dynamo, monkeypatch):
    # Given a CID's archive held by one request
    archives = DynamoArchiveRepository(dynamo)
    holder = ArchiveHolder(CID, "alice", "r1")
    archives.hold(holder)
    # When its release meets another writer of the count
    conflicting(dynamo, monkeypatch)
    left = archives.leave(holder, 1, 1_000)
    monkeypatch.undo()
    # Then it is told to read the count again, and the holder is still counted
    assert left is Left.RECOUNT
    assert archives.hold_of(holder) is not None and archives.state(CID).holders == 1
