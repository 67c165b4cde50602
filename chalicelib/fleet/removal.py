"""Taking a node out of the fleet without taking its pins with it.

A removed node's copy of every CID is as good as gone (a terminated node's
volume goes with it), so its removal and the message that drains it are one
transaction: the pin workers then re-replicate every request that held a pin
there onto healthy nodes (chalicelib/worker/drain.py). A node that dies
without being removed stays registered, unhealthy: placement skips it, but
its pins are not moved until an operator removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chalicelib.fleet.registry import NodeRegistry
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import DrainNode
from chalicelib.queue.outbox import Outbox

logger = logging.getLogger("pinning.fleet")


class NodeRemoval:
    def __init__(self, registry: NodeRegistry, outbox: Outbox, clock: Callable[[], int] = now_ms) -> None:
        self._registry = registry
        self._outbox = outbox
        self._clock = clock

    def remove(self, node_id: str) -> bool:
        """Out of the registry (no new pin goes there), its drain queued.
        False when the node is not registered."""
        entry = self._outbox.entry_for(DrainNode(node_id, self._clock()))
        if not self._registry.remove(node_id, announce=entry):
            return False
        logger.info("node removed; draining its pins", extra={"node_id": node_id})
        self._outbox.publish(entry)
        return True

    def drain(self, node_id: str) -> bool:
        """Queue the drain of a node that is no longer registered once more
        (e.g. its drain message ended in the dead-letter queue); a drain of
        a node that holds nothing ends at once. False when the node is
        registered."""
        if self._registry.registered(node_id):
            return False
        entry = self._outbox.entry_for(DrainNode(node_id, self._clock()))
        self._outbox.add(entry)
        self._outbox.publish(entry)
        return True
