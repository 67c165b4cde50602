"""What only the DynamoDB pin store has to get right: DynamoDB's busy
answers turned into StorageBusy."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

from chalicelib.busy import StorageBusy
from chalicelib.pins.model import STATUSES, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.scan_limit import MAX_INDEXED_META_PAIRS
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.pin_keys import meta_key, shard_key
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


def test_large_meta_is_written_once_apart_and_deleted_with_its_pin(dynamo):
    # given every transaction's items recorded
    written = []
    client = dynamo.connection.client
    client.meta.events.register(
        "before-parameter-build.dynamodb.TransactWriteItems",
        lambda params, **_: written.append(params["TransactItems"]),
        unique_id="large-meta-writes",
    )
    store = PinStore(dynamo)
    meta = {f"field-{i}": "m" * 4000 for i in range(4)}
    pin = Pin("tenant-1", START_MS, "req-1", "queued", "bafy", "bafy", meta=meta)
    try:
        # when a pin with 16 KB of meta is created, moved twice and deleted
        store.create(pin, OutboxMessage("shard#0", "m1", "{}", START_MS))
        moved = store.update(store.update(pin, status="pinning"), status="pinned")
        store.delete(moved, OutboxMessage("shard#0", "m2", "{}", START_MS))
    finally:
        client.meta.events.unregister(
            "before-parameter-build.dynamodb.TransactWriteItems", unique_id="large-meta-writes"
        )
    # then the meta is written by the create alone, every item of the status changes is small,
    sizes = [[len(str(item)) for item in transaction] for transaction in written]
    assert max(sizes[0]) > 16_000
    assert max(max(s) for s in sizes[1:3]) < 2_000
    # and nothing of the pin is left
    assert not list(PinItem.query(meta_key("tenant-1", START_MS)))
    assert not [
        item.sk
        for item in PinItem.query(shard_key("tenant-1", 0))
        if "#~" not in item.sk and not item.sk.startswith("k#")
    ]


def test_replacing_a_pin_of_the_most_indexed_meta_by_another_fits_one_transaction(dynamo):
    # given a pin with 32 meta pairs of 400 characters (indexed, and too large to copy)
    written = []
    client = dynamo.connection.client
    client.meta.events.register(
        "before-parameter-build.dynamodb.TransactWriteItems",
        lambda params, **_: written.append(len(params["TransactItems"])),
        unique_id="replace-size",
    )
    store = PinStore(dynamo)
    meta = {f"k{i:02d}": "v" * 400 for i in range(MAX_INDEXED_META_PAIRS)}
    old = Pin("tenant-1", START_MS, "req-old", "pinned", "bafy", "bafy", name="a", meta=meta)
    new = Pin("tenant-1", START_MS + 1, "req-new", "queued", "bafy", "bafy", name="b", meta=meta)
    try:
        store.create(old, OutboxMessage("shard#0", "m1", "{}", START_MS))
        # when another such pin replaces it
        store.create(new, OutboxMessage("shard#0", "m2", "{}", START_MS), replacing=old)
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", unique_id="replace-size")
    # then one transaction of at most 100 items swapped them
    assert written[-1] <= 100
    assert store.get("tenant-1", START_MS) is None and store.get("tenant-1", START_MS + 1) == new
