"""Usage on DynamoDB (moto): bytes changes written in the pins' own
transactions, folded into months by the stream's function, read exactly
before, after and during a fold."""

from __future__ import annotations

import pytest

from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import PinRequest
from chalicelib.storage import usage_ledger
from chalicelib.storage.pin_keys import shard_key
from chalicelib.storage.usage_folder import shard_changes
from chalicelib.usage.months import Month
from chalicelib.wiring import Services

CIDS = [
    parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    parse_cid("bafkreidivzimqfqtoqxkrpge6bjyhlvxqs3rhe73owtmdulaxr5do5in7u"),
]
MARCH = Month(2026, 3)
HOUR = 3_600_000


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def pinned(services: Services, tenant_id: str, cid: int, size: int):
    pin = services.pins.create(tenant_id, PinRequest(cid=CIDS[cid]))
    pinning = services.store.update(pin, status="pinning")
    return services.store.update(pinning, status="pinned", info={"dag_size": str(size)})


def test_bytes_follow_pins_and_survive_the_fold(services: Services):
    # given two pinned pins, the second an hour into March, and one of them deleted
    clock = Clock(MARCH.start_ms - HOUR)
    services.store.usage_clock = clock
    first = pinned(services, "alice", 0, 1000)
    clock.now = MARCH.start_ms + HOUR
    pinned(services, "alice", 1, 300)
    clock.now = MARCH.start_ms + 2 * HOUR
    services.pins.delete("alice", first.request_id)
    shard = shard_key("alice", 0)
    # when usage is read before and after the fold
    before = services.usage.usage("alice", MARCH)
    assert len(shard_changes(shard)) == 3
    assert services.usage_folder.fold(shard) == 3
    after = services.usage.usage("alice", MARCH)
    # then both are exact: 300 bytes now, 1000 as March began, 1000 for 2 h and 300 for 1 h of it so far
    assert before == after
    assert after.bytes_pinned == 300 and after.month.opening == 1000
    assert shard_changes(shard) == []
    assert after.pins["pinned"] == 1
    # and bob has nothing
    assert services.usage.usage("bob").bytes_pinned == 0


def test_cold_bytes_are_recorded_and_folded_with_the_pinned_ones(services: Services):
    # given a pinned pin whose archive the archiver records in its info
    pin = pinned(services, "alice", 0, 1000)
    services.store.update(pin, info={**pin.info, "cold": "archived", "car_bytes": "1200"})
    before = services.usage.usage("alice")
    # when folded
    services.usage_folder.fold(shard_key("alice", 0))
    # then the cold bytes are the CAR's, before and after
    after = services.usage.usage("alice")
    assert (before.bytes_pinned, before.cold_bytes) == (after.bytes_pinned, after.cold_bytes) == (1000, 1200)
    assert after.cold_month is not None and after.cold_month.ending == 1200


def test_a_fold_during_a_read_counts_each_change_once(services: Services, monkeypatch: pytest.MonkeyPatch):
    # given a pinned pin whose change is not folded yet
    pinned(services, "alice", 0, 1000)
    months = usage_ledger._months
    folds: list[int] = []

    def fold_first(partition: str):
        # the stream's function folds between the reader's reads of the changes and of the months
        if not folds:
            folds.append(services.usage_folder.fold(shard_key("alice", 0)))
        return months(partition)

    monkeypatch.setattr(usage_ledger, "_months", fold_first)
    # when the usage is read
    usage = services.usage.usage("alice")
    # then the folded change is counted once, not twice
    assert folds == [1]
    assert usage.bytes_pinned == 1000


def test_the_stream_function_folds_usage_with_the_counts(services: Services):
    import app as app_module

    # given a pinned pin and the stream's record of its count change
    pinned(services, "alice", 0, 1000)
    shard = shard_key("alice", 0)
    record = {
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"pk": {"S": shard}, "sk": {"S": "s#p#~x"}}, "SequenceNumber": "1"},
    }
    # when the stream's function handles it
    app_module.services.install(services)
    try:
        assert app_module.fold_counts({"Records": [record]}, None) == {"batchItemFailures": []}
    finally:
        app_module.services.install(None)
    # then the bytes change is folded too
    assert shard_changes(shard) == []
    assert services.usage.bytes_pinned("alice") == 1000
