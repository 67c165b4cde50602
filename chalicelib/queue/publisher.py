"""Sends message bodies to the pin queue (SQS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from chalicelib.config import Settings, aws_client
from chalicelib.queue.messages import group_of

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient


class Publisher(Protocol):
    def send(self, body: str, delay_seconds: int = 0) -> None: ...


class SqsPublisher:
    def __init__(self, settings: Settings, client: SQSClient | None = None) -> None:
        self._queue_url = settings.queue_url
        self._settings = settings
        self._client = client

    def _sqs(self) -> SQSClient:
        if self._client is None:
            self._client = aws_client(self._settings, "sqs")
        return self._client

    def send(self, body: str, delay_seconds: int = 0) -> None:
        if not self._queue_url:
            # The outbox keeps the message until the queue is configured.
            raise RuntimeError("PIN_QUEUE_URL is not configured")
        # SQS delays a message by at most 15 minutes. The tenant as message
        # group makes the standard queue a fair queue (chalicelib.queue.messages).
        group, delay = group_of(body), min(delay_seconds, 900)
        if group is None:
            self._sqs().send_message(QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay)
        else:
            self._sqs().send_message(
                QueueUrl=self._queue_url, MessageBody=body, DelaySeconds=delay, MessageGroupId=group
            )
