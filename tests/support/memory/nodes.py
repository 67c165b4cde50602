"""A NodeRepository in a dict, for domain tests; removals write into a MemoryOutbox."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.fleet.node import Node
from chalicelib.queue.outbox_repository import OutboxMessage
from tests.support.memory.outbox import MemoryOutbox


class MemoryNodes:
    def __init__(self, outbox: MemoryOutbox | None = None) -> None:
        self.outbox = outbox if outbox is not None else MemoryOutbox()
        self.stored: dict[str, Node] = {}

    def all(self) -> list[Node]:
        return [self.stored[node_id] for node_id in sorted(self.stored)]

    def get(self, node_id: str) -> Node | None:
        return self.stored.get(node_id)

    def save(self, node: Node) -> Node:
        before = self.stored.get(node.node_id)
        saved = replace(node, version=(before.version if before else 0) + 1)
        self.stored[node.node_id] = saved
        return saved

    def record_health(self, node: Node, healthy: bool, free_bytes: int | None, checked_ms: int) -> bool:
        stored = self.stored.get(node.node_id)
        if stored is None or stored.version != node.version:
            return False
        self.stored[node.node_id] = replace(
            stored, healthy=healthy, free_bytes=free_bytes, checked_ms=checked_ms, version=stored.version + 1
        )
        return True

    def remove(self, node_id: str, announce: OutboxMessage) -> bool:
        if self.stored.pop(node_id, None) is None:
            return False
        self.outbox.add(announce)
        return True
