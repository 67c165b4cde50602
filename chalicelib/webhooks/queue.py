"""The webhooks queue (SQS FIFO, WEBHOOK_QUEUE_URL): deliveries sent by the
stream's consumer, and the backoff of a failed one (its visibility)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from chalicelib.config import Settings, aws_client
from chalicelib.webhooks.messages import Delivery

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

SEND_BATCH = 10  # SendMessageBatch's limit


class QueueRefused(RuntimeError):
    pass


class SqsWebhookQueue:
    def __init__(self, settings: Settings, client: SQSClient | None = None) -> None:
        self._settings = settings
        self._client = client

    def _sqs(self) -> SQSClient:
        if self._client is None:
            self._client = aws_client(self._settings, "sqs")
        return self._client

    def _url(self) -> str:
        if not self._settings.webhook_queue_url:
            raise QueueRefused("WEBHOOK_QUEUE_URL is not configured")
        return self._settings.webhook_queue_url

    def send(self, deliveries: Sequence[Delivery]) -> None:
        """Sends in order (a FIFO batch keeps its order within each group)."""
        for start in range(0, len(deliveries), SEND_BATCH):
            entries = [
                {
                    "Id": str(position),
                    "MessageBody": delivery.body(),
                    "MessageGroupId": delivery.group,
                    "MessageDeduplicationId": delivery.deduplication_id,
                }
                for position, delivery in enumerate(deliveries[start : start + SEND_BATCH])
            ]
            answer = self._sqs().send_message_batch(QueueUrl=self._url(), Entries=entries)  # type: ignore[arg-type]
            if answer.get("Failed"):
                raise QueueRefused(f"SQS refused webhook deliveries: {answer['Failed']}")

    def hide(self, receipt_handle: str, seconds: int) -> None:
        self._sqs().change_message_visibility(
            QueueUrl=self._url(), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )
