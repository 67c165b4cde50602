"""An ArchiveRepository in dicts, for domain tests.

Each operation is atomic, as DynamoDB's are; `step` is called before each
one (with its name), where a test can let another caller run first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from chalicelib.cold.archive_repository import (
    ARCHIVED,
    ARCHIVING,
    DELETING,
    FAILED,
    ArchivedCar,
    ArchiveHolder,
    ArchiveLease,
    ArchiveState,
    Held,
    Left,
    Orphan,
)


@dataclass
class MemoryArchives:
    holders: set[ArchiveHolder] = field(default_factory=set)
    states: dict[str, ArchiveState] = field(default_factory=dict)
    step: Callable[[str], None] = lambda operation: None

    def hold(self, holder: ArchiveHolder) -> Held:
        self.step("hold")
        state = self.states.get(holder.cid) or ArchiveState(holder.cid, ARCHIVING, 0, 0)
        if holder in self.holders:
            return Held.ALREADY_HELD
        if state.state == DELETING:
            return Held.DELETING
        self.holders.add(holder)
        self.states[holder.cid] = replace(state, holders=state.holders + 1, changes=state.changes + 1, orphaned_ms=None)
        return Held.ADDED

    def state(self, cid: str) -> ArchiveState | None:
        self.step("state")
        return self.states.get(cid)

    def leave(self, holder: ArchiveHolder, holders: int, now_ms: int) -> Left:
        self.step("leave")
        state = self.states.get(holder.cid)
        if state is None or holder not in self.holders:
            return Left.NOT_HELD
        if state.holders != holders:
            return Left.RECOUNT
        self.holders.discard(holder)
        left = holders - 1
        self.states[holder.cid] = replace(
            state, holders=left, changes=state.changes + 1, orphaned_ms=state.orphaned_ms if left else now_ms
        )
        return Left.REMOVED if left else Left.LAST

    def take_lease(self, cid: str, lease: ArchiveLease, now_ms: int) -> ArchiveState | None:
        self.step("take_lease")
        state = self.states.get(cid)
        if state is None or state.state != ARCHIVING:
            return None
        if state.lease is not None and state.lease.active(now_ms) and state.lease.by != lease.by:
            return None
        taken = replace(state, lease=lease, attempts=state.attempts + 1)
        self.states[cid] = taken
        return taken

    def record_archived(self, cid: str, by: str, car: ArchivedCar) -> bool:
        self.step("record_archived")
        state = self.states.get(cid)
        if state is None or state.lease is None or state.lease.by != by:
            return False
        self.states[cid] = replace(state, state=ARCHIVED, lease=None, car=car)
        return True

    def record_failure(self, cid: str, by: str | None, error: str, failed: bool) -> bool:
        self.step("record_failure")
        state = self.states.get(cid)
        if state is None:
            return False
        mine = state.lease is not None and state.lease.by == by
        if not (mine or (by is None and state.state == ARCHIVING)):
            return False
        self.states[cid] = replace(state, lease=None, last_error=error, state=FAILED if failed else state.state)
        return True

    def orphaned(self, before_ms: int, limit: int) -> list[Orphan]:
        self.step("orphaned")
        found = sorted(
            (state.orphaned_ms, cid)
            for cid, state in self.states.items()
            if state.orphaned_ms is not None and state.orphaned_ms < before_ms
        )
        return [Orphan(cid, orphaned_ms) for orphaned_ms, cid in found[:limit]]

    def start_deleting(self, cid: str, orphaned_ms: int, changes: int) -> bool:
        self.step("start_deleting")
        state = self.states.get(cid)
        if state is None or state.holders or state.orphaned_ms != orphaned_ms or state.changes != changes:
            return False
        self.states[cid] = replace(state, state=DELETING)
        return True

    def forget(self, cid: str) -> bool:
        self.step("forget")
        state = self.states.get(cid)
        if state is None or state.state != DELETING or state.holders:
            return False
        del self.states[cid]
        return True
