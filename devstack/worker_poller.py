"""The worker Lambdas, locally: polls the emulated SQS queues and calls the
very handlers that run on AWS, with the event shape Lambda would pass."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

HandlerType = Callable[[dict[str, Any], Any], Any]
# The pin worker's batch_size in app.py, as Lambda's event source passes it.
BATCH_SIZE = 10


class LambdaContext:
    """What a handler may ask of its invocation: the time it has left."""

    def __init__(self, timeout_seconds: float) -> None:
        self._deadline = time.monotonic() + timeout_seconds
        self.aws_request_id = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class QueuePoller:
    """Polls one queue on a daemon thread for as long as its process lives: the
    worker process ends by exiting, abandoning a running batch as when a Lambda
    is cut off (its messages come back after their visibility timeout)."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: HandlerType,
        timeout_seconds: float,
        name: str,
        batch_size: Callable[[], int] = lambda: BATCH_SIZE,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._timeout = timeout_seconds
        self._batch_size = batch_size
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._arn = f"arn:aws:sqs:us-east-1:123456789012:{queue_url.rsplit('/', 1)[-1]}"

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.poll_once(wait_seconds=1)
            except Exception as error:  # the emulator restarting, a handler bug: keep polling
                print(f"worker poll failed: {type(error).__name__}: {error}", flush=True)
                time.sleep(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        received = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size(),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return 0
        event = {"Records": [self._record(message) for message in received]}
        result = self._handler(event, LambdaContext(self._timeout)) or {}
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        # As Lambda does: succeeded messages are deleted, failed ones come back
        # after their visibility timeout (and reach the dead letters in time).
        for message in received:
            if message["MessageId"] not in failed:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(received)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": "us-east-1",
        }
