"""Webhooks on the local stack: what Lambda does on AWS (infra/render.py), on moto.

- The webhooks queue, FIFO as on AWS, its dead letters after MAX_ATTEMPTS receives.
- The pins table's stream read a second time (the folds read it too), its
  status changes handed to the app's `webhook_events`, as the second event
  source mapping does: a StreamPoller keeping what WEBHOOK_FILTER lets through.
- The queue polled one message at a time for the app's `webhook_worker`.

The stream is read every POLL_SECONDS (the folds' poller: 0.5 s), so the
local stack adds up to that to a webhook's latency; AWS's mapping has no
batching window for it (bench/webhook_latency.py measures both parts).
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.webhooks.delivery import BATCH_SIZE, MAX_ATTEMPTS
from chalicelib.webhooks.events import pin_event
from devstack.stream_poller import StreamPoller, streams_client
from devstack.worker_poller import QueuePoller

# The stream read this often for webhooks: a fifth of the folds' wait, at
# the cost of five GetRecords a second on the emulator.
POLL_SECONDS = 0.1


def is_event(record: Any) -> bool:
    """Whether the webhook mapping's filter would let the record through."""
    return pin_event(record, 0) is not None


def create_webhook_queues(sqs: Any, prefix: str, visibility_timeout: int) -> dict[str, str]:
    """The FIFO webhooks queue and its dead letters; returns both URLs."""
    fifo = {"FifoQueue": "true"}
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-webhooks-dlq.fifo", Attributes=fifo)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_ATTEMPTS)}
    attributes = {**fifo, "RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": str(visibility_timeout)}
    queue_url = sqs.create_queue(QueueName=f"{prefix}-webhooks.fifo", Attributes=attributes)["QueueUrl"]
    return {"queue": queue_url, "dead_letter_queue": dlq_url}


def webhook_jobs(
    app_module: Any, sqs: Any, endpoint_url: str, table: str, queue_url: str, timeout_seconds: float
) -> tuple[StreamPoller, QueuePoller]:
    """The stream's second reader, and the queue's poller (for the stack to run and stop)."""
    return (
        StreamPoller(
            streams_client(endpoint_url),
            table,
            app_module.webhook_events,
            timeout_seconds,
            interval=POLL_SECONDS,
            keep=is_event,
            name="webhook-events",
        ),
        QueuePoller(sqs, queue_url, app_module.webhook_worker, timeout_seconds, "webhook-worker", lambda: BATCH_SIZE),
    )
