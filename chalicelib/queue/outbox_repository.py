"""Where outbox messages wait between the change they announce and SQS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutboxMessage:
    """A queue message written beside the change it announces."""

    shard: str
    # "<created ms, 13 digits>#<message id>": oldest first within a shard.
    entry_id: str
    body: str
    created_ms: int


class OutboxRepository(Protocol):
    """Messages are written once and deleted once sent: never read-modify-written,
    so they carry no version."""

    def add(self, message: OutboxMessage) -> None:
        """Keep `message` (alone; a change's own transaction writes it otherwise)."""

    def delete(self, message: OutboxMessage) -> None:
        """Forget `message` (sent); nothing happens when it is already gone."""

    def older_than(self, shard: str, before_ms: int) -> Iterator[OutboxMessage]:
        """The shard's messages created before `before_ms`, oldest first, as
        stored now (strongly consistent)."""
