"""A fleet of fake Kubo nodes on loopback, registered, and the worker wired to them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

from chalicelib.fleet.holds import PinHolds
from chalicelib.fleet.placement import place
from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import PinRequest
from chalicelib.pins.pin import Pin
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import decode
from chalicelib.storage.hold_repository import DynamoHoldRepository
from chalicelib.storage.node_pin import STATE, NodePin, node_pin_key
from chalicelib.wiring import Services, build_services
from chalicelib.worker.batch import QueuedMessage, process_batch
from tests.support.fake_kubo import FakeKubo

PEERS = [
    "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N",
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
]


@pytest.fixture
def kubos() -> Iterator[dict[str, FakeKubo]]:
    nodes = {f"node-{i}": FakeKubo(peer_id=PEERS[i]) for i in range(3)}
    for node in nodes.values():
        node.start()
    yield nodes
    for node in nodes.values():
        node.stop()


@pytest.fixture
def fleet(settings, kubos) -> Iterator[Services]:
    """Services with a 3-node fleet, replication 2, short stall and delays."""
    tuned = replace(settings, replication_factor=2, stall_seconds=1, continue_delay_seconds=0, node_concurrency=2)
    services = build_services(tuned)
    for i, (node_id, kubo) in enumerate(kubos.items()):
        services.registry.register(node_id, kubo.url, PEERS[i], [f"/ip4/8.8.8.{i}/tcp/4001"])
    yield services


class Queue:
    """The pin queue as the worker Lambda sees it."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.sqs = boto3.client("sqs", region_name="us-east-1")

    def receive(self) -> list[QueuedMessage]:
        got = self.sqs.receive_message(QueueUrl=self.services.settings.queue_url, MaxNumberOfMessages=10)
        messages = got.get("Messages", [])
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.services.settings.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [QueuedMessage(message["MessageId"], message["Body"]) for message in messages]

    def run_once(self, seconds_left: float = 20.0):
        batch = self.receive()
        result = process_batch(batch, self.services.worker, self.services.publisher, seconds_left)
        return batch, result

    def run_until_empty(self, rounds: int = 10) -> int:
        handled = 0
        for _ in range(rounds):
            batch, _ = self.run_once()
            if not batch:
                return handled
            handled += len(batch)
        return handled

    def kinds(self, batch: list[QueuedMessage]) -> list[str]:
        return [decode(message.body).kind for message in batch]

    def bodies(self, batch: list[QueuedMessage]) -> list[dict]:
        return [json.loads(message.body) for message in batch]


@pytest.fixture
def queue(fleet) -> Queue:
    return Queue(fleet)


# -- helpers for the worker behaviour tests ------------------------------------


def pin_request(cid: str, origins=(), name=None) -> PinRequest:
    return PinRequest(parse_cid(cid), name=name, origins=tuple(origins))


def placed(services: Services, cid: str) -> list[str]:
    """The node ids placement picks for `cid` on the current fleet."""
    nodes = [node for node in services.registry.nodes(fresh=True) if node.healthy]
    return [node.node_id for node in place(parse_cid(cid).key, nodes, services.settings.replication_factor)]


def holding(kubos: dict[str, FakeKubo], cid: str) -> list[str]:
    """The fake nodes that hold a recursive pin of `cid`."""
    return sorted(node_id for node_id, kubo in kubos.items() if cid in kubo.pinned)


def current(services: Services, record: Pin) -> Pin | None:
    """The pin as stored now (None once deleted or replaced)."""
    stored = services.store.get(record.tenant_id, record.created_ms)
    return stored if stored is not None and stored.request_id == record.request_id else None


def info_of(record: Pin) -> dict[str, str]:
    return dict(record.info)


def holders(node_id: str, cid: str) -> int:
    """How many requests hold `cid` on `node_id` (the shared pin's count)."""
    try:
        return int(NodePin.get(node_pin_key(node_id, parse_cid(cid).key), STATE, consistent_read=True).holders or 0)
    except NodePin.DoesNotExist:
        return 0


def failed_ids(result: dict) -> list[str]:
    return [item["itemIdentifier"] for item in result["batchItemFailures"]]


class ShiftedClock:
    """Wall-clock milliseconds plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return now_ms() + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)


def rebuild_worker(services: Services) -> None:
    """A worker reading the services' current settings (and test clock and
    origin resolver, if any)."""
    from chalicelib.worker.pin_worker import PinWorker

    services.__dict__["worker"] = PinWorker(
        services.settings,
        services.store,
        services.registry,
        PinHolds(DynamoHoldRepository(services.dynamo), lease_seconds=15 * 60),
        services.kubo,
        clock=getattr(services, "test_clock", now_ms),
        origins=getattr(services, "test_origins", None),
    )


@pytest.fixture
def tune(fleet):
    """tune(**settings): change the fleet's settings, worker included."""

    def apply(**changes):
        fleet.settings = replace(fleet.settings, **changes)
        rebuild_worker(fleet)
        return fleet.settings

    return apply


@pytest.fixture
def worker_clock(fleet) -> ShiftedClock:
    """A clock only the worker reads: moving it makes pins look older."""
    fleet.test_clock = ShiftedClock()
    rebuild_worker(fleet)
    return fleet.test_clock


@pytest.fixture
def app_client(fleet):
    """Chalice's test client of the app, its handlers wired to the fleet."""
    from chalice.test import Client

    import app as app_module

    app_module.services.install(fleet)
    with Client(app_module.app) as client:
        yield client
    app_module.services.install(None)


def sqs_event(messages: list[QueuedMessage], queue_name: str = "pinning-service-pins") -> dict:
    """An SQS event of `messages` with their own message ids (Chalice's
    generator gives every record the same one)."""
    return {
        "Records": [
            {
                "messageId": message.message_id,
                "receiptHandle": f"receipt-{message.message_id}",
                "body": message.body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_name}",
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


@pytest.fixture
def user_api(app_client, fleet):
    """The HTTP API over the same fleet, as tenant "alice" sees it."""
    from tests.support.api import ApiClient

    admin = fleet.admin
    tenant = admin.create_tenant("alice")
    token = admin.issue_token(tenant.tenant_id, "laptop").secret
    return ApiClient(app_client, token)
