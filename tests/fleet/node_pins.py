"""Kubo nodes as the reconciler sees them, in process: each a pin set, with
the faults a test switches on (a node down, content no source has)."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from chalicelib.fleet.node import Node
from chalicelib.kubo.errors import KuboServerError, KuboUnavailable, PinStalled


class NodePinSet:
    """One node: the reconciler's chalicelib.fleet.reconciler.NodePins."""

    def __init__(self) -> None:
        # In Kubo's listing order (insertion here).
        self.pinned: dict[str, int] = {}
        self.down = False
        self.unfetchable: set[str] = set()
        self.removed: list[str] = []
        # Listings not closed yet: older Kubo holds its pin set's lock for each.
        self.listing = 0

    def pin(self, cid: str, size: int = 1024) -> None:
        self._up()
        self._unlocked()
        if cid in self.unfetchable:
            raise PinStalled(0, 0)
        self.pinned.setdefault(cid, size)

    def is_pinned(self, cid: str) -> bool:
        self._up()
        return cid in self.pinned

    def recursive_pins(self) -> Generator[str, None, None]:
        self._up()
        self.listing += 1
        try:
            yield from list(self.pinned)
        finally:
            self.listing -= 1

    def pin_rm(self, cid: str) -> None:
        self._up()
        self._unlocked()
        self.pinned.pop(cid, None)
        self.removed.append(cid)

    def dag_size(self, cid: str) -> int:
        self._up()
        if cid not in self.pinned:
            # Kubo's dag/stat, offline, on blocks the node does not have.
            raise KuboServerError(f"block was not found locally (offline): {cid}")
        return self.pinned[cid]

    def _up(self) -> None:
        if self.down:
            raise KuboUnavailable("connection refused")

    def _unlocked(self) -> None:
        """A pin or unpin waits for the lock a listing holds: here, a timeout."""
        if self.listing:
            raise KuboUnavailable("pin/rm: read timed out (the node's pin set is locked by a listing)")


class Fleet:
    """Every node's pin set, and the worker's pin path over them (copy_to)."""

    def __init__(self, node_ids: Sequence[str]) -> None:
        self.nodes = {node_id: NodePinSet() for node_id in node_ids}
        # (node, CID, sources dialed) of each copy made.
        self.copies: list[tuple[str, str, tuple[str, ...]]] = []

    def __getitem__(self, node_id: str) -> NodePinSet:
        return self.nodes[node_id]

    def kubo(self, node: Node) -> NodePinSet:
        return self.nodes[node.node_id]

    def copy_to(self, node: Node, cid: str, sources: Sequence[str], deadline: float) -> None:
        self.nodes[node.node_id].pin(cid)
        self.copies.append((node.node_id, cid, tuple(sources)))
