"""Unique bytes stored, for the operator: a CID held by two tenants counts
once, whichever tenant's changes fold first, and when their folds meet."""

from __future__ import annotations

import pytest

from chalicelib.pins.pin import Pin
from chalicelib.usage.ledger import BytesLedger, FoldedMonth, month_bytes
from chalicelib.usage.months import Month
from chalicelib.usage.unique import CidHold, HoldChange, held_after, operator_usage
from tests.usage.conftest import World

MARCH = Month(2026, 3)
HOUR = 3_600_000
T0 = MARCH.start_ms + HOUR


def pin_at(world: World, tenant_id: str, hour: int) -> Pin:
    world.clock.now = T0 + hour * HOUR - 1  # the create moves it on by 1 ms
    return world.pinned(world.create(tenant_id), 1000)


def delete_at(world: World, pin: Pin, hour: int) -> None:
    world.clock.now = T0 + hour * HOUR
    world.service.delete(pin.tenant_id, pin.request_id)


@pytest.mark.parametrize("order", [("alice", "bob"), ("bob", "alice")])
def test_a_cid_of_two_tenants_counts_once_whichever_folds_first(world: World, order: tuple[str, str]):
    # given alice and bob pin the same CID (1000 bytes) an hour apart, alice first
    alice, bob = pin_at(world, "alice", 0), pin_at(world, "bob", 1)
    # when their changes fold in this order
    for tenant_id in order:
        world.store.fold(tenant_id)
    # then the operator stores 1000 bytes, since alice's pin (3 hours by hour 3)
    world.clock.now = T0 + 3 * HOUR
    usage = operator_usage(world.store, MARCH, world.clock.now)
    assert (usage.unique_bytes, usage.month.byte_hours) == (1000, 3000)
    assert world.store.holds[alice.cid_key].refs == 2
    # and after alice deletes hers at hour 4 and bob his at hour 5, folded in the same order: held hours 0 to 5
    delete_at(world, alice, 4)
    delete_at(world, bob, 5)
    for tenant_id in order:
        world.store.fold(tenant_id)
    usage = operator_usage(world.store, MARCH, T0 + 6 * HOUR)
    assert (usage.unique_bytes, usage.month.byte_hours) == (0, 5000)
    # while each tenant is billed its own pin's hours
    assert world.meter.usage("alice", MARCH).month.byte_hours == 4000
    assert world.meter.usage("bob", MARCH).month.byte_hours == 4000


def test_two_folds_meeting_on_a_cid_apply_each_hold_once(world: World):
    # given alice and bob pin the same CID
    pin_at(world, "alice", 0)
    pin_at(world, "bob", 1)

    # when bob's fold commits between alice's fold's read of the CID's hold and its commit
    def bob_first(tenant_id: str) -> None:
        if tenant_id == "alice":
            world.store.before_fold_commit = lambda _: None
            assert world.store.fold("bob") == 0

    world.store.before_fold_commit = bob_first
    began_again = world.store.fold("alice")
    # then alice's fold found the hold changed and began again from bob's
    assert began_again == 1
    world.clock.now = T0 + 2 * HOUR
    usage = operator_usage(world.store, MARCH, world.clock.now)
    assert (usage.unique_bytes, usage.month.byte_hours) == (1000, 2000)
    assert [hold.refs for hold in world.store.holds.values()] == [2]


def test_a_hold_ending_before_its_start_is_folded_counts_nothing():
    # given a CID's end folded before its start (as a fold of another shard could)
    start, end = HoldChange("c", T0, 1, 500), HoldChange("c", T0 + HOUR, -1, 500)
    hold, first = held_after(CidHold(), [end])
    hold, second = held_after(hold, [start])
    # then nothing is held, and nothing was booked for the hour
    ledger = BytesLedger({}, first + second)
    assert hold.refs == 0 and ledger.total == 0
    assert month_bytes(ledger, MARCH, T0 + 2 * HOUR).byte_ms == 0
    assert hold.version == 2


def test_a_holder_folded_after_the_period_ended_continues_it():
    # given a CID held from hour 0 to 2 by one request, folded
    hold, booked = held_after(CidHold(), [HoldChange("c", T0, 1, 10), HoldChange("c", T0 + 2 * HOUR, -1, 10)])
    # when another request's hold from hour 1 (still held) is folded after
    hold, more = held_after(hold, [HoldChange("c", T0 + HOUR, 1, 10)])
    # then the period goes on from hour 0: held, and counted once over its hours
    ledger = BytesLedger({MARCH: FoldedMonth()}, booked + more)
    assert (hold.refs, hold.since, ledger.total) == (1, T0, 10)
    assert month_bytes(ledger, MARCH, T0 + 4 * HOUR).byte_ms == 10 * 4 * HOUR
