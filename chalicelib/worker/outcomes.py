"""What handling one queue message can come to (besides raising)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.pins.repository import StaleRecord
from chalicelib.queue.messages import QueueMessage

# Times a message's work reads a pin again after a write of it turned out
# stale (another delivery, the drain or the API wrote it first) before the
# message goes back to the queue to try later.
STALE_ATTEMPTS = 5


@dataclass(frozen=True)
class Later:
    """Come back after `delay_seconds` with the same message, or with `next`
    (the work's next step); not a failure."""

    delay_seconds: int
    why: str
    next: QueueMessage | None = None
    # Sent at once, before `next`: work this message hands out (a drain's page).
    spawned: tuple[QueueMessage, ...] = ()


@dataclass(frozen=True)
class Done:
    """The message's work is finished (or there is none left) but for
    `follow_ups`, each sent with its own delay: the releases some node could
    not finish, retried for those nodes alone."""

    follow_ups: tuple[Later, ...] = ()


Outcome = Done | Later


def retried_on_stale(attempt: Callable[[], Outcome], delay_seconds: int, what: str) -> Outcome:
    """`attempt()`, from a fresh read each time, while it raises StaleRecord;
    after STALE_ATTEMPTS of those, Later: the message comes back after
    `delay_seconds` (SQS, not this invocation, waits out the contention)."""
    for _ in range(STALE_ATTEMPTS):
        try:
            return attempt()
        except StaleRecord:
            continue
    return Later(delay_seconds, f"{what} kept changing while this message worked on it; trying again later")
