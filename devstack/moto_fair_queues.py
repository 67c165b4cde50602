"""Emulates SQS fair queues in moto: a standard queue hands out the messages
of the message groups (tenants) with the fewest messages in flight first;
and keeps moto's queue fast enough for a backlog of thousands.

On AWS, a standard queue whose messages carry a `MessageGroupId` is a fair
queue: when one tenant holds a disproportionate share of the messages in
flight (or of the consumers' time), the messages of the other tenants are
delivered first whenever any are waiting, and among several such tenants
the one with the fewest in flight goes first. moto delivers a standard
queue's messages oldest first, so one tenant's backlog would hold up every
other tenant's messages on the local stack, as it would on AWS without the
message groups (chalicelib.queue.messages sends them).

This orders each receive by, for every visible message, the messages its
group has in flight plus the group's messages ahead of it in this order
(so one receive interleaves the groups), then by age. It leaves out AWS's
thresholds (a tenant counts as noisy past ~10 % of the messages in flight
with at least ~30 of its own, or ~10 % of the consumers' time): the emulation
reorders from the first message in flight, where AWS may wait for a share to
build up. A message without a group is a tenant of its own, as on AWS. FIFO
queues keep moto's order. Dev and test only.

Speed (the same answers as moto's, at a fraction of the cost): moto reads
the clock through `datetime` for every message it looks at, computes all of
a queue's attributes (three passes over its messages, one of them the
ordered list) for every message it sends and three times for every message
it receives (to read the retention period), so a receive from a queue of
1,000 messages cost ~100,000 clock reads; under one tenant's backlog the
emulated SQS took most of the stack process's CPU, and every request of
every tenant (the API's too: one process) waited for it
(docs/benchmarks-history.md section 10). Here the clock is read once per
pass, a receive orders only the messages it takes (the groups merged from a
heap), a long poll checks for any visible message, a delete finds its
message in one pass, and the retention period is read as it is stored. A
receive or send still costs a pass over the queue (2.5 ms and 0.9 ms at
10,000 messages); AWS's do not slow down with a queue's depth.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend


class _Grouped(Protocol):
    @property
    def group_id(self) -> str | None: ...


M = TypeVar("M", bound=_Grouped)


def fair_order(messages: Sequence[M], in_flight: Mapping[str, int]) -> Iterator[M]:
    """`messages` (visible, oldest first) in the order a fair queue hands them out.

    A message's rank is its group's messages in flight plus those of its
    group ahead of it (0 for a message without a group); equal ranks go
    oldest first. Lazily, from a heap of each group's next message: a receive
    that takes 10 of 10,000 messages pays for one pass that groups them, not
    for an order of all of them."""
    ungrouped: list[int] = []
    positions: dict[str, list[int]] = {}
    for position, message in enumerate(messages):
        group = message.group_id
        if group is None:
            ungrouped.append(position)
        else:
            positions.setdefault(group, []).append(position)
    # (rank, position of the group's next message, group, its index in the group)
    heap: list[tuple[int, int, str | None, int]] = [(0, position, None, 0) for position in ungrouped]
    heap += [(in_flight.get(group, 0), ahead[0], group, 0) for group, ahead in positions.items()]
    heapq.heapify(heap)
    while heap:
        rank, position, group, index = heapq.heappop(heap)
        yield messages[position]
        if group is not None and index + 1 < len(positions[group]):
            heapq.heappush(heap, (rank + 1, positions[group][index + 1], group, index + 1))


def _now_ms() -> float:
    # What moto's unix_time_millis() computes through datetime, read directly.
    return time.time() * 1000.0


def _visible(message: Message) -> bool:
    return _now_ms() > message.visible_at


def _delayed(message: Message) -> bool:
    return _now_ms() < message.delayed_until


def _fair_messages(self: Any) -> Iterator[Message]:
    """The visible, undelayed messages (moto's `Queue.messages`), in fair order.

    An iterator, not moto's list: its one reader, a receive, takes the first
    few (the others, the wait for messages and the count, are replaced here)."""
    now = _now_ms()
    visible = [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]
    if self.fifo_queue:
        return iter(visible)
    in_flight = Counter(m.group_id for m in self._messages if m.group_id is not None and now <= m.visible_at)
    return fair_order(visible, in_flight)


def _wait_for_messages(self: Any, timeout: int) -> None:
    """moto's long poll: until a message is visible (checked on every send), or `timeout`."""

    def any_visible() -> bool:
        now = _now_ms()
        return any(now > m.visible_at and now >= m.delayed_until for m in self._messages)

    with self._messages_lock:
        self._messages_lock.wait_for(any_visible, timeout=timeout)


def _delete_message(self: Any, receipt_handle: str) -> None:
    """moto's, in one pass over the queue without building each message's list of handles."""
    if receipt_handle in self.deleted_messages:
        return  # deleted already: a second delete is no error
    messages: list[Message] = self._messages
    index = next(
        (
            i
            for i, m in enumerate(messages)
            if m.receipt_handle == receipt_handle or receipt_handle in m._old_receipt_handles
        ),
        None,
    )
    if index is None:
        raise ReceiptHandleIsInvalid()
    message = messages[index]
    self.pending_messages.discard(message)
    self.deleted_messages.update(message.all_receipt_handles)
    # A new list, as moto's: a receive iterating over the old one is not disturbed.
    self._messages = messages[:index] + messages[index + 1 :]


def _count_visible(self: Any) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if now > m.visible_at and now >= m.delayed_until)


def _count_delayed(self: Any) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _count_not_visible(self: Any) -> int:
    now = _now_ms()
    return sum(1 for m in self._messages if now <= m.visible_at)


def _within_retention(self: Any, queue_name: str, message: Message) -> bool:
    """moto's check, reading the queue's retention period itself rather than
    through every attribute of the queue."""
    retention_seconds = int(self.get_queue(queue_name).message_retention_period)
    sent_ms: int = message.sent_timestamp  # type: ignore[assignment]  # set when sent, as moto assumes
    return retention_seconds + sent_ms / 1000 > time.time()


# What `install` replaces: (owner, attribute) -> the emulation's.
PATCHES: dict[tuple[type, str], Any] = {
    (Message, "visible"): property(_visible),
    (Message, "delayed"): property(_delayed),
    (Queue, "messages"): property(_fair_messages),
    (Queue, "wait_for_messages"): _wait_for_messages,
    (Queue, "delete_message"): _delete_message,
    (Queue, "approximate_number_of_messages"): property(_count_visible),
    (Queue, "approximate_number_of_messages_delayed"): property(_count_delayed),
    (Queue, "approximate_number_of_messages_not_visible"): property(_count_not_visible),
    (SQSBackend, "is_message_valid_based_on_retention_period"): _within_retention,
}


def install() -> None:
    """Idempotent; for the process running the emulated AWS."""
    for (owner, name), value in PATCHES.items():
        setattr(owner, name, value)
