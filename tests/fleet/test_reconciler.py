"""The fleet reconciler: missing pins repaired, leaked ones reclaimed after
the grace (never while a pin is in progress), counts corrected, holds of
requests gone or failed let go after the pin deadline and the grace, bounded
runs resumed, down nodes skipped. In-memory holds and pins, in-process nodes."""

from __future__ import annotations

import time

import pytest

from chalicelib.fleet.hold_repository import Hold, Holder, Lease
from chalicelib.fleet.holds import PinHolds
from chalicelib.fleet.reconcile_repository import ReconcileCursor
from chalicelib.fleet.reconciler import FleetReconciler, ReconcileReport
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.pins.pin import Pin
from chalicelib.pins.request_ids import new_request_id
from chalicelib.queue.outbox_repository import OutboxMessage
from tests.fleet.node_pins import Fleet
from tests.support.cids import cid_v1, peer_id
from tests.support.memory.holds import MemoryHolds
from tests.support.memory.nodes import MemoryNodes
from tests.support.memory.pins import MemoryPinRepository
from tests.support.memory.reconcile import MemoryReconcile

GRACE_S = 3600
DEADLINE_S = 6 * 3600
# How long a hold stays orphaned before the reconciler lets it go.
ORPHAN_WAIT_S = DEADLINE_S + GRACE_S
NODES = ("node-a", "node-b", "node-c")


class Clock:
    def __init__(self) -> None:
        self.ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


class World:
    """Three nodes, their holds and requests, and a reconciler over them."""

    def __init__(self, pins_per_run: int = 100) -> None:
        self.clock = Clock()
        self.holds_repo = MemoryHolds()
        self.holds = PinHolds(self.holds_repo, lease_seconds=60, clock=self.clock)
        self.pins = MemoryReconcile(self.holds_repo)
        self.store = MemoryPinRepository()
        self.registry = NodeRegistry(MemoryNodes(), clock=self.clock)
        for i, node_id in enumerate(NODES):
            self.registry.register(node_id, f"http://{node_id}", peer_id(node_id), [f"/ip4/192.0.2.{i}/tcp/4001"])
        self.fleet = Fleet(NODES)
        self.reconciler = FleetReconciler(
            self.registry,
            self.holds,
            self.pins,
            self.store,
            self.fleet.kubo,
            self.fleet.copy_to,
            grace_seconds=GRACE_S,
            pin_deadline_seconds=DEADLINE_S,
            pins_per_run=pins_per_run,
            clock=self.clock,
            release_archive=lambda cid, tenant_id, request_id: self.archives_released.append((cid, request_id)),
        )
        self.archives_released: list[tuple[str, str]] = []
        self._created = 1_600_000_000_000

    def run(self) -> ReconcileReport:
        return self.reconciler.run(time.monotonic() + 60)

    def request(self, cid: str, replicas: tuple[str, ...] = ("node-a", "node-b"), status: str = "pinned") -> Pin:
        """A request holding `cid` on `replicas`, which pin it when it is pinned."""
        self._created += 1
        pin = Pin(
            tenant_id="alice",
            created_ms=self._created,
            request_id=new_request_id(self._created),
            status=status,
            cid=cid,
            cid_key=cid,
            info={"replicas": ",".join(replicas)} if status == "pinned" else {},
            node_ids=replicas,
        )
        self.store.create(pin, OutboxMessage("shard#0", f"{self._created}#m", "{}", self._created))
        for node_id in replicas:
            assert self.holds.hold(node_id, cid, pin.tenant_id, pin.request_id)
            if status == "pinned":
                self.fleet[node_id].pin(cid)
        return pin

    def delete(self, pin: Pin) -> None:
        """The request deleted, its unpin lost (say, dead-lettered): its holds stay."""
        self.store.delete(pin, OutboxMessage("shard#0", f"{pin.created_ms}#d", "{}", pin.created_ms))

    def unheld_pin(self, node_id: str, seed: object, size: int = 4096) -> str:
        """A pin made on the node behind the service's back."""
        cid = cid_v1(seed)
        self.fleet[node_id].pin(cid, size)
        return cid


