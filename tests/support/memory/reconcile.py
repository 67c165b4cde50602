"""A ReconcileRepository over a MemoryHolds' dicts, for domain tests (it
wraps the holds' set, so that a hold's orphan note goes with the hold).

Each operation is atomic, as DynamoDB's are, and calls the holds' `step`
first (with its name), where a test can let another caller run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from chalicelib.fleet.hold_repository import Hold, Holder, Lease
from chalicelib.fleet.reconcile_repository import ReconcileCursor, Sighting, Tally
from tests.support.memory.holds import MemoryHolds


@dataclass
class MemoryReconcile:
    holds: MemoryHolds
    cursors: dict[str, ReconcileCursor] = field(default_factory=dict)
    # When each hold noted orphaned was first seen so.
    noted: dict[Hold, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.holds.holds = _Holds(self.holds.holds, self.noted)

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

    def orphans(self, node_id: str, holders: Sequence[Holder]) -> dict[Holder, int]:
        self.holds.step("orphans")
        noted = ((holder, self.noted.get(_hold(node_id, holder))) for holder in holders)
        return {holder: since for holder, since in noted if since is not None}

    def note_orphan(self, node_id: str, holder: Holder, now_ms: int) -> bool:
        self.holds.step("note_orphan")
        hold = _hold(node_id, holder)
        if hold not in self.holds.holds or hold in self.noted:
            return False
        self.noted[hold] = now_ms
        return True

    def forget_orphan(self, node_id: str, holder: Holder) -> None:
        self.holds.step("forget_orphan")
        self.noted.pop(_hold(node_id, holder), None)

    def cursor(self, node_id: str) -> ReconcileCursor:
        self.holds.step("cursor")
        return self.cursors.get(node_id, ReconcileCursor())

    def save_cursor(self, node_id: str, cursor: ReconcileCursor) -> None:
        self.holds.step("save_cursor")
        self.cursors[node_id] = cursor


class _Holds(set[Hold]):
    """The holds, whose notes go with them (MemoryHolds discards a hold given
    up), as a holder item's attributes go with the item on DynamoDB."""

    def __init__(self, holds: set[Hold], noted: dict[Hold, int]) -> None:
        super().__init__(holds)
        self._noted = noted

    def discard(self, hold: Hold) -> None:
        super().discard(hold)
        self._noted.pop(hold, None)


def _hold(node_id: str, holder: Holder) -> Hold:
    return Hold(node_id, holder.cid_key, holder.tenant_id, holder.request_id)
