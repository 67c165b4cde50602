"""A Kubo fleet node as the registry holds it, and where the registry keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.queue.outbox_repository import OutboxMessage


@dataclass(frozen=True)
class Node:
    node_id: str
    rpc_url: str
    peer_id: str
    # Each ends in /p2p/<peer_id>: what clients dial (the pins' delegates).
    multiaddrs: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    healthy: bool = True
    # None until a health check learns it.
    free_bytes: int | None = None
    checked_ms: int | None = None
    registered_ms: int = 0
    # Bumped by every write: registration, health checks (a record stored
    # before versions existed counts as 0).
    version: int = 0


class NodeRepository(Protocol):
    def all(self) -> list[Node]:
        """Every registered node."""

    def get(self, node_id: str) -> Node | None:
        """The node as stored now (strongly consistent); None when not registered."""

    def save(self, node: Node) -> Node:
        """Store `node` in place of whatever was registered under its id,
        and return it with its new version. A registration depends on
        nothing read, so it checks no version; bumping it makes writers that
        read the old registration fail."""

    def record_health(self, node: Node, healthy: bool, free_bytes: int | None, checked_ms: int) -> bool:
        """Record a health check of `node` as read. False, writing nothing,
        when it was removed or changed (its version moved) since."""

    def remove(self, node_id: str, announce: OutboxMessage) -> bool:
        """Delete the node and write `announce` in one transaction. False,
        writing nothing, when it is not registered. The removal depends on
        nothing read, so it checks no version."""