@pytest.fixture
def world() -> World:
    return World()


def test_a_pin_lost_behind_the_services_back_is_pinned_again_from_its_other_replica(world):
    # Given a request pinned on node-a and node-b, and node-b unpinned behind the service's back
    cid = cid_v1("lost")
    world.request(cid)
    world.fleet["node-b"].pinned.pop(cid)

    # When the reconciler runs
    report = world.run()

    # Then node-b pins it again, dialing node-a, and the run says so
    assert world.fleet["node-b"].is_pinned(cid)
    assert world.fleet.copies == [("node-b", cid, ("/ip4/192.0.2.0/tcp/4001/p2p/" + peer_id("node-a"),))]
    assert (report.missing_found, report.repaired) == (1, 1)
    assert (report.leaked_found, report.reclaimed) == (0, 0)


def test_a_held_cid_a_worker_is_still_pinning_is_left_to_it(world):
    # Given a request still pinning: it holds the CID on its nodes, which do not pin it yet
    cid = cid_v1("pinning")
    world.request(cid, status="pinning")

    # When the reconciler runs, then nothing is owed or repaired
    report = world.run()
    assert (report.missing_found, report.repaired) == (0, 0)
    assert world.fleet.copies == []


def test_a_repair_that_does_not_finish_is_tried_first_next_run(world):
    # Given a lost pin whose content cannot be fetched for now
    cid = cid_v1("slow")
    pin = world.request(cid)
    world.fleet["node-b"].pinned.pop(cid)
    world.fleet["node-b"].unfetchable.add(cid)

    # When a run cannot repair it, then the node's cursor keeps it (the pass itself is over)
    report = world.run()
    assert (report.missing_found, report.repaired) == (1, 0)
    assert world.pins.cursor("node-b").repairs == (Holder(cid, "alice", pin.request_id),)

    # When it can be fetched again, then the next run repairs it
    world.fleet["node-b"].unfetchable.clear()
    report = world.run()
    assert (report.missing_found, report.repaired) == (1, 1)
    assert world.fleet["node-b"].is_pinned(cid)
    assert world.pins.cursor("node-b").repairs == ()


def test_a_leaked_pin_is_reclaimed_only_after_the_grace(world):
    # Given a pin no hold covers on node-a, and a held one beside it
    leaked = world.unheld_pin("node-a", "leaked", size=4096)
    held = cid_v1("held")
    world.request(held)

    # When runs see it within the grace period, then it stays
    assert world.run().leaked_found == 1
    world.clock.advance(GRACE_S - 1)
    report = world.run()
    assert (report.leaked_found, report.reclaimed) == (1, 0)
    assert world.fleet["node-a"].is_pinned(leaked)

    # When a run finds it still unheld after the grace, then it is unpinned, and only it
    world.clock.advance(1)
    report = world.run()
    assert (report.reclaimed, report.bytes_reclaimed) == (1, 4096)
    assert world.fleet["node-a"].removed == [leaked]
    assert world.fleet["node-a"].is_pinned(held)
    # And its removal lease is over: a new request may hold it at once
    assert world.holds.hold("node-a", leaked, "bob", "r9")


def test_a_hold_that_came_and_went_since_the_sighting_restarts_the_grace(world):
    # Given a leaked pin sighted, then held by a request that let go of it (its unpin failed)
    leaked = world.unheld_pin("node-a", "came-and-went")
    world.run()
    world.clock.advance(GRACE_S / 2)
    assert world.holds.hold("node-a", leaked, "bob", "r1")
    assert world.holds.release("node-a", leaked, "bob", "r1", token="m1")
    world.holds.released("node-a", leaked, "m1")

    # When the grace from the first sighting is over, then the pin stays: it was sighted again
    world.clock.advance(GRACE_S / 2)
    assert world.run().reclaimed == 0
    world.clock.advance(GRACE_S / 2)
    assert world.run().reclaimed == 0
    # And it goes a grace period after the later sighting
    world.clock.advance(GRACE_S / 2)
    assert world.run().reclaimed == 1


