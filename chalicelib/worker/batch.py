"""One SQS batch: messages run concurrently; each reports its own outcome.

Failed messages are returned as `batchItemFailures`, so only they come back
(and count toward the dead-letter queue). Unfinished work is not a failure:
its continuation (the same body, or its next step) is sent with a delay and
this delivery succeeds; so are the follow-ups of finished work.

Fairness between tenants: a worker process lets at most `TenantShare.limit`
messages of one tenant work at once, fewer than its Kubo slots per node, so
another tenant's pin always finds a slot. A message past its tenant's share
waits a little for a place, then is deferred: sent again with a delay while
this delivery succeeds (not failed: a failure would spend a receive toward
the dead-letter queue), which frees the batch, and the fair queue hands out
the other tenants' messages first meanwhile (docs/deploy.md, "Fairness
between tenants").

Across processes, a tenant's messages may hold at most TENANT_INVOCATIONS
invocations at once (`invocation_slots`): a batch takes a slot per tenant in
it and defers at once the messages of a tenant refused one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.queue.messages import decode, encode, group_of
from chalicelib.queue.publisher import Publisher
from chalicelib.worker.invocation_slots import InvocationSlots, Refused, Slot
from chalicelib.worker.outcomes import Done, Later

if TYPE_CHECKING:  # the worker (and its Kubo client) loads only where it runs
    from chalicelib.worker.pin_worker import PinWorker

logger = logging.getLogger("pinning.worker")


@dataclass(frozen=True)
class QueuedMessage:
    message_id: str
    body: str


class TenantShare:
    """The places each tenant's messages hold in this process: at most
    `limit` each. Messages of no tenant (fleet work) take none.

    A message past its tenant's share waits up to `wait_seconds` for a place,
    then is deferred (the wait bounds how long its batch keeps a poller from
    the queue). While the tenant's places turn over (quick pins), it comes
    back after `busy_delay_seconds`, so a tenant alone keeps the worker busy.
    Once every place of the tenant has been held for `stuck_seconds` (content
    no one provides stalls for a whole turn), its next messages are deferred
    at once, for `stuck_delay_seconds`: they could not run sooner, and coming
    back often would only churn the queue.
    """

    def __init__(
        self,
        limit: int,
        stuck_delay_seconds: int,
        busy_delay_seconds: int = 1,
        wait_seconds: float = 0.3,
        stuck_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.stuck_delay_seconds = stuck_delay_seconds
        self.busy_delay_seconds = busy_delay_seconds
        self.wait_seconds = wait_seconds
        self.stuck_seconds = stuck_seconds
        self._clock = clock
        self._held_since: dict[str, list[float]] = {}
        self._freed = threading.Condition()

    def take(self, tenant_id: str | None) -> float | None:
        """A place for one message of `tenant_id` (when it was taken, for
        `give_back`), or None: defer the message by `delay_for(tenant_id)`."""
        if tenant_id is None:
            return self._clock()
        with self._freed:
            if not self._freed.wait_for(lambda: self._free(tenant_id) or self._stuck(tenant_id), self.wait_seconds):
                return None
            if not self._free(tenant_id):
                return None  # stuck
            taken = self._clock()
            self._held_since.setdefault(tenant_id, []).append(taken)
            return taken

    def give_back(self, tenant_id: str | None, taken: float) -> None:
        if tenant_id is None:
            return
        with self._freed:
            held = self._held_since[tenant_id]
            held.remove(taken)
            if not held:
                del self._held_since[tenant_id]
            self._freed.notify_all()

    def saturated(self) -> bool:
        """Whether some tenant holds all of its places."""
        with self._freed:
            return any(len(held) >= self.limit for held in self._held_since.values())

    def delay_for(self, tenant_id: str | None) -> int:
        """How long a message refused a place stays away."""
        with self._freed:
            stuck = tenant_id is not None and self._stuck(tenant_id)
        return self.stuck_delay_seconds if stuck else self.busy_delay_seconds

    def _free(self, tenant_id: str) -> bool:
        return len(self._held_since.get(tenant_id, ())) < self.limit

    def _stuck(self, tenant_id: str) -> bool:
        held = self._held_since.get(tenant_id, [])
        return len(held) >= max(1, self.limit) and self._clock() - max(held) >= self.stuck_seconds


class _BatchSlots:
    """The invocation slots of a batch's tenants: taken at its start (at
    once, on the batch's threads), each given back once the batch's last
    message of its tenant is done. Messages of no tenant need none."""

    def __init__(
        self,
        slots: InvocationSlots | None,
        messages: Sequence[QueuedMessage],
        seconds_left: float,
        pool: ThreadPoolExecutor,
    ) -> None:
        self._slots = slots
        self._left = Counter(tenant for tenant in map(_tenant_of, messages) if tenant is not None)
        self._lock = threading.Lock()
        self._held: dict[str, Slot | Refused] = {}
        if slots is not None:
            tenants = list(self._left)
            self._held = dict(
                zip(tenants, pool.map(lambda tenant: slots.take(tenant, seconds_left), tenants), strict=True)
            )

    def refused(self, tenant_id: str | None) -> Refused | None:
        held = self._held.get(tenant_id) if tenant_id is not None else None
        return held if isinstance(held, Refused) else None

    def done(self, tenant_id: str | None) -> None:
        if tenant_id is None or self._slots is None:
            return
        with self._lock:
            self._left[tenant_id] -= 1
            last = not self._left[tenant_id]
        held = self._held.get(tenant_id)
        if last and isinstance(held, Slot):
            self._slots.give_back(held)


def process_batch(
    messages: Sequence[QueuedMessage],
    worker: PinWorker,
    requeue: Publisher,
    seconds_left: float,
    slots: InvocationSlots | None = None,
) -> dict[str, list[dict[str, str]]]:
    deadline = time.monotonic() + seconds_left
    share = worker.tenant_share

    def run(message: QueuedMessage, turns: _BatchSlots) -> str | None:
        tenant_id = _tenant_of(message)
        refused = turns.refused(tenant_id)
        place = None if refused is not None else share.take(tenant_id)
        try:
            if place is None:
                delay = refused.delay_seconds if refused is not None else share.delay_for(tenant_id)
                requeue.send(message.body, delay_seconds=delay)
                logger.info(
                    "deferred: its tenant has its share of the worker invocations"
                    if refused is not None
                    else "deferred: its tenant has its share of this worker at work",
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
            if place is not None:
                share.give_back(tenant_id, place)
            turns.done(tenant_id)

    with ThreadPoolExecutor(max_workers=max(1, len(messages))) as pool:
        turns = _BatchSlots(slots, messages, seconds_left, pool)
        failed = [message_id for message_id in pool.map(lambda message: run(message, turns), messages) if message_id]
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
