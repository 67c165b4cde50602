"""A HoldRepository in dicts, for domain tests.

Each operation is atomic, as DynamoDB's are; `step` is called before each
one (with its name), where a test can let another caller run first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.fleet.hold_repository import Added, Cursor, Hold, Holder, Lease, PinState, Removed
from chalicelib.fleet.reconcile_repository import Sighting


@dataclass
class _State:
    holders: int = 0
    lease: Lease | None = None
    # Holds added and removed (and counts corrected); the reconciler's sighting.
    changes: int = 0
    unheld: Sighting | None = None


@dataclass
class MemoryHolds:
    holds: set[Hold] = field(default_factory=set)
    states: dict[tuple[str, str], _State] = field(default_factory=dict)
    # Each request's (turn, the message that carries it).
    turns: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    step: Callable[[str], None] = lambda operation: None

    def _state(self, node_id: str, cid_key: str) -> _State:
        return self.states.setdefault((node_id, cid_key), _State())

    def _releasing(self, state: _State, now_ms: int) -> bool:
        return state.lease is not None and state.lease.active(now_ms)

    def add(self, hold: Hold, now_ms: int) -> Added:
        self.step("add")
        state = self._state(hold.node_id, hold.cid_key)
        if hold in self.holds:
            return Added.ALREADY_HELD
        if self._releasing(state, now_ms):
            return Added.RELEASING
        self.holds.add(hold)
        state.holders += 1
        state.changes += 1
        return Added.ADDED

    def state(self, node_id: str, cid_key: str) -> PinState:
        self.step("state")
        state = self._state(node_id, cid_key)
        return PinState(state.holders, state.lease)

    def remove(self, hold: Hold, holders: int, lease: Lease) -> Removed:
        self.step("remove")
        state = self._state(hold.node_id, hold.cid_key)
        if hold not in self.holds:
            return Removed.NOT_HELD
        if state.holders != holders:
            return Removed.RECOUNT
        self.holds.discard(hold)
        state.holders -= 1
        state.changes += 1
        if state.holders:
            return Removed.REMOVED
        state.lease = lease
        return Removed.LAST

    def held(self, hold: Hold) -> bool:
        self.step("held")
        return hold in self.holds

    def take_lease(self, node_id: str, cid_key: str, lease: Lease, now_ms: int, force: bool) -> bool:
        self.step("take_lease")
        state = self._state(node_id, cid_key)
        mine = state.lease is not None and state.lease.token == lease.token
        if state.holders > 0 or not (mine or (force and not self._releasing(state, now_ms))):
            return False
        state.lease = lease
        return True

    def end_lease(self, node_id: str, cid_key: str, token: str) -> None:
        self.step("end_lease")
        state = self._state(node_id, cid_key)
        if state.lease is not None and state.lease.token == token:
            state.lease = None

    def holders_on(self, node_id: str, after: Cursor | None, limit: int) -> tuple[list[Holder], Cursor | None]:
        self.step("holders_on")
        keyed = sorted(
            ((hold.cid_key, f"{hold.tenant_id}#{hold.request_id}"), hold)
            for hold in self.holds
            if hold.node_id == node_id
        )
        rest = [(key, hold) for key, hold in keyed if after is None or key > after]
        page = rest[:limit]
        holders = [Holder(hold.cid_key, hold.tenant_id, hold.request_id) for _, hold in page]
        return holders, page[-1][0] if len(rest) > limit or (len(rest) == limit and page) else None

    def take_turn(self, tenant_id: str, request_id: str, turn: int, owner: str) -> bool:
        self.step("take_turn")
        stored = self.turns.get((tenant_id, request_id))
        if stored is not None and (stored[0] > turn or (stored[0] == turn and stored[1] != owner)):
            return False
        self.turns[(tenant_id, request_id)] = (turn, owner)
        return True

    def end_turns(self, tenant_id: str, request_id: str) -> None:
        self.step("end_turns")
        self.turns.pop((tenant_id, request_id), None)
