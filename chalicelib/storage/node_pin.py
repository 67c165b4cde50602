"""Who holds a CID on a fleet node.

Kubo keeps one pin per CID per node, shared by every request (of any tenant)
for that CID placed there. Each such request has a holder item; the state
item counts them and carries the release lease that keeps a new holder from
trusting a pin that is being removed. Holder items also carry their node in
`node_id`, which keys a sparse global index: the holders of one node, read
page by page when the node leaves the fleet.

Apart from the pins, one item per continued request records the turn of its
pin work and the message that carries it (PinWorker drops the continuations
of a turn another message took), and one item per node records where the
fleet reconciler's pass over it is (storage.reconcile_repository).
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute

STATE = "state"
HOLDER = "holder#"
TURN = "turn"
RECONCILE = "reconcile"


def node_pin_key(node_id: str, cid_key: str) -> str:
    return f"{node_id}#{cid_key}"


def holder_key(tenant_id: str, request_id: str) -> str:
    return f"{HOLDER}{tenant_id}#{request_id}"


def turn_key(tenant_id: str, request_id: str) -> str:
    # Its entry, TURN, is no pin's (STATE or a holder's), whatever the key.
    return f"turns#{tenant_id}#{request_id}"


def reconcile_key(node_id: str) -> str:
    # Its entry, RECONCILE, is no pin's or turn's, whatever the key.
    return f"reconcile#{node_id}"


class NodeHoldersIndex(GlobalSecondaryIndex["NodePin"]):
    """Holder items by node (state items have no `node_id`, so are not in it)."""

    class Meta:
        index_name = "node-holders"
        projection = KeysOnlyProjection()

    node_id = UnicodeAttribute(hash_key=True)
    node_pin = UnicodeAttribute(range_key=True)


class NodePin(Model):
    class Meta:
        table_name = "node-pins"
        billing_mode = "PAY_PER_REQUEST"

    node_pin = UnicodeAttribute(hash_key=True)
    # STATE, or holder_key(...) for one holding request; TURN under a turn_key.
    entry = UnicodeAttribute(range_key=True)
    # Holder items only: the node, for `by_node`.
    node_id = UnicodeAttribute(null=True)
    holders = IntegerAttribute(default=0)
    # While set and not expired, a worker is unpinning: do not trust the pin.
    releasing_by = UnicodeAttribute(null=True)
    releasing_until_ms = IntegerAttribute(null=True)
    # State items: holds added and removed (and counts corrected) so far; the
    # reconciler's writes are conditioned on it. Absent means none.
    changes = IntegerAttribute(null=True)
    # State items: first seen on the node with no hold, at that many changes.
    # Holder items: first seen with no live request behind them (an orphan).
    unheld_since_ms = IntegerAttribute(null=True)
    unheld_changes = IntegerAttribute(null=True)
    # TURN items only: the request's turn and the message (id) carrying it.
    turn = IntegerAttribute(null=True)
    turn_owner = UnicodeAttribute(null=True)
    # RECONCILE items only: the node's pass (fleet.reconcile_repository.ReconcileCursor).
    held_after_pin = UnicodeAttribute(null=True)
    held_after_entry = UnicodeAttribute(null=True)
    listed = IntegerAttribute(null=True)
    # A line "cid_key tenant_id request_id" for each holder whose repair is unfinished.
    repairs = UnicodeAttribute(null=True)

    by_node = NodeHoldersIndex()
