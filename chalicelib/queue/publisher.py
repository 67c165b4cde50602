"""Sends message bodies to the pin queue (SQS), and the long work (archive,
restore and Filecoin copy messages) to the archive queue when the stage has one
(ARCHIVE_QUEUE_URL): each archive or restore may take the archive function's
15 minutes, which no pin should wait behind, and a restore of a CAR larger
than a pin worker's 30 s turn imports only there. Without it (a
configuration from before the archive queue) they go to the pin queue,
whose worker handles them too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Protocol

from chalicelib.config import Settings, aws_client
from chalicelib.queue.messages import group_of

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient


class Publisher(Protocol):
    def send(self, body: str, delay_seconds: int = 0) -> None: ...


# The kinds of message the archive function handles, in its 15-minute turns:
# the long work (chalicelib.queue.messages).
ARCHIVE_KINDS = frozenset({"archive", "restore", "filecoin_copy"})


def is_archive(body: str) -> bool:
    """Whether a body is long work (for the archive queue when there is one)."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("kind") in ARCHIVE_KINDS


class SqsPublisher:
    def __init__(self, settings: Settings, client: SQSClient | None = None) -> None:
        self._queue_url = settings.queue_url
        self._archive_queue_url = settings.archive_queue_url
        self._settings = settings
        self._client = client

    def _sqs(self) -> SQSClient:
        if self._client is None:
            self._client = aws_client(self._settings, "sqs")
        return self._client

    def send(self, body: str, delay_seconds: int = 0) -> None:
        queue_url = self._archive_queue_url if self._archive_queue_url and is_archive(body) else self._queue_url
        if not queue_url:
            # The outbox keeps the message until the queue is configured.
            raise RuntimeError("PIN_QUEUE_URL is not configured")
        # SQS delays a message by at most 15 minutes. The tenant as message
        # group makes the standard queue a fair queue (chalicelib.queue.messages).
        group, delay = group_of(body), min(delay_seconds, 900)
        if group is None:
            self._sqs().send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay)
        else:
            self._sqs().send_message(QueueUrl=queue_url, MessageBody=body, DelaySeconds=delay, MessageGroupId=group)


def forward_archive(body: str, settings: Settings, publisher: Publisher) -> bool:
    """Send an archive or restore message read from the pin queue on to the
    archive queue, if the stage has one (queued before the archive queue
    existed, or before restores went there: the pin worker may not write
    archives, and its turns are too short for a large restore); True when
    forwarded."""
    if not (settings.archive_queue_url and is_archive(body)):
        return False
    publisher.send(body)
    return True