def test_a_pin_whose_hold_is_taken_after_the_sighting_stays(world):
    # Given a pin sighted unheld, then held by a request whose worker is pinning it
    cid = world.unheld_pin("node-a", "taken")
    world.run()
    assert world.holds.hold("node-a", cid, "bob", "r1")

    # When runs go on past the grace, then it is never unpinned
    world.clock.advance(2 * GRACE_S)
    report = world.run()
    assert (report.leaked_found, report.reclaimed) == (0, 0)
    assert world.fleet["node-a"].removed == []


def test_a_hold_being_taken_while_the_reconciler_reclaims_wins_or_waits(world):
    # Given a pin unheld past its grace
    cid = world.unheld_pin("node-a", "race")
    world.run()
    world.clock.advance(GRACE_S)
    taken: list[bool] = []

    # When a worker takes a hold on it just before the reconciler takes its lease
    def worker_arrives(operation: str) -> None:
        if operation == "take_unheld" and not taken:
            taken.append(world.holds.hold("node-a", cid, "bob", "r1"))

    world.holds_repo.step = worker_arrives
    report = world.run()

    # Then the hold is taken and the pin stays
    assert taken == [True]
    assert report.reclaimed == 0
    assert world.fleet["node-a"].is_pinned(cid)


def test_a_worker_arriving_during_a_reclaim_waits_for_it(world):
    # Given a pin unheld past its grace
    cid = world.unheld_pin("node-a", "waits")
    world.run()
    world.clock.advance(GRACE_S)
    attempts: list[bool] = []

    # When a worker wants to hold it while the reconciler is unpinning it
    def worker_arrives(operation: str) -> None:
        if operation == "end_lease" and not attempts:
            attempts.append(world.holds.hold("node-a", cid, "bob", "r1"))

    world.holds_repo.step = worker_arrives
    assert world.run().reclaimed == 1

    # Then it was told to come back later, and may hold it once the removal is over
    assert attempts == [False]
    assert world.holds.hold("node-a", cid, "bob", "r1")


def test_a_pin_its_last_holder_is_removing_is_left_to_it(world):
    # Given a pin whose last holder let go and holds the removal lease (its pin/rm still to come)
    cid = cid_v1("releasing")
    pin = world.request(cid, replicas=("node-a",))
    assert world.holds.release("node-a", cid, pin.tenant_id, pin.request_id, token="m1")

    # When runs see it unheld, then none notes it, however long
    world.run()
    world.clock.advance(30)  # within the worker's lease (60 s here)
    world.run()
    assert world.fleet["node-a"].removed == []
    assert world.pins.tally("node-a", cid).unheld is None


def test_a_count_that_disagrees_with_the_holders_is_corrected(world):
    # Given a pin held by two requests whose count says 0 (the old unconditional release)
    cid = cid_v1("miscounted")
    world.request(cid, replicas=("node-a",))
    world.request(cid, replicas=("node-a",))
    world.holds_repo.states[("node-a", cid)].holders = 0
    # and a pin whose count says 1 with no holder left
    ghost = world.unheld_pin("node-a", "ghost")
    world.holds_repo._state("node-a", ghost).holders = 1

    report = world.run()

    # Then both counts are the holders', and the unheld one is on its way out
    assert report.counts_corrected == 2
    assert world.pins.tally("node-a", cid).holders == 2
    assert world.pins.tally("node-a", ghost).holders == 0
    assert world.pins.tally("node-a", ghost).unheld is not None
    # And two releases leave the last one owning the unpin
    first, second = (Hold("node-a", cid, hold.tenant_id, hold.request_id) for hold in _holds_of(world, cid))
    assert not world.holds.release("node-a", cid, first.tenant_id, first.request_id, token="m1")
    assert world.holds.release("node-a", cid, second.tenant_id, second.request_id, token="m2")


