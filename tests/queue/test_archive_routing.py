"""Archive and restore messages (the long work) go to the archive function's
queue when the stage has one (ARCHIVE_QUEUE_URL), every other kind to the pin queue; without it (a
configuration from before the archive queue) everything goes to the pin queue.
One left on the pin queue is forwarded by the pin worker's function."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib.config import Settings
from chalicelib.queue import messages
from chalicelib.queue.messages import (
    ArchiveRequested,
    DrainNode,
    PinRequested,
    Rereplicate,
    RestoreRequested,
    UnpinRequested,
)
from chalicelib.queue.outbox import Outbox
from chalicelib.queue.publisher import SqsPublisher, forward_archive, is_archive
from tests.support.memory.outbox import MemoryOutbox

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
PINS, ARCHIVES = "https://sqs.example/pins", "https://sqs.example/archives"
ARCHIVE = messages.encode(ArchiveRequested("tenant-a", "r1", 1, CID, ("node-1",)))
RESTORE = messages.encode(RestoreRequested("tenant-a", "r1", 1, CID, "handed off"))
OTHERS = [
    messages.encode(PinRequested("tenant-a", "r1", 1, CID, ("node-1",))),
    messages.encode(UnpinRequested("tenant-a", "r1", CID, ("node-1",))),
    messages.encode(DrainNode("node-1", 5)),
    messages.encode(Rereplicate("tenant-a", "r1", 1, CID, "node-1")),
]


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {}


def settings(archive_queue_url: str | None) -> Settings:
    return replace(Settings(), queue_url=PINS, archive_queue_url=archive_queue_url)


def publisher(archive_queue_url: str | None) -> tuple[SqsPublisher, RecordingSqs]:
    sqs = RecordingSqs()
    return SqsPublisher(settings(archive_queue_url), client=sqs), sqs  # type: ignore[arg-type]


def test_archive_messages_go_to_the_archive_queue_and_the_others_to_the_pin_queue() -> None:
    # given: a stage with an archive queue
    sqs_publisher, sqs = publisher(ARCHIVES)

    # when: an archive message (a continuation, delayed) and one of each other kind are sent
    sqs_publisher.send(ARCHIVE, delay_seconds=30)
    for body in OTHERS:
        sqs_publisher.send(body)

    # then: the archive message alone is on the archive queue, with its delay and its tenant's group
    assert [call["QueueUrl"] for call in sqs.sent] == [ARCHIVES, PINS, PINS, PINS, PINS]
    assert (sqs.sent[0]["DelaySeconds"], sqs.sent[0]["MessageGroupId"]) == (30, "tenant-a")


def test_without_an_archive_queue_archive_messages_go_to_the_pin_queue() -> None:
    # given: a configuration from before the archive queue
    sqs_publisher, sqs = publisher(None)

    # when: an archive message is sent
    sqs_publisher.send(ARCHIVE)

    # then: it goes to the pin queue, whose worker archives it
    assert [call["QueueUrl"] for call in sqs.sent] == [PINS]


def test_the_outbox_sends_an_archive_message_to_the_archive_queue() -> None:
    # given: an outbox publishing through a stage's publisher with an archive queue
    sqs_publisher, sqs = publisher(ARCHIVES)
    outbox = Outbox(MemoryOutbox(), sqs_publisher, shards=1)

    # when: an archive message and a pin message are written and published
    for body in (ARCHIVE, OTHERS[0]):
        entry = outbox.entry_for(messages.decode(body))
        outbox.add(entry)
        assert outbox.publish(entry)

    # then: each reached its own queue
    assert [call["QueueUrl"] for call in sqs.sent] == [ARCHIVES, PINS]


@pytest.mark.parametrize(("archive_queue_url", "forwarded"), [(ARCHIVES, True), (None, False)])
def test_an_archive_message_read_from_the_pin_queue_is_forwarded_only_where_an_archive_queue_exists(
    archive_queue_url: str | None, forwarded: bool
) -> None:
    # given: the pin worker's function reading an archive message and the other kinds
    sqs_publisher, sqs = publisher(archive_queue_url)
    stage = settings(archive_queue_url)

    # when: each is offered for forwarding
    results = [forward_archive(body, stage, sqs_publisher) for body in (ARCHIVE, *OTHERS)]

    # then: the archive message alone goes on to the archive queue (or stays, to be archived here)
    assert results == [forwarded, False, False, False, False]
    assert [call["QueueUrl"] for call in sqs.sent] == ([ARCHIVES] if forwarded else [])


def test_a_restore_message_goes_to_the_archive_queue_and_is_forwarded_there_from_the_pin_queue() -> None:
    # given: a stage with an archive queue
    sqs_publisher, sqs = publisher(ARCHIVES)

    # when: a restore message is sent, and one read from the pin queue (sent before restores went there) is offered
    sqs_publisher.send(RESTORE, delay_seconds=60)
    forwarded = forward_archive(RESTORE, settings(ARCHIVES), sqs_publisher)

    # then: both reach the archive queue (the long turns), in the tenant's group
    assert forwarded
    assert [(call["QueueUrl"], call["MessageGroupId"]) for call in sqs.sent] == [(ARCHIVES, "tenant-a")] * 2
    assert sqs.sent[0]["DelaySeconds"] == 60


def test_a_body_that_is_not_a_json_object_is_no_archive() -> None:
    # given / when / then: what decode would fail is left to the worker (it fails the message there)
    assert [is_archive(body) for body in ("not json", "[1]", '"archive"', ARCHIVE)] == [False, False, False, True]
