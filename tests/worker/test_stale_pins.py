"""A pin that keeps changing under a message's work (other deliveries, the
drain and the API write it too) never keeps a worker spinning: after a
bounded number of fresh reads the message goes back to the queue, to try
again later, and nothing was half-written meanwhile. The pins live in memory
here, where another writer can be scripted before every write."""

from __future__ import annotations

import time

import pytest

from chalicelib.pins.cids import parse_cid
from chalicelib.pins.pin import Pin, queued_pin
from chalicelib.pins.request_ids import new_request_id
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import PinRequested, Rereplicate
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.worker.outcomes import STALE_ATTEMPTS, Done, Later
from tests.support.cids import cid_v1
from tests.support.memory.pins import MemoryPinRepository
from tests.worker.conftest import holding, pin_request, placed, rebuild_worker


@pytest.fixture
def pins(fleet) -> MemoryPinRepository:
    """The fleet's worker, over pins in memory."""
    repository = MemoryPinRepository()
    fleet.store = repository
    rebuild_worker(fleet)
    return repository


def stored_pin(pins: MemoryPinRepository, cid: str, **changes) -> Pin:
    created_ms = now_ms()
    pin = queued_pin("alice", created_ms, new_request_id(created_ms), pin_request(cid), (), ())
    pins.create(pin, OutboxMessage("shard#0", f"{created_ms:013d}#pin", "{}", created_ms))
    return pins.update(pin, **changes) if changes else pin


def deadline() -> float:
    return time.monotonic() + 20


def test_a_pin_changed_before_every_write_sends_its_message_back_later_then_pins(fleet, kubos, pins):
    # given a pin whose content the nodes can fetch, and another writer that
    # changes it before each of the worker's writes
    cid = cid_v1("contended pin")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    pin = stored_pin(pins, cid)
    message = PinRequested("alice", pin.request_id, pin.created_ms, parse_cid(cid).key, ())
    pins.before_write = pins.write_meanwhile
    writes_before = pins.writes

    # when a worker handles its message
    outcome = fleet.worker.handle(message, "delivery-1", deadline())

    # then it stops after a bounded number of fresh reads: the message comes back later
    assert isinstance(outcome, Later) and "kept changing" in outcome.why
    assert outcome.delay_seconds == fleet.settings.continue_delay_seconds
    assert pins.writes - writes_before == STALE_ATTEMPTS
    assert pins.get("alice", pin.created_ms).status == "queued"

    # when the other writer stops and the message comes back, then it is pinned
    pins.before_write = lambda pin: None
    assert fleet.worker.handle(message, "delivery-1", deadline()) == Done()
    assert pins.get("alice", pin.created_ms).status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))


def test_a_re_replication_whose_pin_changes_before_every_write_comes_back_later(fleet, kubos, pins):
    # given a pinned request held on node-0 and node-1, and node-0 removed from the fleet
    cid = cid_v1("contended drain")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    key = parse_cid(cid).key
    replicas = ["node-0", "node-1"]
    pin = stored_pin(pins, cid, status="pinned", info={"replicas": ",".join(replicas)}, node_ids=replicas)
    holds = fleet.worker._holds
    for node_id in replicas:
        assert holds.hold(node_id, key, "alice", pin.request_id)
    assert fleet.removal.remove("node-0")
    message = Rereplicate("alice", pin.request_id, pin.created_ms, key, "node-0")
    # and another writer that changes the pin before each of the drain's writes
    pins.before_write = pins.write_meanwhile
    writes_before = pins.writes

    # when the re-replication runs, then it stops after a bounded number of fresh reads
    outcome = fleet.worker.handle(message, "delivery-1", deadline())
    assert isinstance(outcome, Later) and "kept changing" in outcome.why
    assert pins.writes - writes_before == STALE_ATTEMPTS
    assert holds.holding("node-0", key, "alice", pin.request_id)  # the drain's to-do item stays

    # when the other writer stops and it comes back, then node-2 replaces node-0
    pins.before_write = lambda pin: None
    assert fleet.worker.handle(message, "delivery-1", deadline()) == Done()
    settled = pins.get("alice", pin.created_ms)
    assert (settled.status, sorted(settled.info["replicas"].split(","))) == ("pinned", ["node-1", "node-2"])
    assert not holds.holding("node-0", key, "alice", pin.request_id)
