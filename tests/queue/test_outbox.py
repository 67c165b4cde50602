"""No accepted request is lost between the DynamoDB write and the SQS send."""

from __future__ import annotations

import json

import boto3
import pytest

import app as app_module
from chalicelib.busy import StorageBusy
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue import messages
from chalicelib.queue.outbox import Outbox
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.outbox_entry import OutboxEntry
from chalicelib.storage.outbox_repository import DynamoOutboxRepository
from chalicelib.wiring import Services
from tests.support.memory.outbox import MemoryOutbox

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


SCHEDULED_EVENT = {
    "version": "0",
    "id": "d1a1c6a0-0000-0000-0000-000000000000",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-21T10:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}


class ProcessDied(BaseException):
    """Stands for the Lambda being killed: nothing after it runs."""


class FailingPublisher:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def send(self, body: str) -> None:
        raise self.error


def queued_bodies(services: Services) -> list[dict]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    received = sqs.receive_message(QueueUrl=services.settings.queue_url, MaxNumberOfMessages=10)
    return [json.loads(message["Body"]) for message in received.get("Messages", [])]


def outbox_size() -> int:
    return sum(1 for _ in OutboxEntry.scan())


def with_publisher(services: Services, publisher) -> Outbox:
    outbox = Outbox(DynamoOutboxRepository(), publisher, services.settings.outbox_shards)
    services.outbox = outbox
    services.pins._outbox = outbox
    return outbox


def sweep_later(services: Services) -> int:
    # As the sweeper would once the grace period has passed.
    return services.outbox.sweep(older_than_ms=now_ms() + 1)


def test_sqs_failure_leaves_message_for_the_sweeper(api, services):
    # Given SQS refuses every send
    real_publisher = services.outbox._publisher
    with_publisher(services, FailingPublisher(RuntimeError("SQS is down")))

    # When a pin is requested
    created = api.pin(CID)

    # Then it is accepted and durable, nothing reached the queue, the outbox holds it
    assert api.request("GET", f"/pins/{created['requestid']}").status == 200
    assert queued_bodies(services) == []
    assert outbox_size() == 1

    # When SQS is back and the sweeper runs
    with_publisher(services, real_publisher)
    assert sweep_later(services) == 1

    # Then the worker gets the pin message and the outbox is empty
    bodies = queued_bodies(services)
    assert [(body["kind"], body["request_id"]) for body in bodies] == [("pin", created["requestid"])]
    assert outbox_size() == 0


def test_process_death_after_commit_loses_nothing(api, services):
    # Given a pin, then a process that dies right after the delete commits
    created = api.pin(CID)
    queued_bodies(services)  # drain the pin message
    real_publisher = services.outbox._publisher
    with_publisher(services, FailingPublisher(ProcessDied()))
    with pytest.raises(ProcessDied):
        services.pins.delete(api_tenant(api, services), created["requestid"])

    # Then the delete happened and its unpin message waits in the outbox
    assert api.request("GET", f"/pins/{created['requestid']}").status == 404
    assert outbox_size() == 1

    # When a fresh container's sweeper runs
    with_publisher(services, real_publisher)
    sweep_later(services)

    # Then the unpin reaches the queue with the request's nodes
    (body,) = queued_bodies(services)
    message = messages.decode(json.dumps(body))
    assert isinstance(message, messages.UnpinRequested)
    assert message.request_id == created["requestid"]
    assert set(message.node_ids) == {"node-a", "node-b"}


def test_sweeper_leaves_fresh_entries_to_their_writer(api, services):
    # Given an entry written just now whose send failed, and SQS back up
    real_publisher = services.outbox._publisher
    with_publisher(services, FailingPublisher(RuntimeError("SQS is down")))
    api.pin(CID)
    with_publisher(services, real_publisher)

    # When the scheduled sweeper runs within the grace period
    app_module.sweep_outbox(SCHEDULED_EVENT, None)

    # Then it does not send it yet (its writer may still be sending it)
    assert outbox_size() == 1
    assert queued_bodies(services) == []


def api_tenant(api, services) -> str:
    return services.authenticator.tenant_for(f"Bearer {api.token}")


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, body: str, delay_seconds: int = 0) -> None:
        self.sent.append(body)


def test_the_sweep_resends_only_what_is_older_than_the_grace_period_oldest_first():
    # Given three messages whose sends failed, written at 1 000, 2 000 and 3 000 ms
    clock = iter([1_000, 2_000, 3_000])
    stored = MemoryOutbox()
    down = Outbox(stored, FailingPublisher(RuntimeError("SQS is down")), shards=1, clock=lambda: next(clock))
    written = [down.entry_for(messages.DrainNode(f"node-{i}", 0)) for i in range(3)]
    for entry in written:
        down.add(entry)
        assert not down.publish(entry)

    # When the sweeper runs with SQS back, for what is older than 3 000 ms
    publisher = RecordingPublisher()
    assert Outbox(stored, publisher, shards=1).sweep(older_than_ms=3_000) == 2

    # Then the two older ones are sent in order and forgotten; the fresh one waits
    assert publisher.sent == [written[0].body, written[1].body]
    assert list(stored.messages.values()) == [written[2]]


class UndeletableOutbox(DynamoOutboxRepository):
    """The outbox table refuses deletes, as DynamoDB does when throttled."""

    def delete(self, message: OutboxMessage) -> None:
        raise StorageBusy("outbox table throttled")


def test_a_throttled_outbox_delete_after_the_send_still_accepts_the_request_once(api, services):
    # Given an outbox whose entries cannot be deleted once sent
    services.outbox = services.pins._outbox = Outbox(
        UndeletableOutbox(), services.outbox._publisher, services.settings.outbox_shards
    )

    # When a pin is requested
    created = api.pin(CID)

    # Then it is accepted (a client has no reason to retry and duplicate it), and queued once
    assert api.request("GET", f"/pins/{created['requestid']}").status == 200
    assert [body["request_id"] for body in queued_bodies(services)] == [created["requestid"]]
    # and the entry stays for the sweeper, whose repeat workers ignore
    assert outbox_size() == 1