def _holds_of(world: World, cid: str) -> list[Hold]:
    return sorted((hold for hold in world.holds_repo.holds if hold.cid_key == cid), key=lambda hold: hold.request_id)


def test_a_bounded_run_resumes_from_its_cursor():
    # Given a node with five leaked pins and runs that compare two of them each
    world = World(pins_per_run=2)
    leaked = [world.unheld_pin("node-a", f"leak-{i}") for i in range(5)]
    sighted = lambda: [cid for cid in leaked if world.pins.tally("node-a", cid).unheld is not None]  # noqa: E731

    # When runs go on, then each takes the next two, and the third ends the pass
    world.run()
    assert sighted() == leaked[:2]
    assert world.pins.cursor("node-a").listed == 2
    world.run()
    assert sighted() == leaked[:4]
    world.run()
    assert sighted() == leaked
    assert world.pins.cursor("node-a").listed == 0


def test_the_holders_side_is_paged_from_its_cursor_too():
    # Given five requests on node-a whose pins were all lost, and runs that compare two holds each
    world = World(pins_per_run=2)
    cids = sorted(cid_v1(f"lost-{i}") for i in range(5))
    for cid in cids:
        world.request(cid, replicas=("node-a", "node-b"))
        world.fleet["node-a"].pinned.pop(cid)

    # When runs go on, then each repairs the next two, in the node index's order
    repaired = [world.run().repaired for _ in range(3)]
    assert repaired == [2, 2, 1]
    assert [cid for node_id, cid, _ in world.fleet.copies] == cids
    assert (world.pins.cursor("node-a").held_after, world.pins.cursor("node-a").repairs) == (None, ())


def test_a_down_node_is_skipped_and_the_others_are_reconciled(world):
    # Given node-a down, node-b with a leaked pin, node-c unhealthy at the last check
    world.unheld_pin("node-a", "behind-a")
    world.fleet["node-a"].down = True
    leaked = world.unheld_pin("node-b", "behind-b")
    node_c = world.registry.node("node-c")
    world.registry.record_health(node_c, healthy=False, free_bytes=None)

    # When the reconciler runs
    report = world.run()

    # Then node-b was gone over, the other two skipped
    assert (report.nodes, report.skipped, report.leaked_found) == (3, 2, 1)
    assert world.pins.tally("node-b", leaked).unheld is not None
    assert world.pins.cursor("node-a") == ReconcileCursor()


def test_a_lease_of_the_reconciler_expires_when_its_unpin_fails(world):
    # Given a pin unheld past its grace on a node whose pin/rm fails
    cid = world.unheld_pin("node-a", "rm-fails")
    world.run()
    world.clock.advance(GRACE_S)
    node = world.fleet["node-a"]

    def failing_rm(cid: str) -> None:
        node.down = True
        node._up()

    node.pin_rm = failing_rm

    # When the run tries to reclaim it, then the node is skipped and the pin stays, under the lease
    report = world.run()
    assert (report.skipped, report.reclaimed) == (1, 0)
    lease = world.pins.tally("node-a", cid).lease
    assert isinstance(lease, Lease) and lease.active(world.clock())


def test_a_run_out_of_time_still_compares_a_page_and_a_pin_and_keeps_its_repairs():
    # Given two nodes each with two leaked pins, and a lost pin on node-b
    world = World(pins_per_run=2)
    for node_id in ("node-a", "node-b"):
        world.unheld_pin(node_id, f"{node_id}-1")
        world.unheld_pin(node_id, f"{node_id}-2")
    lost = cid_v1("lost-late")
    pin = world.request(lost)
    world.fleet["node-b"].pinned.pop(lost)

    # When a run starts with no time left
    report = world.reconciler.run(time.monotonic() - 1)

    # Then each node still compared one of Kubo's pins and a page of holds, so the passes go on
    assert report.leaked_found == 2
    assert [world.pins.cursor(node_id).listed for node_id in ("node-a", "node-b")] == [1, 1]
    # And the repair it found waits for a run with time for it
    assert report.repaired == 0
    assert world.pins.cursor("node-b").repairs == (Holder(lost, "alice", pin.request_id),)
    assert world.run().repaired == 1


