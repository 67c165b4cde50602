"""The node-pins table behind chalicelib.fleet.reconcile_repository.ReconcileRepository.

A pin's tally is two strongly consistent reads of its partition (the state
item, then a count of its holder items); each write is one conditional
update of the state item on its `changes` (absent: none yet), so a hold added
or removed between the reads and the write fails it.

An orphaned hold is noted on its holder item, in `unheld_since_ms` (on a
state item: since when no hold covers the pin; on a holder item: since when
its request is gone or failed). Deleting the item with its hold deletes the
note, so a hold given up and taken again is noted anew.
"""

from __future__ import annotations

from collections.abc import Sequence

from pynamodb.expressions.condition import Condition, Or

from chalicelib.fleet.hold_repository import Holder, Lease
from chalicelib.fleet.reconcile_repository import ReconcileCursor, Sighting, Tally
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.hold_repository import _no_release, _update
from chalicelib.storage.node_pin import HOLDER, RECONCILE, STATE, NodePin, holder_key, node_pin_key, reconcile_key


class DynamoReconcileRepository:
    @busy_as_storage_busy()
    def tally(self, node_id: str, cid_key: str) -> Tally:
        key = node_pin_key(node_id, cid_key)
        try:
            state: NodePin | None = NodePin.get(key, STATE, consistent_read=True)
        except NodePin.DoesNotExist:
            state = None
        # Counted after the state is read: see the module's docstring.
        held_by = NodePin.count(key, NodePin.entry.startswith(HOLDER), consistent_read=True)
        if state is None:
            return Tally(0, held_by, 0, None, None)
        lease = None if state.releasing_by is None else Lease(state.releasing_by, state.releasing_until_ms or 0)
        unheld = None
        if state.unheld_since_ms is not None:
            unheld = Sighting(state.unheld_since_ms, state.unheld_changes or 0)
        return Tally(state.holders or 0, held_by, state.changes or 0, lease, unheld)

    @busy_as_storage_busy()
    def recount(self, node_id: str, cid_key: str, tally: Tally) -> bool:
        return _update(
            NodePin(node_pin_key(node_id, cid_key), STATE),
            [NodePin.holders.set(tally.held_by), NodePin.changes.set(tally.changes + 1)],
            _at(tally.changes),
        )

    @busy_as_storage_busy()
    def sight(self, node_id: str, cid_key: str, tally: Tally, now_ms: int) -> bool:
        return _update(
            NodePin(node_pin_key(node_id, cid_key), STATE),
            [NodePin.unheld_since_ms.set(now_ms), NodePin.unheld_changes.set(tally.changes)],
            _at(tally.changes),
        )

    @busy_as_storage_busy()
    def take_unheld(self, node_id: str, cid_key: str, sighting: Sighting, lease: Lease, now_ms: int) -> bool:
        return _update(
            NodePin(node_pin_key(node_id, cid_key), STATE),
            [
                NodePin.releasing_by.set(lease.token),
                NodePin.releasing_until_ms.set(lease.until_ms),
                NodePin.unheld_since_ms.remove(),
                NodePin.unheld_changes.remove(),
            ],
            _at(sighting.changes)
            & (NodePin.unheld_since_ms == sighting.since_ms)
            & (NodePin.unheld_changes == sighting.changes)
            & (NodePin.holders.does_not_exist() | (NodePin.holders <= 0))
            & _no_release(now_ms),
        )

    @busy_as_storage_busy()
    def orphans(self, node_id: str, holders: Sequence[Holder]) -> dict[Holder, int]:
        # One BatchGetItem per 100 holders (PynamoDB splits and retries what is unprocessed).
        by_key = {(node_pin_key(node_id, h.cid_key), holder_key(h.tenant_id, h.request_id)): h for h in holders}
        items = NodePin.batch_get(
            list(by_key),
            consistent_read=True,
            attributes_to_get=["node_pin", "entry", "unheld_since_ms"],
        )
        return {
            by_key[(item.node_pin, item.entry)]: item.unheld_since_ms
            for item in items
            if item.unheld_since_ms is not None
        }

    @busy_as_storage_busy()
    def note_orphan(self, node_id: str, holder: Holder, now_ms: int) -> bool:
        # Conditioned on the item: an update would otherwise make a holder item no count knows.
        return _update(
            _holder_item(node_id, holder),
            [NodePin.unheld_since_ms.set(now_ms)],
            NodePin.entry.exists() & NodePin.unheld_since_ms.does_not_exist(),
        )

    @busy_as_storage_busy()
    def forget_orphan(self, node_id: str, holder: Holder) -> None:
        _update(_holder_item(node_id, holder), [NodePin.unheld_since_ms.remove()], NodePin.entry.exists())

    @busy_as_storage_busy()
    def cursor(self, node_id: str) -> ReconcileCursor:
        try:
            item = NodePin.get(reconcile_key(node_id), RECONCILE, consistent_read=True)
        except NodePin.DoesNotExist:
            return ReconcileCursor()
        held_after = None
        if item.held_after_pin is not None and item.held_after_entry is not None:
            held_after = (item.held_after_pin, item.held_after_entry)
        repairs = tuple(Holder(*line.split(" ")) for line in (item.repairs or "").splitlines())
        return ReconcileCursor(held_after, item.listed or 0, repairs)

    @busy_as_storage_busy()
    def save_cursor(self, node_id: str, cursor: ReconcileCursor) -> None:
        after_pin, after_entry = cursor.held_after or (None, None)
        repairs = "\n".join(f"{h.cid_key} {h.tenant_id} {h.request_id}" for h in cursor.repairs)
        NodePin(
            reconcile_key(node_id),
            RECONCILE,
            held_after_pin=after_pin,
            held_after_entry=after_entry,
            listed=cursor.listed,
            repairs=repairs or None,
        ).save()


def _holder_item(node_id: str, holder: Holder) -> NodePin:
    return NodePin(node_pin_key(node_id, holder.cid_key), holder_key(holder.tenant_id, holder.request_id))


def _at(changes: int) -> Condition:
    """The pin's changes are still `changes` (none stored counts as 0)."""
    if changes == 0:
        return Or(NodePin.changes.does_not_exist(), NodePin.changes == 0)
    return NodePin.changes == changes
