"""The nodes table behind chalicelib.fleet.node.NodeRepository."""

from __future__ import annotations

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.fleet.node import Node
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.attributes import at_version
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import condition_failed, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.node_record import FLEET_PARTITION, NodeRecord
from chalicelib.storage.outbox_entry import entry_of


class DynamoNodeRepository:
    def __init__(self, dynamo: DynamoConnection) -> None:
        self._dynamo = dynamo

    def all(self) -> list[Node]:
        # Placement reads it for every new pin: throttled, the client is told to retry.
        with busy_as_storage_busy():
            return [_node_of(record) for record in NodeRecord.query(FLEET_PARTITION)]

    def get(self, node_id: str) -> Node | None:
        try:
            return _node_of(NodeRecord.get(FLEET_PARTITION, node_id, consistent_read=True))
        except NodeRecord.DoesNotExist:
            return None

    def save(self, node: Node) -> Node:
        # One update, not a put: it replaces every attribute and adds to the
        # version in the same atomic step, without reading it first.
        # What a registration does not know yet is no attribute at all.
        optional = [(NodeRecord.free_bytes, node.free_bytes), (NodeRecord.checked_ms, node.checked_ms)]
        actions: list[Action] = [
            NodeRecord.rpc_url.set(node.rpc_url),
            NodeRecord.peer_id.set(node.peer_id),
            NodeRecord.multiaddrs.set(list(node.multiaddrs)),
            NodeRecord.tags.set(list(node.tags)),
            NodeRecord.healthy.set(node.healthy),
            NodeRecord.registered_ms.set(node.registered_ms),
            NodeRecord.version.add(1),
            *(attribute.remove() if value is None else attribute.set(value) for attribute, value in optional),
        ]
        record = NodeRecord(FLEET_PARTITION, node.node_id)
        record.update(actions=actions)
        return _node_of(record)

    def record_health(self, node: Node, healthy: bool, free_bytes: int | None, checked_ms: int) -> bool:
        # Unknown free space (a node that never answered) is no attribute at all.
        free_space = NodeRecord.free_bytes.remove() if free_bytes is None else NodeRecord.free_bytes.set(free_bytes)
        try:
            NodeRecord(FLEET_PARTITION, node.node_id).update(
                actions=[
                    NodeRecord.healthy.set(healthy),
                    free_space,
                    NodeRecord.checked_ms.set(checked_ms),
                    NodeRecord.version.add(1),
                ],
                condition=NodeRecord.node_id.exists() & at_version(NodeRecord.version, node.version),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            return False
        return True

    def remove(self, node_id: str, announce: OutboxMessage) -> bool:
        try:
            with self._dynamo.transaction() as tx:
                tx.delete(NodeRecord(FLEET_PARTITION, node_id), condition=NodeRecord.node_id.exists())
                tx.save(entry_of(announce))
        except TransactWriteError as error:
            if failed_condition(error) != 0:
                raise
            return False
        return True


def _node_of(record: NodeRecord) -> Node:
    return Node(
        node_id=record.node_id,
        rpc_url=record.rpc_url,
        peer_id=record.peer_id,
        multiaddrs=tuple(record.multiaddrs or ()),
        tags=tuple(record.tags or ()),
        healthy=bool(record.healthy),
        free_bytes=record.free_bytes,
        checked_ms=record.checked_ms,
        registered_ms=record.registered_ms,
        version=record.version or 0,
    )
