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
    ArchiveHold,
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
    # The holders due to cool, and when.
    cools: dict[ArchiveHolder, int] = field(default_factory=dict)
    step: Callable[[str], None] = lambda operation: None

    def hold(self, holder: ArchiveHolder, cools_at_ms: int | None = None) -> Held:
        self.step("hold")
        state = self.states.get(holder.cid) or ArchiveState(holder.cid, ARCHIVING, 0, 0)
        if holder in self.holders:
            return Held.ALREADY_HELD
        if state.state == DELETING:
            return Held.DELETING
        self.holders.add(holder)
        if cools_at_ms is not None:
            self.cools[holder] = cools_at_ms
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
        self.cools.pop(holder, None)
        left = holders - 1
        self.states[holder.cid] = replace(
            state, holders=left, changes=state.changes + 1, orphaned_ms=state.orphaned_ms if left else now_ms
        )
        return Left.REMOVED if left else Left.LAST

    def hold_of(self, holder: ArchiveHolder) -> ArchiveHold | None:
        self.step("hold_of")
        return ArchiveHold(holder, self.cools.get(holder)) if holder in self.holders else None

    def holds_of(self, cid: str, tenant_id: str) -> list[ArchiveHold]:
        self.step("holds_of")
        mine = (holder for holder in self.holders if (holder.cid, holder.tenant_id) == (cid, tenant_id))
        return [ArchiveHold(holder, self.cools.get(holder)) for holder in sorted(mine, key=lambda h: h.request_id)]

    def due_to_cool(self, before_ms: int, limit: int) -> list[ArchiveHold]:
        self.step("due_to_cool")
        due = sorted((at, holder.cid, holder.request_id, holder) for holder, at in self.cools.items() if at < before_ms)
        return [ArchiveHold(holder, at) for at, _, _, holder in due[:limit]]

    def set_cooling(self, holder: ArchiveHolder, expected_ms: int | None, cools_at_ms: int | None) -> bool:
        self.step("set_cooling")
        if holder not in self.holders or self.cools.get(holder) != expected_ms:
            return False
        if cools_at_ms is None:
            self.cools.pop(holder, None)
        else:
            self.cools[holder] = cools_at_ms
        return True

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
