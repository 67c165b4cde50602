"""SlotRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import pytest

from chalicelib.storage.slot_repository import DynamoSlotRepository
from chalicelib.worker.invocation_slots import SlotRepository
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.slots import MemorySlots

NOW = 1_000_000


@pytest.fixture(params=BACKENDS)
def slots(request: pytest.FixtureRequest) -> SlotRepository:
    if request.param == "memory":
        return MemorySlots()
    dynamo_connection(request)
    return DynamoSlotRepository()


def test_a_slot_is_taken_once_until_its_lease_ends(slots: SlotRepository) -> None:
    # given: alice's slot 0 taken until NOW + 30 s
    assert slots.take("alice", 0, NOW + 30_000, NOW)
    # when/then: another take of it before the lease ends is refused, also at its last millisecond
    assert not slots.take("alice", 0, NOW + 31_000, NOW + 1)
    assert not slots.take("alice", 0, NOW + 60_000, NOW + 30_000)
    # and: another slot of alice's, and bob's slot 0, are free
    assert slots.take("alice", 1, NOW + 30_000, NOW)
    assert slots.take("bob", 0, NOW + 30_000, NOW)
    assert slots.leases("alice") == {0: NOW + 30_000, 1: NOW + 30_000}


def test_a_slot_whose_lease_ended_is_taken_over(slots: SlotRepository) -> None:
    # given: a slot whose invocation died without giving it back
    slots.take("alice", 0, NOW + 30_000, NOW)
    # when: another batch takes it once the lease has ended
    assert slots.take("alice", 0, NOW + 70_000, NOW + 30_001)
    # then: the new lease is read, and the old holder's give-back frees nothing
    slots.give_back("alice", 0, NOW + 30_000)
    assert slots.leases("alice") == {0: NOW + 70_000}


def test_a_slot_given_back_is_free(slots: SlotRepository) -> None:
    # given: alice's slot 2 held
    slots.take("alice", 2, NOW + 30_000, NOW)
    # when: its batch gives it back
    slots.give_back("alice", 2, NOW + 30_000)
    # then: no lease is left, and it can be taken at once
    assert slots.leases("alice") == {}
    assert slots.take("alice", 2, NOW + 30_000, NOW + 1)


def test_a_tenant_with_no_slot_has_no_lease(slots: SlotRepository) -> None:
    assert slots.leases("nobody") == {}
    slots.give_back("nobody", 0, NOW)  # nothing to free: no error
