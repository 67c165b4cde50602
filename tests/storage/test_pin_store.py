"""What only the DynamoDB pin store has to get right: DynamoDB's busy
answers turned into StorageBusy."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

from chalicelib.busy import StorageBusy
from chalicelib.pins.model import STATUSES, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.tables import bind_models

START_MS = 1_760_000_000_000


@pytest.fixture
def dynamo(settings) -> DynamoConnection:
    return bind_models(settings)


def client_error(code: str, operation: str = "Query") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "slow down"}}, operation)


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"]
)
def test_throttled_reads_are_storage_busy(dynamo, monkeypatch, code):
    # given DynamoDB answering every request with a throttling error (botocore's retries spent)
    def throttled(operation, kwargs, *args, **more):
        raise client_error(code, operation)

    monkeypatch.setattr(dynamo.connection, "dispatch", throttled)
    store = PinStore(dynamo)
    # when reading, listing or counting, then the domain hears "busy, retry later"
    with pytest.raises(StorageBusy):
        store.get("tenant-1", START_MS)
    with pytest.raises(StorageBusy):
        store.find("tenant-1", PinQuery(statuses=frozenset({"pinned"}), meta={"a": "b"}))
    with pytest.raises(StorageBusy):
        store.count("tenant-1", frozenset(STATUSES), START_MS - 1000, START_MS)


def test_other_dynamodb_errors_stay_what_they_are(dynamo, monkeypatch):
    def invalid(operation, kwargs, *args, **more):
        raise client_error("ValidationException", operation)

    monkeypatch.setattr(dynamo.connection, "dispatch", invalid)
    with pytest.raises(Exception) as raised:
        PinStore(dynamo).get("tenant-1", START_MS)
    assert not isinstance(raised.value, StorageBusy)


def test_a_transaction_that_keeps_conflicting_is_retried_a_bounded_number_of_times_then_busy(dynamo, monkeypatch):
    # given every transaction cancelled by a conflict with another writer
    attempts = []

    def conflicting(*args, **kwargs):
        attempts.append(1)
        cause = VerboseClientError(
            {"Error": {"Code": "TransactionCanceledException", "Message": "conflict"}},
            "TransactWriteItems",
            cancellation_reasons=[CancellationReason(code="TransactionConflict")],
        )
        raise TransactWriteError("conflict", cause=cause)

    monkeypatch.setattr(dynamo.connection, "transact_write_items", conflicting)
    pauses = []
    store = PinStore(dynamo, conflict_retries=3, sleep=pauses.append)
    # when a pin is written, then it is retried with pauses and ends busy
    announce = OutboxMessage("shard#0", f"{START_MS:013d}#m", "{}", START_MS)
    with pytest.raises(StorageBusy):
        store.create(Pin("tenant-1", START_MS, "req-1", "queued", "bafy", "bafy"), announce)
    assert len(attempts) == 4 and len(pauses) == 3
