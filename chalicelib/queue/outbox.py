"""Transactional outbox: no accepted request is lost between DynamoDB and SQS.

The message is written in the same DynamoDB transaction as the change it
announces, sent to SQS right after, then deleted. If the process dies or SQS
fails in between, the entry stays and `sweep` (run on a schedule) sends it
again; workers treat a second delivery as a no-op.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Callable

from chalicelib.pins.timestamps import now_ms
from chalicelib.queue import messages
from chalicelib.queue.outbox_repository import OutboxMessage, OutboxRepository
from chalicelib.queue.publisher import Publisher

logger = logging.getLogger(__name__)


class Outbox:
    def __init__(
        self, entries: OutboxRepository, publisher: Publisher, shards: int, clock: Callable[[], int] = now_ms
    ) -> None:
        self._entries = entries
        self._publisher = publisher
        self._shards = shards
        self._clock = clock

    def entry_for(self, message: messages.QueueMessage) -> OutboxMessage:
        """The outbox message to write in the transaction of the change."""
        created = self._clock()
        message_id = uuid.uuid4().hex
        shard = zlib.crc32(message_id.encode()) % self._shards
        return OutboxMessage(
            shard=f"shard#{shard}",
            entry_id=f"{created:013d}#{message_id}",
            body=messages.encode(message),
            created_ms=created,
        )

    def add(self, entry: OutboxMessage) -> None:
        """Write `entry` on its own, for a message that announces no other write."""
        self._entries.add(entry)

    def publish(self, entry: OutboxMessage) -> bool:
        """Send, then forget the entry. A failure is left to the sweeper."""
        try:
            self._publisher.send(entry.body)
        except Exception:
            logger.warning(
                "queue send failed; the outbox sweeper will retry", exc_info=True, extra={"entry": entry.entry_id}
            )
            return False
        try:
            self._entries.delete(entry)
        except Exception:
            # The change is committed and its message sent: the request has
            # succeeded. The entry is sent again by the sweeper, a repeat that
            # workers treat as a no-op; failing here would make clients retry
            # and create duplicates.
            logger.warning(
                "outbox entry kept after its send; the sweeper will send it again",
                exc_info=True,
                extra={"entry": entry.entry_id},
            )
        return True

    def sweep(self, older_than_ms: int) -> int:
        """Re-send entries written before `older_than_ms`; returns how many were sent."""
        sent = 0
        for shard in range(self._shards):
            for entry in self._entries.older_than(f"shard#{shard}", older_than_ms):
                sent += self.publish(entry)
        return sent
