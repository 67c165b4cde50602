"""The node-pins table behind chalicelib.fleet.hold_repository.HoldRepository.

Each step is one conditional write or transaction; which condition failed
tells the outcome (DynamoDB lists cancellation reasons in the order of the
transaction's items).
"""

from __future__ import annotations

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition, Or
from pynamodb.expressions.update import Action

from chalicelib.fleet.hold_repository import Added, Cursor, Hold, Holder, Lease, PinState, Removed
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import condition_failed, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.node_pin import HOLDER, STATE, TURN, NodePin, holder_key, node_pin_key, turn_key
from chalicelib.storage.refcounts import Release, release_holder


class DynamoHoldRepository:
    def __init__(self, dynamo: DynamoConnection) -> None:
        self._dynamo = dynamo

    @busy_as_storage_busy()
    def add(self, hold: Hold, now_ms: int) -> Added:
        key = node_pin_key(hold.node_id, hold.cid_key)
        try:
            with self._dynamo.transaction() as tx:
                tx.save(_holder(hold, node_id=hold.node_id), condition=NodePin.entry.does_not_exist())
                tx.update(
                    NodePin(key, STATE),
                    actions=[NodePin.holders.add(1), NodePin.changes.add(1)],
                    condition=_no_release(now_ms),
                )
        except TransactWriteError as error:
            failed = failed_condition(error)
            if failed == 0:
                return Added.ALREADY_HELD
            if failed == 1:
                return Added.RELEASING
            raise
        return Added.ADDED

    @busy_as_storage_busy()
    def state(self, node_id: str, cid_key: str) -> PinState:
        try:
            state = NodePin.get(node_pin_key(node_id, cid_key), STATE, consistent_read=True)
        except NodePin.DoesNotExist:
            return PinState(0, None)
        lease = None if state.releasing_by is None else Lease(state.releasing_by, state.releasing_until_ms or 0)
        return PinState(state.holders or 0, lease)

    @busy_as_storage_busy()
    def remove(self, hold: Hold, holders: int, lease: Lease) -> Removed:
        left = holders - 1
        actions: list[Action] = [NodePin.holders.set(left), NodePin.changes.add(1)]
        if not left:
            actions += [NodePin.releasing_by.set(lease.token), NodePin.releasing_until_ms.set(lease.until_ms)]
        released = release_holder(
            self._dynamo,
            _holder(hold),
            NodePin.entry.exists(),
            NodePin(node_pin_key(hold.node_id, hold.cid_key), STATE),
            actions,
            NodePin.holders == holders,
        )
        if released is Release.NOT_HELD:
            return Removed.NOT_HELD
        if released is Release.RECOUNT:  # another holder's transaction changed the count, or was changing it
            return Removed.RECOUNT
        return Removed.REMOVED if left else Removed.LAST

    @busy_as_storage_busy()
    def held(self, hold: Hold) -> bool:
        try:
            NodePin.get(
                node_pin_key(hold.node_id, hold.cid_key),
                holder_key(hold.tenant_id, hold.request_id),
                consistent_read=True,
            )
        except NodePin.DoesNotExist:
            return False
        return True

    @busy_as_storage_busy()
    def take_lease(self, node_id: str, cid_key: str, lease: Lease, now_ms: int, force: bool) -> bool:
        mine = NodePin.releasing_by == lease.token
        owner = (mine | _no_release(now_ms)) if force else mine
        return _update(
            NodePin(node_pin_key(node_id, cid_key), STATE),
            [NodePin.releasing_by.set(lease.token), NodePin.releasing_until_ms.set(lease.until_ms)],
            (NodePin.holders.does_not_exist() | (NodePin.holders <= 0)) & owner,
        )

    @busy_as_storage_busy()
    def end_lease(self, node_id: str, cid_key: str, token: str) -> None:
        _update(
            NodePin(node_pin_key(node_id, cid_key), STATE),
            [NodePin.releasing_by.remove(), NodePin.releasing_until_ms.remove()],
            NodePin.releasing_by == token,
        )

    @busy_as_storage_busy()
    def holders_on(self, node_id: str, after: Cursor | None, limit: int) -> tuple[list[Holder], Cursor | None]:
        # One Query of at most `limit` keys on the node index.
        start = None
        if after is not None:
            start = {"node_id": {"S": node_id}, "node_pin": {"S": after[0]}, "entry": {"S": after[1]}}
        page = NodePin.by_node.query(node_id, limit=limit, page_size=limit, last_evaluated_key=start)
        items = list(page)
        holders = []
        for item in items:
            tenant_id, request_id = item.entry[len(HOLDER) :].rsplit("#", 1)
            holders.append(Holder(item.node_pin[len(node_id) + 1 :], tenant_id, request_id))
        more = page.last_evaluated_key is not None and len(items) == limit
        return holders, (items[-1].node_pin, items[-1].entry) if more and items else None

    @busy_as_storage_busy()
    def take_turn(self, tenant_id: str, request_id: str, turn: int, owner: str) -> bool:
        return _update(
            NodePin(turn_key(tenant_id, request_id), TURN),
            [NodePin.turn.set(turn), NodePin.turn_owner.set(owner)],
            NodePin.turn.does_not_exist()
            | (NodePin.turn < turn)
            | ((NodePin.turn == turn) & (NodePin.turn_owner == owner)),
        )

    @busy_as_storage_busy()
    def end_turns(self, tenant_id: str, request_id: str) -> None:
        NodePin(turn_key(tenant_id, request_id), TURN).delete()


def _holder(hold: Hold, node_id: str | None = None) -> NodePin:
    """The hold's item; `node_id` (for the node index) only when writing it."""
    return NodePin(
        node_pin_key(hold.node_id, hold.cid_key), holder_key(hold.tenant_id, hold.request_id), node_id=node_id
    )


def _no_release(now_ms: int) -> Condition:
    """No lease, or one that expired before `now_ms` (Lease.active's complement)."""
    return Or(NodePin.releasing_by.does_not_exist(), NodePin.releasing_until_ms < now_ms)


def _update(item: NodePin, actions: list[Action], condition: Condition) -> bool:
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True
