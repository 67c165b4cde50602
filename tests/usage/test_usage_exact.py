"""A tenant's usage after creates, pins, deletes and replaces is exact,
also when another writer moves a pin between a read and a write."""

from __future__ import annotations

from chalicelib.pins.model import PinRequest
from chalicelib.usage.months import Month
from tests.usage.conftest import CIDS, World

HOUR = 3_600_000


def test_usage_follows_creates_pins_deletes_and_replaces(world: World):
    # given three pins of alice, two pinned (1000 and 300 bytes), and one of bob
    a, b, _ = (world.create("alice", cid) for cid in range(3))
    a, b = world.pinned(a, 1000), world.pinned(b, 300)
    world.pinned(world.create("bob"), 7)
    # when one pinned pin is deleted and the other replaced by a new request
    world.service.delete("alice", a.request_id)
    replacement = world.service.replace("alice", b.request_id, PinRequest(cid=CIDS[2]))
    # then alice has the queued replacement and c, and no bytes
    usage = world.meter.usage("alice")
    assert usage.pins == {"queued": 2, "pinning": 0, "pinned": 0, "failed": 0}
    assert usage.bytes_pinned == 0
    # and once the replacement is pinned, its bytes only; bob's are his own
    world.pinned(replacement, 42)
    assert world.meter.usage("alice").bytes_pinned == 42
    assert world.meter.usage("bob").bytes_pinned == 7


def test_folding_changes_nothing_a_reader_sees(world: World):
    # given pinned pins over a month boundary
    world.pinned(world.create("alice"), 1000)
    world.clock.now = Month(2026, 3).start_ms + HOUR
    world.pinned(world.create("alice", 1), 500)
    before = world.meter.usage("alice", Month(2026, 3))
    # when the changes are folded
    world.store.fold()
    # then every figure is the same
    assert world.meter.usage("alice", Month(2026, 3)) == before
    assert before.bytes_pinned == 1500 and before.month.opening == 1000


def test_a_delete_racing_the_pinned_write_counts_the_bytes_once(world: World):
    # given a pin being fetched
    pin = world.create("alice")
    pinning = world.store.update(pin, status="pinning")
    # when the worker's pinned write lands between the delete's read and its write
    raced: list[bool] = []

    def worker_first(read):
        if not raced:
            raced.append(True)
            world.store.update(pinning, status="pinned", info={"dag_size": "900"})

    world.store.before_write = worker_first
    world.service.delete("alice", pin.request_id)
    # then the delete, retried from the pinned pin, took its bytes away again
    world.store.before_write = lambda read: None
    assert raced and world.meter.usage("alice").bytes_pinned == 0
    assert world.meter.usage("alice").pins == {"queued": 0, "pinning": 0, "pinned": 0, "failed": 0}


def test_cold_bytes_follow_archives_and_deletes(world: World):
    # given a pinned pin whose archive is recorded (as the archiver writes its info)
    pin = world.pinned(world.create("alice"), 1000)
    archived = world.store.update(pin, info={**pin.info, "cold": "archived", "car_bytes": "1200"})
    # then its CAR counts as alice's cold bytes, apart from her bytes pinned
    usage = world.meter.usage("alice")
    assert (usage.bytes_pinned, usage.cold_bytes) == (1000, 1200)
    # and an archive still being made counts nothing
    other = world.pinned(world.create("alice", 1), 10)
    world.store.update(other, info={**other.info, "cold": "archiving"})
    assert world.meter.usage("alice").cold_bytes == 1200
    # and once the archived request is deleted, neither counts (folded or not)
    world.service.delete("alice", archived.request_id)
    world.store.fold()
    assert (world.meter.usage("alice").bytes_pinned, world.meter.usage("alice").cold_bytes) == (10, 0)
