"""An OutboxRepository in a dict, for domain tests."""

from __future__ import annotations

from collections.abc import Iterator

from chalicelib.queue.outbox_repository import OutboxMessage


class MemoryOutbox:
    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], OutboxMessage] = {}

    def add(self, message: OutboxMessage) -> None:
        self.messages[(message.shard, message.entry_id)] = message

    def delete(self, message: OutboxMessage) -> None:
        self.messages.pop((message.shard, message.entry_id), None)

    def older_than(self, shard: str, before_ms: int) -> Iterator[OutboxMessage]:
        bound = f"{before_ms:013d}"
        stale = [message for message in self.messages.values() if message.shard == shard and message.entry_id < bound]
        return iter(sorted(stale, key=lambda message: message.entry_id))
