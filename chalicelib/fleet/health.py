"""The periodic fleet check: reachability and free space of every node."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TextIO

from chalicelib.fleet.node import Node
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.kubo.errors import KuboError
from chalicelib.metrics import emit_metrics

if TYPE_CHECKING:
    from chalicelib.kubo.client import KuboClient

logger = logging.getLogger("pinning.fleet")


def check_fleet(registry: NodeRegistry, kubo: Callable[[Node], KuboClient]) -> dict[str, bool]:
    """Asks every node for its identity and repo size; records the answers."""

    def check(node: Node) -> bool:
        client = kubo(node)
        try:
            identity = client.id()
            stat = client.repo_stat()
        except KuboError as error:
            logger.warning("node unhealthy", extra={"node_id": node.node_id, "error": str(error)})
            registry.record_health(node, healthy=False, free_bytes=node.free_bytes)
            return False
        if identity.peer_id != node.peer_id:
            # Another node answers at this address: never pin there by mistake.
            logger.error("node peer ID changed", extra={"node_id": node.node_id, "peer_id": identity.peer_id})
            registry.record_health(node, healthy=False, free_bytes=stat.free_bytes)
            return False
        registry.record_health(node, healthy=True, free_bytes=stat.free_bytes)
        return True

    nodes = registry.nodes(fresh=True)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(nodes)))) as pool:
        return dict(zip((node.node_id for node in nodes), pool.map(check, nodes), strict=False))


def emit_health_metrics(results: dict[str, bool], stage: str, out: TextIO) -> None:
    """Healthy and unhealthy node counts as one CloudWatch embedded-metric line."""
    healthy = sum(results.values())
    emit_metrics({"HealthyNodes": (healthy, "Count"), "UnhealthyNodes": (len(results) - healthy, "Count")}, stage, out)
