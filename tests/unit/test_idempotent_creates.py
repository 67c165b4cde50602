"""PinService with an Idempotency-Key: a retried create or replace returns
the first answer and makes nothing new; the same key for another request is
refused; two retries racing each other make one pin."""

from __future__ import annotations

import pytest

from chalicelib.fleet.node import Node
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.pins.cids import parse_cid
from chalicelib.pins.idempotency import WINDOW_MS, IdempotencyKeyReused
from chalicelib.pins.model import STATUSES, PinQuery, PinRequest
from chalicelib.pins.service import PinService
from chalicelib.queue.outbox import Outbox
from tests.support.memory.nodes import MemoryNodes
from tests.support.memory.pins import MemoryPinRepository

CID = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
START_MS = 1_760_000_000_000
EVERY = PinQuery(statuses=frozenset(STATUSES))


class Sent:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, body: str, delay_seconds: int = 0) -> None:
        self.bodies.append(body)


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def world():
    nodes = MemoryNodes()
    nodes.save(Node("node-a", "http://127.0.0.1:1", "peer-a", ("/ip4/203.0.113.1/tcp/4001/p2p/peer-a",)))
    store, sent, clock = MemoryPinRepository(), Sent(), Clock()
    service = PinService(store, NodeRegistry(nodes, clock=clock), Outbox(store.outbox, sent, 1, clock), 1, clock)
    return service, store, sent, clock


def test_a_retried_create_returns_the_first_pin_and_makes_nothing_new(world):
    service, store, sent, _ = world
    # given a create with a key
    first = service.create("tenant-1", PinRequest(cid=CID, name="a"), idempotency_key="k1")
    # when it is retried, also after the pin moved on
    store.update(first, status="pinning")
    again = service.create("tenant-1", PinRequest(cid=CID, name="a"), idempotency_key="k1")
    # then the first answer comes back: one pin, one message
    assert again == first
    assert store.find("tenant-1", EVERY)[1] == 1 and len(sent.bodies) == 1
    # and another tenant's same key is its own
    assert service.create("tenant-2", PinRequest(cid=CID, name="a"), idempotency_key="k1") != first


def test_the_same_key_for_another_request_is_refused_until_the_window_passes(world):
    service, store, _, clock = world
    service.create("tenant-1", PinRequest(cid=CID, name="a"), idempotency_key="k1")
    # when the key comes with another name, then it is refused and nothing is written
    with pytest.raises(IdempotencyKeyReused):
        service.create("tenant-1", PinRequest(cid=CID, name="b"), idempotency_key="k1")
    assert store.find("tenant-1", EVERY)[1] == 1
    # and after the window the key makes a new pin
    clock.now += WINDOW_MS
    assert service.create("tenant-1", PinRequest(cid=CID, name="b"), idempotency_key="k1").name == "b"
    assert store.find("tenant-1", EVERY)[1] == 2


def test_a_retried_replace_returns_its_successor_though_the_old_pin_is_gone(world):
    service, store, sent, _ = world
    old = service.create("tenant-1", PinRequest(cid=CID, name="v1"))
    successor = service.replace("tenant-1", old.request_id, PinRequest(cid=CID, name="v2"), idempotency_key="r1")
    # when the replace is retried
    again = service.replace("tenant-1", old.request_id, PinRequest(cid=CID, name="v2"), idempotency_key="r1")
    # then the successor comes back and nothing else changed
    assert again == successor
    assert store.find("tenant-1", EVERY) == ([successor], 1) and len(sent.bodies) == 2


def test_two_retries_racing_each_other_make_one_pin(world):
    service, store, sent, _ = world
    # given a retry that claims the key between this request's check and its write
    racing = []
    claimed = store.claimed

    def check_then_retry(*args):
        found = claimed(*args)
        store.claimed = claimed  # the retry itself checks as usual
        racing.append(service.create("tenant-1", PinRequest(cid=CID, name="a"), idempotency_key="k1"))
        return found

    store.claimed = check_then_retry
    # when the first request writes, then it answers the retry's pin: one pin in all
    answer = service.create("tenant-1", PinRequest(cid=CID, name="a"), idempotency_key="k1")
    assert answer == racing[0]
    assert store.find("tenant-1", EVERY)[1] == 1 and len(sent.bodies) == 1
