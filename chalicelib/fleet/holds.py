"""Reference counting of Kubo pins shared by requests on one node.

A request takes a hold on (node, CID) before pinning there and gives it up
when it is deleted, replaced or failed; the pin is removed from the node only
by whoever gives up the last hold, under a lease that tells new holders not
to trust the pin until the removal is over.
"""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition, Or
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.pins.timestamps import now_ms
from chalicelib.storage.cancellations import cancellation_codes
from chalicelib.storage.node_pin import STATE, NodePin, holder_key, node_pin_key


class PinHolds:
    def __init__(self, lease_seconds: int, clock: Callable[[], int] = now_ms) -> None:
        self._lease_ms = lease_seconds * 1000
        self._clock = clock

    def hold(self, node_id: str, cid_key: str, tenant_id: str, request_id: str) -> bool:
        """Take the request's hold. False while the pin is being removed:
        the caller must come back later (a hold is then not taken)."""
        key = node_pin_key(node_id, cid_key)
        now = self._clock()
        try:
            with TransactWrite(connection=NodePin._get_connection().connection) as tx:
                tx.save(
                    NodePin(key, holder_key(tenant_id, request_id), node_id=node_id),
                    condition=NodePin.entry.does_not_exist(),
                )
                tx.update(NodePin(key, STATE), actions=[NodePin.holders.add(1)], condition=_no_release(now))
            return True
        except TransactWriteError as error:
            codes = cancellation_codes(error)
            if codes[:1] == ["ConditionalCheckFailed"]:
                # Already a holder (a repeated message): only the lease matters.
                state = NodePin.get(key, STATE, consistent_read=True)
                return not (state.releasing_by and (state.releasing_until_ms or 0) > now)
            if codes[1:2] == ["ConditionalCheckFailed"]:
                return False
            raise

    def holding(self, node_id: str, cid_key: str, tenant_id: str, request_id: str) -> bool:
        """Whether the request holds `cid_key` on the node now."""
        try:
            NodePin.get(node_pin_key(node_id, cid_key), holder_key(tenant_id, request_id), consistent_read=True)
        except NodePin.DoesNotExist:
            return False
        return True

    def release(
        self, node_id: str, cid_key: str, tenant_id: str, request_id: str, token: str, force: bool = False
    ) -> bool:
        """Give up the request's hold. True when no hold is left and the
        caller now owns the removal: unpin, then call `released`. A repeat
        with the same token (a retried message) owns it again while its
        removal is unfinished; any other repeat owns nothing. `force` also
        takes the removal when the request held nothing (a pin made on Kubo
        after its request was gone)."""
        key = node_pin_key(node_id, cid_key)
        now = self._clock()
        lease: list[Action] = [NodePin.releasing_by.set(token), NodePin.releasing_until_ms.set(now + self._lease_ms)]
        connection = NodePin._get_connection().connection
        try:
            # The last holder takes the removal in the same transaction.
            with TransactWrite(connection=connection) as tx:
                tx.delete(NodePin(key, holder_key(tenant_id, request_id)), condition=NodePin.entry.exists())
                tx.update(
                    NodePin(key, STATE),
                    actions=[NodePin.holders.add(-1), *lease],
                    condition=(NodePin.holders == 1) & _no_release(now),
                )
            return True
        except TransactWriteError as error:
            codes = cancellation_codes(error)
            if codes[:1] == ["ConditionalCheckFailed"]:
                return self._resume(key, token, now, lease, force)
            if codes[1:2] != ["ConditionalCheckFailed"]:
                raise
        try:
            with TransactWrite(connection=connection) as tx:
                tx.delete(NodePin(key, holder_key(tenant_id, request_id)), condition=NodePin.entry.exists())
                tx.update(NodePin(key, STATE), actions=[NodePin.holders.add(-1)])
        except TransactWriteError as error:
            codes = cancellation_codes(error)
            if codes[:1] != ["ConditionalCheckFailed"]:
                raise
            return self._resume(key, token, now, lease, force)
        return False

    def _resume(self, key: str, token: str, now: int, lease: list[Action], force: bool) -> bool:
        """Not a holder (any more): own the removal only if it is ours and unfinished, or forced."""
        mine = NodePin.releasing_by == token
        owner = (mine | _no_release(now)) if force else mine
        try:
            NodePin(key, STATE).update(
                actions=lease,
                condition=(NodePin.holders.does_not_exist() | (NodePin.holders <= 0)) & owner,
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def drop(self, node_id: str, cid_key: str, tenant_id: str, request_id: str, token: str) -> None:
        """Give up the request's hold on a node that left the fleet: its pins
        went with it, so there is nothing to unpin (and no RPC to call)."""
        if self.release(node_id, cid_key, tenant_id, request_id, token, force=True):
            self.released(node_id, cid_key, token)

    def released(self, node_id: str, cid_key: str, token: str) -> None:
        """The pin is gone from the node: end the lease."""
        try:
            NodePin(node_pin_key(node_id, cid_key), STATE).update(
                actions=[NodePin.releasing_by.remove(), NodePin.releasing_until_ms.remove()],
                condition=NodePin.releasing_by == token,
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise


def _no_release(now: int) -> Condition:
    return Or(NodePin.releasing_by.does_not_exist(), NodePin.releasing_until_ms < now)
