"""OutboxRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import pytest

from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.outbox_repository import DynamoOutboxRepository
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.outbox import MemoryOutbox


def message(shard: int, created_ms: int, name: str) -> OutboxMessage:
    return OutboxMessage(f"shard#{shard}", f"{created_ms:013d}#{name}", f'{{"m":"{name}"}}', created_ms)


@pytest.fixture(params=BACKENDS)
def outbox(request):
    if request.param == "memory":
        return MemoryOutbox()
    dynamo_connection(request)
    return DynamoOutboxRepository()


def test_messages_older_than_a_time_come_oldest_first_per_shard(outbox):
    late, early, other_shard, fresh = message(0, 20, "b"), message(0, 10, "a"), message(1, 5, "c"), message(0, 30, "d")
    for entry in (late, early, other_shard, fresh):
        outbox.add(entry)
    assert list(outbox.older_than("shard#0", 30)) == [early, late]
    assert list(outbox.older_than("shard#1", 30)) == [other_shard]
    assert list(outbox.older_than("shard#2", 30)) == []


def test_a_deleted_message_is_gone_and_deleting_it_again_is_harmless(outbox):
    sent = message(0, 10, "a")
    outbox.add(sent)
    outbox.delete(sent)
    outbox.delete(sent)
    assert list(outbox.older_than("shard#0", 99)) == []
