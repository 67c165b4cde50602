"""The node registry: Kubo nodes the workers may pin to."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chalicelib.fleet.node import Node, NodeRepository
from chalicelib.pins.multiaddrs import parse_peer_multiaddr
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.outbox_repository import OutboxMessage


class InvalidNode(ValueError):
    pass


class NodeRegistry:
    def __init__(self, nodes: NodeRepository, cache_seconds: int = 30, clock: Callable[[], int] = now_ms) -> None:
        self._nodes = nodes
        self._cache_ms = cache_seconds * 1000
        self._clock = clock
        self._cached: list[Node] | None = None
        self._cached_at = 0

    def nodes(self, fresh: bool = False) -> list[Node]:
        """Every registered node; cached briefly, as placement runs per request."""
        now = self._clock()
        if fresh or self._cached is None or now - self._cached_at >= self._cache_ms:
            self._cached = self._nodes.all()
            self._cached_at = now
        return self._cached

    def node(self, node_id: str) -> Node | None:
        """The node as registered now (one strongly consistent read)."""
        return self._nodes.get(node_id)

    def registered(self, node_id: str) -> bool:
        """Whether the node is in the registry now (one strongly consistent read)."""
        return self.node(node_id) is not None

    def register(
        self, node_id: str, rpc_url: str, peer_id: str, multiaddrs: Sequence[str], tags: Sequence[str] = ()
    ) -> Node:
        if not node_id or not rpc_url.startswith(("http://", "https://")):
            raise InvalidNode("a node needs an id and an http(s) RPC URL")
        try:
            # One spelling per peer (base58), whatever form the operator used.
            peer_id = parse_peer_multiaddr(f"/p2p/{peer_id}").peer_id
        except ValueError as error:
            raise InvalidNode(f"bad peer ID {peer_id!r}: {error}") from error
        addresses = []
        for address in multiaddrs:
            # Clients fail a whole command on a delegate without /p2p/<peer>.
            full = address if "/p2p/" in address else f"{address.rstrip('/')}/p2p/{peer_id}"
            try:
                parsed = parse_peer_multiaddr(full)
            except ValueError as error:
                raise InvalidNode(f"bad multiaddr {address!r}: {error}") from error
            if parsed.peer_id != peer_id:
                raise InvalidNode(f"multiaddr {address!r} names another peer")
            addresses.append(full)
        if not addresses:
            raise InvalidNode("a node needs at least one multiaddr clients can dial")
        node = self._nodes.save(
            Node(node_id, rpc_url, peer_id, tuple(addresses), tuple(tags), healthy=True, registered_ms=self._clock())
        )
        self._cached = None
        return node

    def record_health(self, node: Node, healthy: bool, free_bytes: int | None) -> bool:
        """Record what a check of `node` (as read) found. False when the node
        was removed or changed meanwhile (re-registered, or checked by a
        concurrent check): the finding is about what was read, so it is
        dropped, and the next scheduled check looks again."""
        recorded = self._nodes.record_health(node, healthy, free_bytes, self._clock())
        self._cached = None
        return recorded

    def remove(self, node_id: str, announce: OutboxMessage) -> bool:
        """Take the node out of the fleet and write `announce` (the outbox
        message that drains it) in the same transaction. False, writing
        nothing, when the node is not registered."""
        if not self._nodes.remove(node_id, announce):
            return False
        self._cached = None
        return True
