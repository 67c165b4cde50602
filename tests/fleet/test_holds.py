"""Holds: one Kubo pin per (node, CID) shared by requests; removed only by the last."""

from __future__ import annotations

import pytest

from chalicelib.busy import StorageBusy
from chalicelib.fleet.holds import RECOUNTS, PinHolds
from tests.fleet.interleavings import Caller, Step, interleavings
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


# -- every interleaving ---------------------------------------------------------


class World:
    """Fresh holds over a repository that steps, and a node's pin of CID, per schedule."""

    def __init__(self, step: Step, holders: tuple[str, ...]) -> None:
        self.repository = MemoryHolds(step=step)
        self.holds = PinHolds(self.repository, lease_seconds=60)
        self.owners: list[str] = []
        for request_id in holders:
            assert self.holds.hold("node-a", CID, "alice", request_id)
        self.pinned = bool(holders)

    def release(self, request_id: str) -> None:
        """What the worker does: the owner of the removal unpins, then ends its lease."""
        token = f"m-{request_id}"
        if self.holds.release("node-a", CID, "alice", request_id, token):
            self.owners.append(request_id)
            self.pinned = False
            self.holds.released("node-a", CID, token)

    def hold(self, request_id: str) -> None:
        """What the worker does: pin once the hold is taken (else come back later)."""
        if self.holds.hold("node-a", CID, "alice", request_id):
            self.pinned = True

    def counted(self) -> int:
        state = self.repository.states[("node-a", CID)]
        stored = sum(1 for hold in self.repository.holds if (hold.node_id, hold.cid_key) == ("node-a", CID))
        assert state.holders == stored, "the count disagrees with the holder items"
        return stored


def test_two_holders_released_at_once_unpin_exactly_once_in_every_interleaving():
    worlds: list[World] = []

    def releases(step: Step) -> list[Caller]:
        # Given two requests holding the CID on one node
        world = World(step, ("r1", "r2"))
        worlds.append(world)
        # When both are released at the same time
        return [lambda: world.release("r1"), lambda: world.release("r2")]

    outcomes = {schedule: worlds[-1] for schedule in interleavings(releases)}

    # Then in every interleaving exactly one of them removes the pin, and the count is exact
    leaked = [schedule for schedule, world in outcomes.items() if world.pinned]
    assert leaked == [], f"pinned with no holder left in {len(leaked)} of {len(outcomes)} interleavings"
    assert all(len(world.owners) == 1 and world.counted() == 0 for world in outcomes.values())


def test_a_hold_taken_while_the_last_holder_lets_go_is_never_left_without_its_pin():
    worlds: list[World] = []

    def release_and_hold(step: Step) -> list[Caller]:
        # Given one request holding the CID on a node
        world = World(step, ("r1",))
        worlds.append(world)
        # When it is released while another request takes a hold
        return [lambda: world.release("r1"), lambda: world.hold("r2")]

    outcomes = {schedule: worlds[-1] for schedule in interleavings(release_and_hold)}

    # Then in every interleaving the node keeps the pin exactly while someone holds it
    assert len(outcomes) > 2
    for schedule, world in outcomes.items():
        assert world.pinned == (world.counted() > 0), schedule


def test_a_release_whose_count_never_settles_gives_up_busy_having_changed_nothing():
    repository = MemoryHolds()
    holds = PinHolds(repository, lease_seconds=60)
    holds.hold("node-a", CID, "alice", "r1")
    arrivals = iter(range(RECOUNTS + 1))

    def another_holder_arrives(operation: str) -> None:
        if operation == "remove":
            holds.hold("node-a", CID, "bob", f"r-{next(arrivals)}")

    # Given another request taking a hold between every read of the count and its write
    repository.step = another_holder_arrives

    # When alice's request lets go, then it gives up (its message comes back) and still holds
    with pytest.raises(StorageBusy):
        holds.release("node-a", CID, "alice", "r1", token="m1")
    repository.step = lambda operation: None
    assert holds.holding("node-a", CID, "alice", "r1")
    assert repository.states[("node-a", CID)].holders == RECOUNTS + 1
