"""Fixtures for the API tests: the tenant behind the `api` fixture, a second
tenant, the pin queue as a worker would see it, a way to move a pin's status
(as the workers will), and a controllable clock for `created`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from chalicelib.pins.model import STATUSES
from chalicelib.pins.request_ids import created_ms_of
from chalicelib.pins.service import PinService
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.outbox_entry import OutboxEntry, message_of
from chalicelib.storage.pin_store import PinStore


@dataclass
class Tenant:
    tenant_id: str
    api: Any  # tests.support.api.ApiClient


@pytest.fixture
def tenant_id(services, tenant_token: str) -> str:
    """The tenant the `api` fixture's token belongs to."""
    return services.authenticator.tenant_for(f"Bearer {tenant_token}")


@pytest.fixture
def other_tenant(api, services) -> Tenant:
    """A second tenant ("bob") with its own token, on the same test client."""
    admin = services.admin
    tenant = admin.create_tenant("bob")
    token = admin.issue_token(tenant.tenant_id, "bob-laptop").secret
    return Tenant(tenant.tenant_id, api.as_token(token))


class PinQueue:
    """The SQS queue the API publishes to, read the way a worker reads it."""

    def __init__(self, queue_url: str) -> None:
        self.url = queue_url
        self._sqs = boto3.client("sqs", region_name="us-east-1")

    def depth(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def drain(self) -> list[dict[str, Any]]:
        """Every message now in the queue, removed from it, as parsed JSON."""
        bodies: list[dict[str, Any]] = []
        while True:
            received = self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = received.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def pin_queue(services) -> PinQueue:
    return PinQueue(services.settings.queue_url)


@pytest.fixture
def outbox_entries(services) -> Callable[[], list[OutboxMessage]]:
    return lambda: [message_of(entry) for entry in OutboxEntry.scan(consistent_read=True)]


def move_status(store: PinStore, tenant_id: str, request_id: str, status: str) -> None:
    """Change a pin's status the way a worker does."""
    assert status in STATUSES
    created_ms = created_ms_of(request_id)
    assert created_ms is not None, request_id
    pin = store.get(tenant_id, created_ms)
    assert pin is not None and pin.request_id == request_id
    store.update(pin, status=status)


@pytest.fixture
def set_status(services, tenant_id: str) -> Callable[[str, str], None]:
    """set_status(requestid, status) for the `api` fixture's tenant."""
    return lambda request_id, status: move_status(services.store, tenant_id, request_id, status)


class FakeClock:
    """Milliseconds since the epoch, moved only by the test."""

    def __init__(self, start_ms: int) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


# 2021-01-01T00:00:00Z
EPOCH_2021_MS = 1_609_459_200_000


@pytest.fixture
def pin_clock(services, api) -> Iterator[FakeClock]:
    """Gives pins the `created` the test chooses: the pin service reads this
    clock (it still never hands out the same millisecond twice)."""
    clock = FakeClock(EPOCH_2021_MS)
    original = services.pins
    services.pins = PinService(
        services.store, services.registry, services.outbox, services.settings.replication_factor, clock=clock
    )
    yield clock
    services.pins = original
