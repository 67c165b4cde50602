"""The node registry: Kubo nodes the workers may pin to."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.pins.multiaddrs import parse_peer_multiaddr
from chalicelib.pins.timestamps import now_ms
from chalicelib.storage.cancellations import cancellation_codes
from chalicelib.storage.node_record import FLEET_PARTITION, NodeRecord
from chalicelib.storage.outbox_entry import OutboxEntry


class InvalidNode(ValueError):
    pass


class NodeRegistry:
    def __init__(self, cache_seconds: int = 30, clock: Callable[[], int] = now_ms) -> None:
        self._cache_ms = cache_seconds * 1000
        self._clock = clock
        self._cached: list[NodeRecord] | None = None
        self._cached_at = 0

    def nodes(self, fresh: bool = False) -> list[NodeRecord]:
        """Every registered node; cached briefly, as placement runs per request."""
        now = self._clock()
        if fresh or self._cached is None or now - self._cached_at >= self._cache_ms:
            self._cached = list(NodeRecord.query(FLEET_PARTITION))
            self._cached_at = now
        return self._cached

    def registered(self, node_id: str) -> bool:
        """Whether the node is in the registry now (one strongly consistent read)."""
        try:
            NodeRecord.get(FLEET_PARTITION, node_id, consistent_read=True)
        except NodeRecord.DoesNotExist:
            return False
        return True

    def register(
        self, node_id: str, rpc_url: str, peer_id: str, multiaddrs: Sequence[str], tags: Sequence[str] = ()
    ) -> NodeRecord:
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
        record = NodeRecord(
            FLEET_PARTITION,
            node_id,
            rpc_url=rpc_url,
            peer_id=peer_id,
            multiaddrs=addresses,
            tags=list(tags),
            healthy=True,
            registered_ms=self._clock(),
        )
        record.save()
        self._cached = None
        return record

    def record_health(self, node_id: str, healthy: bool, free_bytes: int | None) -> None:
        try:
            # Unknown free space (a node that never answered) is no attribute at all.
            free_space = NodeRecord.free_bytes.remove() if free_bytes is None else NodeRecord.free_bytes.set(free_bytes)
            NodeRecord(FLEET_PARTITION, node_id).update(
                actions=[NodeRecord.healthy.set(healthy), free_space, NodeRecord.checked_ms.set(self._clock())],
                condition=NodeRecord.node_id.exists(),
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise  # removed meanwhile: nothing to record
        self._cached = None

    def remove(self, node_id: str, announce: OutboxEntry) -> bool:
        """Take the node out of the fleet and write `announce` (the outbox
        message that drains it) in the same transaction. False, writing
        nothing, when the node is not registered."""
        try:
            with TransactWrite(connection=NodeRecord._get_connection().connection) as tx:
                tx.delete(NodeRecord(FLEET_PARTITION, node_id), condition=NodeRecord.node_id.exists())
                tx.save(announce)
        except TransactWriteError as error:
            if cancellation_codes(error)[:1] != ["ConditionalCheckFailed"]:
                raise
            return False
        self._cached = None
        return True
