"""Emulates SQS fair queues in moto: a standard queue hands out the messages
of the message groups (tenants) with the fewest messages in flight first.

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
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from moto.sqs.models import Message, Queue

_original = Queue.messages


def fair_order(messages: list[Message], in_flight: Counter[str]) -> list[Message]:
    """`messages` (visible, oldest first) in the order a fair queue hands them out."""
    ahead: Counter[str] = Counter()
    keys: list[tuple[int, int]] = []
    for position, message in enumerate(messages):
        group = message.group_id
        if group is None:
            keys.append((0, position))
            continue
        keys.append((in_flight[group] + ahead[group], position))
        ahead[group] += 1
    return [message for _, message in sorted(zip(keys, messages, strict=True), key=lambda pair: pair[0])]


def _fair_messages(self: Any) -> list[Message]:
    visible: list[Message] = _original.fget(self)  # type: ignore[attr-defined]
    if self.fifo_queue:
        return visible
    in_flight = Counter(m.group_id for m in self._messages if m.group_id is not None and not m.visible)
    return fair_order(visible, in_flight)


def install() -> None:
    """Idempotent; for the process running the emulated AWS."""
    Queue.messages = property(_fair_messages)  # type: ignore[method-assign, assignment]
