"""Queue messages written in the same transaction as the change they announce.

An entry is deleted once SQS has the message; one left behind (the process
died, SQS failed) is re-sent by the sweeper. Shards spread the write load.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.attributes import IntegerAttribute


class OutboxEntry(Model):
    class Meta:
        table_name = "outbox"
        billing_mode = "PAY_PER_REQUEST"

    shard = UnicodeAttribute(hash_key=True)
    # "<created ms, 13 digits>#<message id>": oldest first within a shard.
    entry_id = UnicodeAttribute(range_key=True)
    body = UnicodeAttribute()
    created_ms = IntegerAttribute()


def entry_of(message: OutboxMessage) -> OutboxEntry:
    """The item that stores `message` (to save alone or in a change's transaction)."""
    return OutboxEntry(message.shard, message.entry_id, body=message.body, created_ms=message.created_ms)


def message_of(entry: OutboxEntry) -> OutboxMessage:
    return OutboxMessage(entry.shard, entry.entry_id, entry.body, entry.created_ms)