def test_pins_a_run_unpinned_do_not_push_the_next_run_past_others():
    # Given five leaked pins, all sighted by runs of two, and their grace over
    world = World(pins_per_run=2)
    leaked = [world.unheld_pin("node-a", f"shift-{i}") for i in range(5)]
    for _ in range(3):
        world.run()
    world.clock.advance(GRACE_S)

    # When runs of two unpin them, then each run takes the next two still pinned, and three runs take all
    assert [world.run().reclaimed for _ in range(3)] == [2, 2, 1]
    assert world.fleet["node-a"].removed == leaked
    assert world.pins.cursor("node-a").listed == 0


# -- orphaned holds -------------------------------------------------------------


def test_a_hold_of_a_deleted_request_goes_after_the_deadline_and_grace_and_its_pin_with_it(world):
    # Given a request pinned on node-a alone, deleted, its unpin lost
    cid = cid_v1("orphan")
    pin = world.request(cid, replicas=("node-a",))
    world.delete(pin)

    # When runs find its hold within the pin deadline and grace, then it stays, noted
    report = world.run()
    assert (report.orphans_found, report.orphans_released) == (1, 0)
    world.clock.advance(ORPHAN_WAIT_S - 1)
    report = world.run()
    assert (report.orphans_found, report.orphans_released) == (1, 0)
    assert world.holds.holding("node-a", cid, "alice", pin.request_id)

    # When a run finds it so after them, then the hold goes and, as it was the last, the pin
    world.clock.advance(1)
    report = world.run()
    assert (report.orphans_found, report.orphans_released) == (1, 1)
    assert not world.holds.holding("node-a", cid, "alice", pin.request_id)
    assert world.fleet["node-a"].removed == [cid]
    assert report.bytes_reclaimed == 1024
    # And the request's archive hold goes with it
    assert world.archives_released == [(cid, pin.request_id)]
    # And its removal lease is over: a new request may hold it at once
    assert world.holds.hold("node-a", cid, "bob", new_request_id(1))


def test_an_orphaned_hold_goes_alone_when_a_live_request_still_holds_the_cid(world):
    # Given two requests pinning one CID on node-a, one of them deleted with its unpin lost
    cid = cid_v1("shared")
    gone = world.request(cid, replicas=("node-a",))
    kept = world.request(cid, replicas=("node-a",))
    world.delete(gone)

    # When runs find the orphan before and after the wait
    world.run()
    world.clock.advance(ORPHAN_WAIT_S)
    report = world.run()

    # Then only its hold goes: the live request keeps its hold, its count and its pin
    assert report.orphans_released == 1
    assert _holds_of(world, cid) == [Hold("node-a", cid, "alice", kept.request_id)]
    assert world.pins.tally("node-a", cid).holders == 1
    assert world.fleet["node-a"].is_pinned(cid) and world.fleet["node-a"].removed == []


def test_a_failed_requests_remaining_hold_is_an_orphan_too(world):
    # Given a request that failed, one of its holds not released (the worker always releases them)
    cid = cid_v1("failed")
    pin = world.request(cid, replicas=("node-a",), status="pinning")
    world.store.update(pin, status="failed", info={"failed_reason": "gave up"})

    # When runs find it before and after the wait, then it goes after it
    assert world.run().orphans_found == 1
    world.clock.advance(ORPHAN_WAIT_S)
    assert world.run().orphans_released == 1
    assert _holds_of(world, cid) == []


