"""The outbox table behind chalicelib.queue.outbox_repository.OutboxRepository."""

from __future__ import annotations

from collections.abc import Iterator

from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.outbox_entry import OutboxEntry, entry_of, message_of


class DynamoOutboxRepository:
    @busy_as_storage_busy()
    def add(self, message: OutboxMessage) -> None:
        entry_of(message).save()

    @busy_as_storage_busy()
    def delete(self, message: OutboxMessage) -> None:
        entry_of(message).delete()

    def older_than(self, shard: str, before_ms: int) -> Iterator[OutboxMessage]:
        stale = OutboxEntry.query(shard, OutboxEntry.entry_id < f"{before_ms:013d}", consistent_read=True)
        return (message_of(entry) for entry in stale)
