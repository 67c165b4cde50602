"""A CopyRepository in dicts, for domain tests.

Each operation is atomic, as DynamoDB's are; `step` is called before each
one (with its name), where a test can let another caller run first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from chalicelib.filecoin.repository import CidRecords, CidState, CopyRecord, Due, Want


@dataclass
class MemoryCopies:
    wanted: dict[tuple[str, str, str], Want] = field(default_factory=dict)
    items: dict[tuple[str, str, int], CopyRecord] = field(default_factory=dict)
    states: dict[str, CidState] = field(default_factory=dict)
    spend: dict[str, int] = field(default_factory=dict)
    step: Callable[[str], None] = lambda operation: None

    def want(self, cid: str, want: Want, now_ms: int) -> None:
        self.step("want")
        self.wanted[(cid, want.tenant_id, want.request_id)] = want
        self._due_now(cid, now_ms)

    def unwant(self, cid: str, tenant_id: str, request_id: str, now_ms: int) -> None:
        self.step("unwant")
        self.wanted.pop((cid, tenant_id, request_id), None)
        self._due_now(cid, now_ms)

    def copies(self, cid: str) -> list[CopyRecord]:
        self.step("copies")
        mine = (record for record in self.items.values() if record.cid == cid)
        return sorted(mine, key=lambda record: (record.created_ms, record.key))

    def copy(self, cid: str, provider_id: str, n: int) -> CopyRecord | None:
        self.step("copy")
        return self.items.get((cid, provider_id, n))

    def records(self, cid: str) -> CidRecords:
        self.step("records")
        wants = [want for key, want in sorted(self.wanted.items()) if key[0] == cid]
        mine = (record for record in self.items.values() if record.cid == cid)
        return CidRecords(self.states.get(cid), wants, sorted(mine, key=lambda record: (record.created_ms, record.key)))

    def due(self, before_ms: int, limit: int) -> list[Due]:
        self.step("due")
        found = sorted(
            (state.due_ms, cid)
            for cid, state in self.states.items()
            if state.due_ms is not None and state.due_ms < before_ms
        )
        return [Due(cid, due_ms) for due_ms, cid in found[:limit]]

    def add_copy(self, record: CopyRecord, expected_version: int) -> bool:
        self.step("add_copy")
        key = (record.cid, *record.key)
        state = self.states.get(record.cid) or CidState(record.cid)
        if key in self.items or state.version != expected_version:
            return False
        self.items[key] = replace(record, version=1)
        self.states[record.cid] = replace(state, version=state.version + 1)
        return True

    def save_copy(self, record: CopyRecord) -> bool:
        self.step("save_copy")
        key = (record.cid, *record.key)
        stored = self.items.get(key)
        if stored is None or stored.version != record.version - 1:
            return False
        self.items[key] = record
        return True

    def set_state(self, state: CidState) -> bool:
        self.step("set_state")
        stored = self.states.get(state.cid)
        if (stored.version if stored is not None else 0) != state.version - 1:
            return False
        self.states[state.cid] = state
        return True

    def mark_due(self, cid: str, now_ms: int) -> None:
        self.step("mark_due")
        self._due_now(cid, now_ms)

    def reserve_spend(self, period: str, amount: int, cap: int) -> bool:
        self.step("reserve_spend")
        spent = self.spend.get(period, 0)
        if spent + amount > cap:
            return False
        self.spend[period] = spent + amount
        return True

    def release_spend(self, period: str, amount: int) -> None:
        self.step("release_spend")
        self.spend[period] = self.spend.get(period, 0) - amount

    def spent(self, period: str) -> int:
        self.step("spent")
        return self.spend.get(period, 0)

    def _due_now(self, cid: str, now_ms: int) -> None:
        state = self.states.get(cid) or CidState(cid)
        self.states[cid] = replace(state, version=state.version + 1, due_ms=now_ms)
