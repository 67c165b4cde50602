"""A fleet of fake Kubo nodes on loopback, registered, and the worker wired to them."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Dict, Iterator, List

import boto3
import pytest

from chalicelib.queue.messages import decode
from chalicelib.worker.batch import QueuedMessage, process_batch
from chalicelib.wiring import Services, build_services
from tests.support.fake_kubo import FakeKubo

PEERS = [
    "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N",
    "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
    "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
]


@pytest.fixture
def kubos() -> Iterator[Dict[str, FakeKubo]]:
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

    def receive(self) -> List[QueuedMessage]:
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

    def kinds(self, batch: List[QueuedMessage]) -> List[str]:
        return [decode(message.body).kind for message in batch]

    def bodies(self, batch: List[QueuedMessage]) -> List[dict]:
        return [json.loads(message.body) for message in batch]


@pytest.fixture
def queue(fleet) -> Queue:
    return Queue(fleet)
