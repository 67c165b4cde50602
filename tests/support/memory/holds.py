"""A HoldRepository in dicts, for domain tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.fleet.hold_repository import Added, Cursor, Hold, Holder, Lease, Removed


@dataclass
class _State:
    holders: int = 0
    lease: Lease | None = None


@dataclass
class MemoryHolds:
    holds: set[Hold] = field(default_factory=set)
    states: dict[tuple[str, str], _State] = field(default_factory=dict)

    def _state(self, node_id: str, cid_key: str) -> _State:
        return self.states.setdefault((node_id, cid_key), _State())

    def _releasing(self, state: _State, now_ms: int) -> bool:
        return state.lease is not None and state.lease.active(now_ms)

    def add(self, hold: Hold, now_ms: int) -> Added:
        state = self._state(hold.node_id, hold.cid_key)
        if hold in self.holds:
            return Added.ALREADY_HELD
        if self._releasing(state, now_ms):
            return Added.RELEASING
        self.holds.add(hold)
        state.holders += 1
        return Added.ADDED

    def remove(self, hold: Hold, now_ms: int, lease: Lease | None) -> Removed:
        state = self._state(hold.node_id, hold.cid_key)
        if hold not in self.holds:
            return Removed.NOT_HELD
        if lease is not None:
            if state.holders != 1 or self._releasing(state, now_ms):
                return Removed.NOT_LAST
            state.lease = lease
        self.holds.discard(hold)
        state.holders -= 1
        return Removed.REMOVED

    def lease(self, node_id: str, cid_key: str) -> Lease | None:
        return self._state(node_id, cid_key).lease

    def held(self, hold: Hold) -> bool:
        return hold in self.holds

    def take_lease(self, node_id: str, cid_key: str, lease: Lease, now_ms: int, force: bool) -> bool:
        state = self._state(node_id, cid_key)
        mine = state.lease is not None and state.lease.token == lease.token
        if state.holders > 0 or not (mine or (force and not self._releasing(state, now_ms))):
            return False
        state.lease = lease
        return True

    def end_lease(self, node_id: str, cid_key: str, token: str) -> None:
        state = self._state(node_id, cid_key)
        if state.lease is not None and state.lease.token == token:
            state.lease = None

    def holders_on(self, node_id: str, after: Cursor | None, limit: int) -> tuple[list[Holder], Cursor | None]:
        keyed = sorted(
            ((hold.cid_key, f"{hold.tenant_id}#{hold.request_id}"), hold)
            for hold in self.holds
            if hold.node_id == node_id
        )
        rest = [(key, hold) for key, hold in keyed if after is None or key > after]
        page = rest[:limit]
        holders = [Holder(hold.cid_key, hold.tenant_id, hold.request_id) for _, hold in page]
        return holders, page[-1][0] if len(rest) > limit or (len(rest) == limit and page) else None
