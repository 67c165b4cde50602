"""A ReconcileRepository over a MemoryHolds' dicts, for domain tests.

Each operation is atomic, as DynamoDB's are, and calls the holds' `step`
first (with its name), where a test can let another caller run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.fleet.hold_repository import Lease
from chalicelib.fleet.reconcile_repository import ReconcileCursor, Sighting, Tally
from tests.support.memory.holds import MemoryHolds


@dataclass
class MemoryReconcile:
    holds: MemoryHolds
    cursors: dict[str, ReconcileCursor] = field(default_factory=dict)

    def tally(self, node_id: str, cid_key: str) -> Tally:
        self.holds.step("tally")
        state = self.holds._state(node_id, cid_key)
        held_by = sum(1 for hold in self.holds.holds if (hold.node_id, hold.cid_key) == (node_id, cid_key))
        return Tally(state.holders, held_by, state.changes, state.lease, state.unheld)

    def recount(self, node_id: str, cid_key: str, tally: Tally) -> bool:
        self.holds.step("recount")
        state = self.holds._state(node_id, cid_key)
        if state.changes != tally.changes:
            return False
        state.holders, state.changes = tally.held_by, state.changes + 1
        return True

    def sight(self, node_id: str, cid_key: str, tally: Tally, now_ms: int) -> bool:
        self.holds.step("sight")
        state = self.holds._state(node_id, cid_key)
        if state.changes != tally.changes:
            return False
        state.unheld = Sighting(now_ms, tally.changes)
        return True

    def take_unheld(self, node_id: str, cid_key: str, sighting: Sighting, lease: Lease, now_ms: int) -> bool:
        self.holds.step("take_unheld")
        state = self.holds._state(node_id, cid_key)
        as_sighted = state.changes == sighting.changes and state.unheld == sighting and state.holders <= 0
        if not as_sighted or self.holds._releasing(state, now_ms):
            return False
        state.lease, state.unheld = lease, None
        return True

    def cursor(self, node_id: str) -> ReconcileCursor:
        self.holds.step("cursor")
        return self.cursors.get(node_id, ReconcileCursor())

    def save_cursor(self, node_id: str, cursor: ReconcileCursor) -> None:
        self.holds.step("save_cursor")
        self.cursors[node_id] = cursor
