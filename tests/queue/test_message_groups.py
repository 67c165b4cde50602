"""Every message naming a tenant is sent with the tenant as its message
group, which makes the standard pin queue a fair queue on AWS."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3

from chalicelib.config import Settings
from chalicelib.queue import messages
from chalicelib.queue.messages import DrainNode, PinRequested, Rereplicate, UnpinRequested
from chalicelib.queue.outbox import Outbox
from chalicelib.queue.publisher import SqsPublisher
from tests.support.memory.outbox import MemoryOutbox

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {}


def publisher() -> tuple[SqsPublisher, RecordingSqs]:
    sqs = RecordingSqs()
    return SqsPublisher(replace(Settings(), queue_url="https://sqs.example/pins"), client=sqs), sqs  # type: ignore[arg-type]


def test_each_kind_of_tenant_message_is_sent_with_its_tenant_as_message_group() -> None:
    # given: one message of each kind that names a tenant
    sent: list[messages.QueueMessage] = [
        PinRequested("tenant-a", "r1", 1, CID, ("node-1",)),
        UnpinRequested("tenant-b", "r2", CID, ("node-1",)),
        Rereplicate("tenant-c", "r3", 3, CID, "node-1"),
    ]
    sqs_publisher, sqs = publisher()

    # when: each is published, one of them delayed (a continuation)
    for message in sent:
        sqs_publisher.send(messages.encode(message), delay_seconds=30 if message.kind == "pin" else 0)

    # then: each carries its tenant as MessageGroupId
    assert [call["MessageGroupId"] for call in sqs.sent] == ["tenant-a", "tenant-b", "tenant-c"]
    assert sqs.sent[0]["DelaySeconds"] == 30


def test_fleet_work_has_no_message_group() -> None:
    # given: a drain, which belongs to no tenant
    sqs_publisher, sqs = publisher()

    # when: it is published
    sqs_publisher.send(messages.encode(DrainNode("node-1", 5)))

    # then: it goes without a group (a fair queue treats it as a tenant of its own)
    assert "MessageGroupId" not in sqs.sent[0]
    assert messages.group_of(sqs.sent[0]["MessageBody"]) is None


def test_the_outbox_and_its_sweep_send_with_the_tenant_as_message_group(settings: Settings) -> None:
    # given: an outbox entry for tenant-a's pin, whose first send failed (left to the sweeper)
    real = SqsPublisher(settings)
    outbox = Outbox(MemoryOutbox(), real, shards=1, clock=lambda: 1_000)
    entry = outbox.entry_for(PinRequested("tenant-a", "r1", 1, CID, ("node-1",)))
    outbox.add(entry)

    # when: the sweeper sends it
    assert outbox.sweep(older_than_ms=2_000) == 1

    # then: the queue holds it in tenant-a's group
    sqs = boto3.client("sqs", region_name="us-east-1")
    (received,) = sqs.receive_message(QueueUrl=settings.queue_url, AttributeNames=["All"])["Messages"]
    assert received["Attributes"]["MessageGroupId"] == "tenant-a"
