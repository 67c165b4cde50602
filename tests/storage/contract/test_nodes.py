"""NodeRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.fleet.node import Node
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.node_repository import DynamoNodeRepository
from chalicelib.storage.outbox_repository import DynamoOutboxRepository
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.nodes import MemoryNodes

PEER = "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N"
NODE = Node(
    "node-a", "http://127.0.0.1:5101", PEER, (f"/ip4/203.0.113.1/tcp/4001/p2p/{PEER}",), ("ssd",), True, None, None, 5
)
DRAIN = OutboxMessage("shard#0", "0000000000009#m1", '{"kind":"drain"}', 9)


@pytest.fixture(params=BACKENDS)
def repositories(request):
    """(nodes, outbox): the outbox is where a removal's message lands."""
    if request.param == "memory":
        nodes = MemoryNodes()
        return nodes, nodes.outbox
    return DynamoNodeRepository(dynamo_connection(request)), DynamoOutboxRepository()


def test_a_saved_node_reads_back_with_its_first_version(repositories):
    nodes, _ = repositories
    saved = nodes.save(NODE)
    assert saved == replace(NODE, version=1)
    assert nodes.get("node-a") == saved
    assert nodes.all() == [saved]
    assert nodes.get("node-b") is None


def test_saving_again_replaces_everything_and_forgets_the_last_check(repositories):
    nodes, _ = repositories
    first = nodes.save(NODE)
    assert nodes.record_health(first, healthy=False, free_bytes=10, checked_ms=7)
    again = nodes.save(replace(NODE, rpc_url="http://127.0.0.1:5999", tags=()))
    assert again == replace(NODE, rpc_url="http://127.0.0.1:5999", tags=(), version=3)
    assert nodes.get("node-a") == again


def test_a_health_check_is_recorded_on_the_node_it_read(repositories):
    nodes, _ = repositories
    read = nodes.save(NODE)
    assert nodes.record_health(read, healthy=False, free_bytes=123, checked_ms=77)
    assert nodes.get("node-a") == replace(read, healthy=False, free_bytes=123, checked_ms=77, version=2)
    # Unknown free space again: no value
    assert nodes.record_health(nodes.get("node-a"), healthy=True, free_bytes=None, checked_ms=78)
    assert nodes.get("node-a").free_bytes is None


def test_a_health_check_of_a_node_that_changed_since_it_was_read_is_dropped(repositories):
    nodes, _ = repositories
    read = nodes.save(NODE)
    # Given the node is registered again (a new address) after the check read it
    moved = nodes.save(replace(NODE, rpc_url="http://127.0.0.1:5999"))
    # When the check, which called the old address, records its finding
    # Then nothing is written: the finding was about the old registration
    assert not nodes.record_health(read, healthy=False, free_bytes=1, checked_ms=9)
    assert nodes.get("node-a") == moved
    # And a second check of the same read is dropped too
    assert nodes.record_health(moved, healthy=True, free_bytes=5, checked_ms=10)
    assert not nodes.record_health(moved, healthy=False, free_bytes=5, checked_ms=11)


def test_a_health_check_of_a_removed_node_writes_nothing(repositories):
    nodes, _ = repositories
    read = nodes.save(NODE)
    assert nodes.remove("node-a", DRAIN)
    assert not nodes.record_health(read, healthy=True, free_bytes=1, checked_ms=9)
    assert nodes.get("node-a") is None


def test_removal_writes_its_announcement_and_an_unknown_node_writes_nothing(repositories):
    nodes, outbox = repositories
    nodes.save(NODE)
    assert nodes.remove("node-a", DRAIN)
    assert nodes.all() == []
    assert list(outbox.older_than("shard#0", 10)) == [DRAIN]
    other = replace(DRAIN, entry_id="0000000000009#m2")
    assert not nodes.remove("node-a", other)
    assert list(outbox.older_than("shard#0", 10)) == [DRAIN]
