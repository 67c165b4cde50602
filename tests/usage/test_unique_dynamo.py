"""Unique bytes on DynamoDB (moto): two tenants' folds meeting on a CID's
hold; the hold's version condition makes the later one fold again."""

from __future__ import annotations

import pytest

from chalicelib.storage import usage_folder
from chalicelib.storage.pin_keys import shard_key
from chalicelib.usage.months import Month
from chalicelib.usage.unique import operator_usage
from chalicelib.wiring import Services
from tests.usage.test_usage_dynamo import Clock, pinned

MARCH = Month(2026, 3)
HOUR = 3_600_000


def test_two_folds_meeting_on_a_cid_count_it_once(services: Services, monkeypatch: pytest.MonkeyPatch):
    # given alice and bob pin the same CID (1000 bytes), alice an hour before bob
    clock = Clock(MARCH.start_ms)
    services.store.usage_clock = clock
    alice = pinned(services, "alice", 0, 1000)
    clock.now += HOUR
    bob = pinned(services, "bob", 0, 1000)
    real_read = usage_folder.read_holds
    raced: list[int] = []

    def bob_folds_meanwhile(cids):
        read = real_read(cids)
        if not raced:
            raced.append(0)
            raced.append(services.usage_folder.fold(shard_key("bob", 0)))
        return read

    monkeypatch.setattr(usage_folder, "read_holds", bob_folds_meanwhile)
    # when bob's fold commits between alice's fold's read of the CID's hold and its transaction
    assert services.usage_folder.fold(shard_key("alice", 0)) == 1
    # then alice's fold began again from bob's hold: two holders, the bytes once, held since alice's pin
    assert raced == [0, 1]
    assert real_read([alice.cid_key])[alice.cid_key].refs == 2
    usage = operator_usage(services.operator_ledger, MARCH, MARCH.start_ms + 3 * HOUR)
    assert (usage.unique_bytes, usage.month.byte_hours) == (1000, 3000)
    # and once both delete theirs (hours 2 and 3) and fold, none, held 3 hours
    monkeypatch.setattr(usage_folder, "read_holds", real_read)
    for pin in (alice, bob):
        clock.now += HOUR
        services.pins.delete(pin.tenant_id, pin.request_id)
    for tenant_id in ("bob", "alice"):
        services.usage_folder.fold(shard_key(tenant_id, 0))
    usage = operator_usage(services.operator_ledger, MARCH, MARCH.start_ms + 5 * HOUR)
    assert (usage.unique_bytes, usage.month.byte_hours) == (0, 3000)
