"""Who holds a CID on a fleet node.

Kubo keeps one pin per CID per node, shared by every request (of any tenant)
for that CID placed there. Each such request has a holder item; the state
item counts them and carries the release lease that keeps a new holder from
trusting a pin that is being removed. Holder items also carry their node in
`node_id`, which keys a sparse global index: the holders of one node, read
page by page when the node leaves the fleet.
"""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute

STATE = "state"
_HOLDER = "holder#"


def node_pin_key(node_id: str, cid_key: str) -> str:
    return f"{node_id}#{cid_key}"


def holder_key(tenant_id: str, request_id: str) -> str:
    return f"{_HOLDER}{tenant_id}#{request_id}"


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
    # STATE, or holder_key(...) for one holding request.
    entry = UnicodeAttribute(range_key=True)
    # Holder items only: the node, for `by_node`.
    node_id = UnicodeAttribute(null=True)
    holders = IntegerAttribute(default=0)
    # While set and not expired, a worker is unpinning: do not trust the pin.
    releasing_by = UnicodeAttribute(null=True)
    releasing_until_ms = IntegerAttribute(null=True)

    by_node = NodeHoldersIndex()


@dataclass(frozen=True)
class Holder:
    """One request holding `cid_key` on a node."""

    cid_key: str
    tenant_id: str
    request_id: str


# Where a page of a node's holders ends: (node_pin, entry) of its last item.
Cursor = tuple[str, str]


def holders_on(node_id: str, after: Cursor | None, limit: int) -> tuple[list[Holder], Cursor | None]:
    """Up to `limit` holders on `node_id` after `after`, and the cursor of the
    next page (None at the end). One Query of at most `limit` keys."""
    start = None
    if after is not None:
        start = {"node_id": {"S": node_id}, "node_pin": {"S": after[0]}, "entry": {"S": after[1]}}
    page = NodePin.by_node.query(node_id, limit=limit, page_size=limit, last_evaluated_key=start)
    items = list(page)
    holders = []
    for item in items:
        tenant_id, request_id = item.entry[len(_HOLDER) :].rsplit("#", 1)
        holders.append(Holder(item.node_pin[len(node_id) + 1 :], tenant_id, request_id))
    more = page.last_evaluated_key is not None and len(items) == limit
    return holders, (items[-1].node_pin, items[-1].entry) if more and items else None
