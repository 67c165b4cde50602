"""Pins' status changes to a loopback receiver through the pieces that run on
AWS: the pins table's stream (moto) read by app.webhook_events, the FIFO
webhooks queue (moto) read by app.webhook_worker, as Lambda hands them over."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest

from chalicelib.pins.pin import Pin
from chalicelib.storage.pin_item import PinItem
from chalicelib.webhooks.delivery import BATCH_SIZE
from chalicelib.webhooks.events import pin_event
from chalicelib.wiring import build_services
from cli.webhook_receiver import Receiver
from devstack.worker_poller import LambdaContext, QueuePoller
from tests.conftest import PEER_A
from tests.storage.test_change_stream import stream_records
from tests.support.cids import cid_v1

ALL_PIN_EVENTS = ["pin.queued", "pin.pinning", "pin.pinned", "pin.failed", "pin.deleted"]


@pytest.fixture
def services(settings) -> Iterator[Any]:
    """The service wired to moto with a FIFO webhooks queue, loopback endpoints allowed."""
    queue_url = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName="webhooks.fifo",
        Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"},
    )["QueueUrl"]
    built = build_services(replace(settings, webhook_queue_url=queue_url, allow_loopback_webhooks=True))
    built.registry.register("node-a", "http://127.0.0.1:5101", PEER_A, ["/ip4/203.0.113.1/tcp/4001"])
    return built


@pytest.fixture
def app_module(services) -> Iterator[Any]:
    import app as module

    module.services.install(services)
    yield module
    module.services.install(None)


@pytest.fixture
def hidden(services, monkeypatch) -> list[int]:
    """Backoffs asked of the queue, recorded; the message comes back at once
    (time passes in the test without waiting for it)."""
    asked: list[int] = []
    queue = services.webhooks.queue
    hide = queue.hide

    def recording(receipt_handle: str, seconds: int) -> None:
        asked.append(seconds)
        hide(receipt_handle, 0)

    monkeypatch.setattr(queue, "hide", recording)
    return asked


@pytest.fixture
def tenant_id(api, services) -> str:
    """The id of the tenant the API client's token is of (named alice)."""
    return next(tenant.tenant_id for tenant in services.tenants.all() if tenant.name == "alice")


@pytest.fixture
def endpoint(services, receiver_for, answers, tenant_id) -> Any:
    server = receiver_for("whsec_" + "QUJD" * 8)
    registered = services.webhooks.endpoints.register(tenant_id, server.url, ALL_PIN_EVENTS)
    server.receiver = Receiver(registered.secret, answers)
    return server


def stream_to_queue(app_module, seen: set[str]) -> int:
    """Hands the stream's new records to app.webhook_events; how many were events."""
    records = [r for r in stream_records(PinItem.Meta.table_name) if r["dynamodb"]["SequenceNumber"] not in seen]
    seen.update(r["dynamodb"]["SequenceNumber"] for r in records)
    assert app_module.webhook_events({"Records": records}, LambdaContext(30)) == {"batchItemFailures": []}
    return sum(pin_event(r, 0) is not None for r in records)


def drain(services, app_module, limit: int = 20) -> int:
    """Polls the webhooks queue until it hands out nothing; how many receives it made."""
    poller = QueuePoller(
        boto3.client("sqs", region_name="us-east-1"),
        services.settings.webhook_queue_url,
        app_module.webhook_worker,
        timeout_seconds=60,
        name="webhooks",
        batch_size=lambda: BATCH_SIZE,
    )
    for polls in range(limit):
        if poller.poll_once() == 0:
            return polls
    raise AssertionError("the queue never emptied")


def move(services, pin: Pin, *statuses: str) -> Pin:
    for status in statuses:
        pin = services.store.update(pin, status=status)
    return pin


def test_a_requests_events_arrive_in_order_though_its_first_delivery_failed(
    api, services, app_module, endpoint, answers, hidden, tenant_id
):
    # Given a pin created through the API, then pinning and pinned (as the worker writes them)
    created = api.pin(cid_v1("ordered"))
    move(services, services.pins.get(tenant_id, created["requestid"]), "pinning", "pinned")
    # and a receiver whose first answer is 500
    answers.statuses = [500]
    # When the stream's records go to the webhooks queue and the queue is drained
    assert stream_to_queue(app_module, set()) == 3
    drain(services, app_module)
    # Then the first event was tried twice, held for its backoff, and the later ones waited for it
    assert [event["type"] for event in answers.seen] == ["pin.queued", "pin.queued", "pin.pinning", "pin.pinned"]
    assert hidden == [5]
    assert [event["type"] for event in endpoint.receiver.events] == ["pin.queued", "pin.pinning", "pin.pinned"]
    # and each is the request's PinStatus in the event's status
    assert {event["data"]["requestid"] for event in endpoint.receiver.events} == {created["requestid"]}
    assert [event["data"]["status"] for event in endpoint.receiver.events] == ["queued", "pinning", "pinned"]


def test_a_deletion_is_delivered_and_a_replayed_stream_batch_sends_nothing_twice(
    api, services, app_module, endpoint, answers
):
    # Given a pin created and deleted through the API
    created = api.pin(cid_v1("deleted"))
    assert api.request("DELETE", f"/pins/{created['requestid']}").status == 202
    # When the stream's records are handed over twice (a retried batch) and the queue drained
    records = stream_records(PinItem.Meta.table_name)
    for _ in range(2):
        app_module.webhook_events({"Records": records}, LambdaContext(30))
    drain(services, app_module)
    # Then the receiver got the creation and the deletion once each
    events = endpoint.receiver.events
    assert [event["type"] for event in events] == ["pin.queued", "pin.deleted"]
    assert events[1]["data"] == {"requestid": created["requestid"], "created": created["created"]}
    assert endpoint.receiver.duplicates == []


def test_pinning_never_waits_on_a_slow_receiver(api, services, app_module, endpoint, answers):
    # Given a receiver that answers nothing until released
    answers.hold.clear()
    # When pins are created and their stream records turned into deliveries
    created = [api.pin(cid_v1(f"slow-{n}")) for n in range(3)]
    assert stream_to_queue(app_module, set()) == 3
    # Then all of it returned while the receiver held: nothing was even sent to it yet
    assert answers.seen == [] and [pin["status"] for pin in created] == ["queued"] * 3
    # and once released, the queue delivers every event
    answers.hold.set()
    drain(services, app_module)
    assert sorted(event["data"]["requestid"] for event in endpoint.receiver.events) == sorted(
        pin["requestid"] for pin in created
    )


def test_an_endpoint_removed_gets_nothing_more(api, services, app_module, endpoint, answers, tenant_id):
    # Given deliveries queued for an endpoint
    api.pin(cid_v1("removed"))
    assert stream_to_queue(app_module, set()) == 1
    # When the endpoint is removed before the queue is drained
    (registered,) = services.webhooks.endpoints.of_tenant(tenant_id)
    assert services.webhooks.endpoints.remove(tenant_id, registered.endpoint_id)
    drain(services, app_module)
    # Then nothing was sent to it and the queue is empty
    assert answers.seen == []
    assert drain(services, app_module) == 0
