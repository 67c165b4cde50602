"""What handling one queue message can come to (besides raising)."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.queue.messages import QueueMessage


@dataclass(frozen=True)
class Done:
    """The message's work is finished (or there is none left)."""


@dataclass(frozen=True)
class Later:
    """Come back after `delay_seconds` with the same message, or with `next`
    (the work's next step); not a failure."""

    delay_seconds: int
    why: str
    next: QueueMessage | None = None
    # Sent at once, before `next`: work this message hands out (a drain's page).
    spawned: tuple[QueueMessage, ...] = ()


Outcome = Done | Later
