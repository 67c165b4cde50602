"""One SQS batch: messages run concurrently; each reports its own outcome.

Failed messages are returned as `batchItemFailures`, so only they come back
(and count toward the dead-letter queue). Unfinished work is not a failure:
its continuation (the same body, or its next step) is sent with a delay and
this delivery succeeds; so are the follow-ups of finished work.

Fairness between tenants: a worker process lets at most `TenantShare.limit`
messages of one tenant work at once, fewer than its Kubo slots per node, so
another tenant's pin always finds a slot. The rest of that tenant's messages
are deferred: sent again with a delay while this delivery succeeds (not
failed: a failure would spend a receive toward the dead-letter queue), which
frees the batch, and the fair queue hands out the other tenants' messages
first meanwhile (docs/deploy.md, "Fairness between tenants").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.queue.messages import decode, encode, group_of
from chalicelib.queue.publisher import Publisher
from chalicelib.worker.outcomes import Done, Later

if TYPE_CHECKING:  # the worker (and its Kubo client) loads only where it runs
    from chalicelib.worker.pin_worker import PinWorker

logger = logging.getLogger("pinning.worker")


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    body: str


class TenantShare:
    """How many messages of each tenant work at once in this process; at most
    `limit` each. Messages of no tenant (fleet work) are not counted."""

    def __init__(self, limit: int, defer_seconds: int) -> None:
        self.limit = limit
        self.defer_seconds = defer_seconds
        self._working: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, tenant_id: str | None) -> bool:
        """A place for one message of `tenant_id`; False when it has `limit` at work."""
        if tenant_id is None:
            return True
        with self._lock:
            working = self._working.get(tenant_id, 0)
            if working >= self.limit:
                return False
            self._working[tenant_id] = working + 1
            return True

    def give_back(self, tenant_id: str | None) -> None:
        if tenant_id is None:
            return
        with self._lock:
            left = self._working[tenant_id] - 1
            if left:
                self._working[tenant_id] = left
            else:
                del self._working[tenant_id]


def process_batch(
    messages: Sequence[QueuedMessage],
    worker: PinWorker,
    requeue: Publisher,
    seconds_left: float,
) -> dict[str, list[dict[str, str]]]:
    deadline = time.monotonic() + seconds_left
    share = worker.tenant_share
    # Taken in the batch's order before any runs, so which messages are
    # deferred depends only on what is at work in this process.
    tenants = [_tenant_of(message) for message in messages]
    admitted = [share.take(tenant_id) for tenant_id in tenants]

    def run(message: QueuedMessage, tenant_id: str | None, admitted: bool) -> str | None:
        try:
            if not admitted:
                requeue.send(message.body, delay_seconds=share.defer_seconds)
                logger.info(
                    "deferred: its tenant has its share of this worker at work",
                    extra={"message_id": message.message_id, "tenant_id": tenant_id},
                )
                return None
            outcome = worker.handle(decode(message.body), message.message_id, deadline)
            for later in outcome.follow_ups if isinstance(outcome, Done) else (outcome,):
                _send(later, message, requeue)
            return None
        except Exception:
            logger.exception("message failed; SQS will deliver it again", extra={"message_id": message.message_id})
            return message.message_id
        finally:
            if admitted:
                share.give_back(tenant_id)

    with ThreadPoolExecutor(max_workers=max(1, len(messages))) as pool:
        failed = [message_id for message_id in pool.map(run, messages, tenants, admitted) if message_id]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _tenant_of(message: QueuedMessage) -> str | None:
    try:
        return group_of(message.body)
    except (ValueError, AttributeError):  # not JSON, or not an object: decode fails it in `run`
        return None


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
