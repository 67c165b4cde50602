"""The count folder fed by the pins table's stream: app.fold_counts handed
the records moto's stream holds, as Lambda's event source mapping hands them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.busy import StorageBusy
from chalicelib.pins.model import STATUSES
from chalicelib.pins.timestamps import now_ms
from chalicelib.storage.change_stream import CHANGE_FILTER, CHANGE_PREFIXES, is_change
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.pin_keys import (
    MAX_MS,
    PIN,
    STATUS_CODES,
    change_of,
    changes_range,
    entry_prefix,
    status_prefix,
)
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.shard_plan import LEAD_MS, ShardPlan, ShardPlans
from chalicelib.wiring import Services
from devstack.stream_poller import streams_client
from tests.storage.test_pin_counts import START_MS, add_pin, announce

TENANT = "tenant-1"
SHARDS = 5


@pytest.fixture
def store(services: Services) -> PinStore:
    """The tenant's pins spread over five shards from the start."""
    ShardPlans(now_ms=lambda: -LEAD_MS).raise_to(TENANT, SHARDS)
    return services.store


@pytest.fixture
def fold_counts(services: Services) -> Iterator[Any]:
    """The handler as Lambda calls it, in a container wired to moto."""
    import app as app_module

    app_module.services.install(services)
    yield lambda records: app_module.fold_counts({"Records": records}, None)
    app_module.services.install(None)


@pytest.fixture
def folds(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The shards the container's folder is asked to fold, in order."""
    asked: list[str] = []
    fold = services.folder.fold

    def recording(shard: str) -> int:
        asked.append(shard)
        return fold(shard)

    monkeypatch.setattr(services.folder, "fold", recording)
    return asked


def stream_records(table: str) -> list[dict[str, Any]]:
    """Every record the table's stream holds, oldest first."""
    streams = streams_client()
    (stream,) = streams.list_streams(TableName=table)["Streams"]
    (shard,) = streams.describe_stream(StreamArn=stream["StreamArn"])["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream["StreamArn"], ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]


def changes() -> list[dict[str, Any]]:
    """The stream's records the event source mapping lets through."""
    return [record for record in stream_records(PinItem.Meta.table_name) if is_change(record)]


def changes_left(shard: str) -> int:
    """Count changes the shard holds (each is two items)."""
    streams = [entry_prefix(PIN), *map(status_prefix, STATUS_CODES)]
    return len(
        {
            change_of(stream, item.sk)
            for stream in streams
            for item in PinItem.query(
                shard, PinItem.sk.between(*changes_range(stream, 0, MAX_MS)), consistent_read=True
            )
        }
    )


def changes_named(records: list[dict[str, Any]]) -> int:
    """The count changes these records insert (a move's two items each have one)."""
    return len({record["dynamodb"]["Keys"]["sk"]["S"].split("~", 1)[1] for record in records})


def shards_of(records: list[dict[str, Any]]) -> list[str]:
    return sorted({record["dynamodb"]["Keys"]["pk"]["S"] for record in records})


def all_counts(store: PinStore) -> list[int]:
    return [store.count(TENANT, frozenset(statuses), 0, MAX_MS) for statuses in (STATUSES, ["pinned"], ["queued"])]


def forty_pins(store: PinStore) -> None:
    """Created over the five shards, every third then pinned: two changes each for some."""
    for n in range(40):
        add_pin(store, TENANT, START_MS + 17 * n, "pinned" if n % 3 == 0 else "queued")


def test_a_batch_folds_every_shard_it_names_once_and_leaves_counts_exact(store, fold_counts, folds):
    # Given 40 pins over five shards, their count changes in the stream, not folded
    forty_pins(store)
    counts = all_counts(store)
    records = changes()
    shards = shards_of(records)
    assert len(shards) == SHARDS and len(records) > len(shards)
    # When the stream hands the function its change records in one batch
    answer = fold_counts(records)
    # Then nothing is reported failed, each shard was folded once and holds no change
    assert answer == {"batchItemFailures": []}
    assert sorted(folds) == shards
    assert [changes_left(shard) for shard in shards] == [0] * SHARDS
    # and every count is what it was
    assert all_counts(store) == counts


def test_the_records_of_a_shard_whose_fold_gave_up_are_reported_and_come_back(
    store, fold_counts, services, monkeypatch
):
    # Given changes in five shards, and one shard whose fold keeps meeting another folder
    forty_pins(store)
    counts = all_counts(store)
    records = changes()
    busy = shards_of(records)[2]
    fold = services.folder.fold

    def contended(shard: str) -> int:
        if shard == busy:
            raise StorageBusy(f"folding {shard} kept meeting another folder")
        return fold(shard)

    monkeypatch.setattr(services.folder, "fold", contended)
    # When the stream hands over the batch
    answer = fold_counts(records)
    # Then exactly that shard's records are reported, the others' shards are folded
    of_busy = [r for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == busy]
    assert sorted(item["itemIdentifier"] for item in answer["batchItemFailures"]) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in of_busy
    )
    assert {shard: changes_left(shard) for shard in shards_of(records) if changes_left(shard)} == {
        busy: changes_named(of_busy)
    }
    # and counts stay exact meanwhile (readers add the changes left)
    assert all_counts(store) == counts
    # When the stream delivers them again and the fold gets through
    monkeypatch.setattr(services.folder, "fold", fold)
    failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
    assert fold_counts([r for r in records if r["dynamodb"]["SequenceNumber"] in failed]) == {"batchItemFailures": []}
    # Then that shard holds no change either, and counts are unchanged
    assert changes_left(busy) == 0
    assert all_counts(store) == counts


def test_records_of_other_items_and_malformed_records_are_ignored_not_failed(store, fold_counts, folds):
    # Given the stream's records of everything but inserted changes: pins, their
    # copies and entries, counter buckets and removed changes (after a fold)
    forty_pins(store)
    fold_counts(changes())
    folds.clear()
    others = [record for record in stream_records(PinItem.Meta.table_name) if not is_change(record)]
    assert {record["eventName"] for record in others} == {"INSERT", "MODIFY", "REMOVE"}
    change = changes()[0]
    keys = change["dynamodb"]["Keys"]
    malformed: list[Any] = [
        {},
        None,
        "INSERT",
        {"eventName": "INSERT"},
        {"eventName": "INSERT", "dynamodb": "Keys"},
        {"eventName": "INSERT", "dynamodb": {"Keys": {"sk": keys["sk"]}, "SequenceNumber": "1"}},
        {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"N": "7"}, "sk": keys["sk"]}, "SequenceNumber": "1"}},
        {"eventName": "INSERT", "dynamodb": {"Keys": keys}},
    ]
    # When the function is handed them
    answer = fold_counts(others + malformed)
    # Then none is a failure, and no shard is folded for them
    assert answer == {"batchItemFailures": []}
    assert folds == []


