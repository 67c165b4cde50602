"""Holds: one Kubo pin per (node, CID) shared by requests; removed only by the last."""

from __future__ import annotations

from chalicelib.fleet.holds import PinHolds
from tests.support.memory.holds import MemoryHolds

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def test_only_the_last_holder_removes_the_pin():
    holds = PinHolds(MemoryHolds(), lease_seconds=60)
    # Given two tenants' requests holding the same CID on one node
    assert holds.hold("node-a", CID, "alice", "r1")
    assert holds.hold("node-a", CID, "bob", "r2")
    # When one lets go, then the pin must stay
    assert not holds.release("node-a", CID, "alice", "r1", token="m1")
    # When the other lets go too, then it owns the removal
    assert holds.release("node-a", CID, "bob", "r2", token="m2")


def test_repeated_messages_count_once():
    holds = PinHolds(MemoryHolds(), lease_seconds=60)
    assert holds.hold("node-a", CID, "alice", "r1")
    assert holds.hold("node-a", CID, "alice", "r1")  # duplicate delivery
    assert holds.hold("node-a", CID, "bob", "r2")
    assert not holds.release("node-a", CID, "alice", "r1", token="m1")
    assert not holds.release("node-a", CID, "alice", "r1", token="m1")  # duplicate unpin
    assert holds.release("node-a", CID, "bob", "r2", token="m2")


def test_a_new_holder_waits_while_a_removal_is_under_way():
    clock = Clock()
    holds = PinHolds(MemoryHolds(), lease_seconds=60, clock=clock)
    holds.hold("node-a", CID, "alice", "r1")
    # Given the last holder is removing the pin
    assert holds.release("node-a", CID, "alice", "r1", token="m1")
    # When a new request wants the same CID there, then it must come back later
    assert not holds.hold("node-a", CID, "bob", "r2")
    # When the removal is over, then the new request may pin
    holds.released("node-a", CID, token="m1")
    assert holds.hold("node-a", CID, "bob", "r2")
    # And the old removal, retried, does not remove the new holder's pin
    assert not holds.release("node-a", CID, "alice", "r1", token="m1")


def test_an_abandoned_removal_expires():
    clock = Clock()
    holds = PinHolds(MemoryHolds(), lease_seconds=60, clock=clock)
    holds.hold("node-a", CID, "alice", "r1")
    assert holds.release("node-a", CID, "alice", "r1", token="m1")  # the worker then dies
    assert not holds.hold("node-a", CID, "bob", "r2")
    clock.ms += 61_000
    assert holds.hold("node-a", CID, "bob", "r2")


def test_a_retried_removal_owns_its_lease_again():
    holds = PinHolds(MemoryHolds(), lease_seconds=60)
    holds.hold("node-a", CID, "alice", "r1")
    assert holds.release("node-a", CID, "alice", "r1", token="m1")
    # The unpin failed on Kubo and the same message comes back
    assert holds.release("node-a", CID, "alice", "r1", token="m1")
    # Another message may not steal it
    assert not holds.release("node-a", CID, "alice", "r1", token="m9")


def test_holds_on_other_nodes_are_independent():
    holds = PinHolds(MemoryHolds(), lease_seconds=60)
    holds.hold("node-a", CID, "alice", "r1")
    holds.hold("node-b", CID, "alice", "r1")
    assert holds.release("node-a", CID, "alice", "r1", token="m1")
    holds.released("node-a", CID, token="m1")
    assert holds.hold("node-b", CID, "bob", "r2")
    assert not holds.release("node-b", CID, "alice", "r1", token="m2")


def test_a_pin_message_delivered_again_during_a_removal_must_come_back_later():
    clock = Clock()
    holds = PinHolds(MemoryHolds(), lease_seconds=60, clock=clock)
    holds.hold("node-a", CID, "alice", "r1")
    assert holds.release("node-a", CID, "alice", "r1", token="m1")
    # Given a new holder came in once the lease had expired
    clock.ms += 61_000
    assert holds.hold("node-a", CID, "bob", "r2")
    # And a second removal is now under way
    assert holds.release("node-a", CID, "bob", "r2", token="m2")
    # When bob's pin message is delivered again, then it must come back later
    assert not holds.hold("node-a", CID, "bob", "r2")


def test_a_forced_release_takes_a_removal_nobody_holds():
    holds = PinHolds(MemoryHolds(), lease_seconds=60)
    # A pin made on Kubo after its request was gone: no hold, no lease
    assert holds.release("node-a", CID, "alice", "r1", token="m1", force=True)
    assert not holds.release("node-a", CID, "alice", "r1", token="m2")
