"""Which fleet nodes hold a CID: rendezvous (highest random weight) hashing.

Every node gets a score from a hash of (node, CID) and the best-scoring
healthy nodes win. The choice depends only on the CID and the fleet, so equal
CIDs from any tenant land on the same nodes and share one Kubo pin, and a node
joining or leaving moves only the CIDs it wins or held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from chalicelib.fleet.node import Node

MAX_DELEGATES = 20


def _score(node_id: str, cid_key: str) -> bytes:
    return hashlib.sha256(f"{node_id}\n{cid_key}".encode()).digest()


def usable(node: Node, min_free_bytes: int) -> bool:
    """Healthy at the last check, with room for more (unknown space counts as room)."""
    return node.healthy and (node.free_bytes is None or node.free_bytes >= min_free_bytes)


def place(cid_key: str, nodes: Sequence[Node], replicas: int, min_free_bytes: int = 0) -> list[Node]:
    """The nodes that should hold `cid_key`, best first.

    Unhealthy and full nodes are passed over; with no usable node at all the
    request still gets its nodes (as delegates), and the workers wait.
    """
    candidates = [node for node in nodes if usable(node, min_free_bytes)] or list(nodes)
    ranked = sorted(candidates, key=lambda node: _score(node.node_id, cid_key), reverse=True)
    return ranked[:replicas]


def delegates_of(nodes: Sequence[Node]) -> list[str]:
    """The chosen nodes' public multiaddrs (each ends in /p2p/<peer ID>)."""
    seen: list[str] = []
    for node in nodes:
        for address in node.multiaddrs:
            if address not in seen:
                seen.append(address)
    return seen[:MAX_DELEGATES]