def matches(pattern: Any, value: Any) -> bool:
    """Lambda's event filtering, as far as CHANGE_FILTER uses it: nested
    fields, each a list of values or prefixes, every field matching."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(key in value and matches(pattern[key], value[key]) for key in pattern)
    return any(
        isinstance(value, str) and value.startswith(option["prefix"]) if isinstance(option, dict) else value == option
        for option in pattern
    )


def test_the_mappings_filter_and_the_local_rule_let_through_exactly_the_inserted_changes(store, fold_counts):
    # Given every kind of record a pin's life writes: created, moved, replaced, deleted, folded
    forty_pins(store)
    pins = [store.get(TENANT, START_MS + 17 * n) for n in range(3)]
    store.delete(pins[0], announce(pins[0].created_ms))
    store.update(pins[1], status="failed")
    fold_counts(changes())
    records = stream_records(PinItem.Meta.table_name)
    # When the event source mapping's filter and the local stack's rule judge each
    judged = [(matches(CHANGE_FILTER, record), is_change(record)) for record in records]
    # Then they agree on every record, and let through the insertions of changes only
    assert all(by_filter == locally for by_filter, locally in judged)
    inserted_changes = [
        r
        for r in records
        if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["sk"]["S"].startswith(CHANGE_PREFIXES)
    ]
    assert [r for r, (through, _) in zip(records, judged, strict=True) if through] == inserted_changes
    assert len(inserted_changes) < len(records)


def test_the_folder_spreads_the_pins_of_the_tenants_whose_writes_it_folds(services, monkeypatch, fold_counts):
    # Given a planner that wants a shard per 0.01 pins/s; a tenant that pinned once an hour ago
    # (its change folded), and one that has just created 6 pins
    monkeypatch.setattr(services.planner, "_pins_per_shard_per_s", 0.01)
    add_pin(services.store, "tenant-old", now_ms() - 3_600_000, "queued")
    assert fold_counts(changes()) == {"batchItemFailures": []}
    for n in range(6):
        add_pin(services.store, "tenant-new", now_ms() + n, "queued")
    # When the stream hands the new changes to the folder
    fresh = [record for record in changes() if record["dynamodb"]["Keys"]["pk"]["S"].startswith("tenant-new#")]
    assert fold_counts(fresh) == {"batchItemFailures": []}
    # Then the writing tenant's new pins go to more shards; the one whose rate is nil keeps one
    ((_, shards),) = ShardPlans.read("tenant-new").steps
    assert shards > 1
    assert ShardPlans.read("tenant-old") == ShardPlan()