def test_the_holds_of_a_request_being_replaced_are_left_alone_within_the_deadline(world):
    # Given a pinned request replaced by a new one (gone at once; its holds kept until the new one is pinned)
    cid = cid_v1("v1")
    old = world.request(cid, replicas=("node-a",))
    world._created += 1
    new = Pin(
        tenant_id="alice",
        created_ms=world._created,
        request_id=new_request_id(world._created),
        status="queued",
        cid=cid_v1("v2"),
        cid_key=cid_v1("v2"),
    )
    world.store.create(new, OutboxMessage("shard#0", "r#m", "{}", world._created), replacing=old)

    # When runs find the old request's hold within the pin deadline (and grace) of the first sighting
    world.run()
    world.clock.advance(DEADLINE_S)
    report = world.run()
    world.clock.advance(GRACE_S - 1)
    report.add(world.run())

    # Then it is noted, never let go: the new request's worker releases it (pin/update needs it meanwhile)
    assert (report.orphans_found, report.orphans_released) == (2, 0)
    assert world.holds.holding("node-a", cid, "alice", old.request_id)
    assert world.fleet["node-a"].is_pinned(cid)


def test_a_request_found_back_restarts_the_wait(world):
    # Given a deleted request's hold, noted
    cid = cid_v1("back")
    pin = world.request(cid, replicas=("node-a",))
    world.delete(pin)
    world.run()

    # When a run finds the request back (a read that missed it), then the note is forgotten
    world.clock.advance(ORPHAN_WAIT_S / 2)
    world.store.create(pin, OutboxMessage("shard#0", "b#m", "{}", pin.created_ms))
    assert world.run().orphans_found == 0
    # And once it is gone again, the wait starts from the next sighting, not the first
    world.delete(world.store.get("alice", pin.created_ms))
    world.clock.advance(ORPHAN_WAIT_S / 2)
    assert world.run().orphans_released == 0
    world.clock.advance(ORPHAN_WAIT_S - 1)
    assert world.run().orphans_released == 0
    world.clock.advance(1)
    assert world.run().orphans_released == 1


def test_a_hold_given_up_and_taken_again_restarts_the_wait(world):
    # Given a deleted request's hold, noted
    cid = cid_v1("again")
    pin = world.request(cid, replicas=("node-a",))
    world.delete(pin)
    world.run()

    # When the hold is given up and taken again in its name before the wait is over
    world.clock.advance(ORPHAN_WAIT_S / 2)
    assert world.holds.release("node-a", cid, "alice", pin.request_id, token="m1")
    world.holds.released("node-a", cid, "m1")
    assert world.holds.hold("node-a", cid, "alice", pin.request_id)

    # Then the wait from the first note does not count: the new hold is noted now, and goes a wait later
    world.clock.advance(ORPHAN_WAIT_S / 2)
    assert world.run().orphans_released == 0
    world.clock.advance(ORPHAN_WAIT_S - 1)
    assert world.run().orphans_released == 0
    world.clock.advance(1)
    assert world.run().orphans_released == 1


def test_runs_with_many_orphans_stop_at_their_limits_and_resume():
    # Given five deleted requests holding a CID each on node-a, and runs that compare two holds each
    world = World(pins_per_run=2)
    cids = sorted(cid_v1(f"orphan-{i}") for i in range(5))
    for cid in cids:
        world.delete(world.request(cid, replicas=("node-a",)))

    # When runs go on, then each notes the next two, and the third ends the pass
    assert [world.run().orphans_found for _ in range(3)] == [2, 2, 1]
    assert world.pins.cursor("node-a").held_after is None
    # And after the wait, the next pass lets them go two by two, in the node index's order
    world.clock.advance(ORPHAN_WAIT_S)
    assert [world.run().orphans_released for _ in range(3)] == [2, 2, 1]
    assert world.fleet["node-a"].removed == cids
    assert world.holds_repo.holds == set()
