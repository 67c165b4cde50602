"""A loopback receiver (cli.webhook_receiver) and the delivery side around it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.pins.timestamps import now_ms
from chalicelib.webhooks.addresses import AddressCheck
from chalicelib.webhooks.delivery import Deliverer
from chalicelib.webhooks.endpoints import Endpoint, Webhooks, new_secret
from chalicelib.webhooks.sender import HttpPoster
from cli.webhook_receiver import Receiver, ReceiverServer
from tests.support.memory.webhooks import MemoryWebhooks

TENANT = "alice"
# Long enough for a loopback answer on a loaded machine; the timeout test's receiver never answers in time.
POST_TIMEOUT_S = 2.0


class Clock:
    """Milliseconds that move only when told, from the real time (receivers
    refuse timestamps more than five minutes off theirs)."""

    def __init__(self) -> None:
        self.ms = now_ms()

    def __call__(self) -> int:
        return self.ms


class Answers:
    """What the receiver answers verified new deliveries: a status per call
    (200 once they run out), or per call for one request's events in
    `by_request` (deliveries of several requests run at once, in no set
    order); `hold` makes it wait until released."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.by_request: dict[str, list[int]] = {}
        self.hold = threading.Event()
        self.hold.set()
        self.seen: list[Mapping[str, Any]] = []

    def __call__(self, event: Mapping[str, Any]) -> int:
        self.seen.append(event)
        self.hold.wait(30)
        statuses = self.by_request.get(event.get("data", {}).get("requestid"), self.statuses)
        return statuses.pop(0) if statuses else 200


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def answers() -> Answers:
    return Answers()


@pytest.fixture
def repository() -> MemoryWebhooks:
    return MemoryWebhooks()


@pytest.fixture
def webhooks(repository: MemoryWebhooks, clock: Clock) -> Webhooks:
    return Webhooks(repository, AddressCheck(allow_loopback=True), clock)


@pytest.fixture
def receiver_for(answers: Answers) -> Iterator[Callable[[str], ReceiverServer]]:
    """Starts a receiver of the given secret on a free loopback port."""
    started: list[ReceiverServer] = []

    def start(secret: str) -> ReceiverServer:
        server = ReceiverServer(Receiver(secret, answers), port=0).start()
        started.append(server)
        return server

    yield start
    answers.hold.set()
    for server in started:
        server.stop()


@dataclass(frozen=True)
class Listening:
    endpoint: Endpoint
    server: ReceiverServer

    @property
    def receiver(self) -> Receiver:
        return self.server.receiver


@pytest.fixture
def listening(webhooks: Webhooks, receiver_for: Callable[[str], ReceiverServer], answers: Answers) -> Listening:
    """An endpoint wanting pinned and failed pins, its receiver listening
    (on a port known before the secret: it takes the secret once registered)."""
    server = receiver_for(new_secret())
    registered = webhooks.register(TENANT, server.url, ["pin.pinned", "pin.failed"])
    server.receiver = Receiver(registered.secret, answers)
    return Listening(registered, server)


@pytest.fixture
def deliverer(repository: MemoryWebhooks, clock: Clock) -> Deliverer:
    return Deliverer(repository, AddressCheck(allow_loopback=True), HttpPoster(timeout=POST_TIMEOUT_S), clock)
