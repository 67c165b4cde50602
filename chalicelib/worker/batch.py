"""One SQS batch: messages run concurrently; each reports its own outcome.

Failed messages are returned as `batchItemFailures`, so only they come back
(and count toward the dead-letter queue). Unfinished work is not a failure:
its continuation (the same body, or its next step) is sent with a delay and
this delivery succeeds; so are the follow-ups of finished work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.queue.messages import decode, encode
from chalicelib.queue.publisher import Publisher
from chalicelib.worker.outcomes import Done, Later

if TYPE_CHECKING:  # the worker (and its Kubo client) loads only where it runs
    from chalicelib.worker.pin_worker import PinWorker

logger = logging.getLogger("pinning.worker")


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    body: str


def process_batch(
    messages: Sequence[QueuedMessage],
    worker: PinWorker,
    requeue: Publisher,
    seconds_left: float,
) -> dict[str, list[dict[str, str]]]:
    deadline = time.monotonic() + seconds_left

    def run(message: QueuedMessage) -> str | None:
        try:
            outcome = worker.handle(decode(message.body), message.message_id, deadline)
            for later in outcome.follow_ups if isinstance(outcome, Done) else (outcome,):
                _send(later, message, requeue)
            return None
        except Exception:
            logger.exception("message failed; SQS will deliver it again", extra={"message_id": message.message_id})
            return message.message_id

    with ThreadPoolExecutor(max_workers=max(1, len(messages))) as pool:
        failed = [message_id for message_id in pool.map(run, messages) if message_id]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _send(later: Later, message: QueuedMessage, requeue: Publisher) -> None:
    for spawned in later.spawned:
        requeue.send(encode(spawned))
    body = message.body if later.next is None else encode(later.next)
    requeue.send(body, delay_seconds=later.delay_seconds)


def remaining_seconds(context: object | None, margin_seconds: int, default_seconds: float = 60.0) -> float:
    """Time this invocation may still work, leaving `margin_seconds` spare."""
    get_remaining: Callable[[], int] | None = getattr(context, "get_remaining_time_in_millis", None)
    total = get_remaining() / 1000 if get_remaining else default_seconds
    return max(0.0, total - margin_seconds)
