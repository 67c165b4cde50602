"""Who holds a CID on a fleet node.

Kubo keeps one pin per CID per node, shared by every request (of any tenant)
for that CID placed there. Each such request has a holder item; the state
item counts them and carries the release lease that keeps a new holder from
trusting a pin that is being removed.
"""
from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

STATE = "state"


def node_pin_key(node_id: str, cid_key: str) -> str:
    return f"{node_id}#{cid_key}"


def holder_key(tenant_id: str, request_id: str) -> str:
    return f"holder#{tenant_id}#{request_id}"


class NodePin(Model):
    class Meta:
        table_name = "node-pins"
        billing_mode = "PAY_PER_REQUEST"

    node_pin = UnicodeAttribute(hash_key=True)
    # STATE, or holder_key(...) for one holding request.
    entry = UnicodeAttribute(range_key=True)
    holders = NumberAttribute(default=0)
    # While set and not expired, a worker is unpinning: do not trust the pin.
    releasing_by = UnicodeAttribute(null=True)
    releasing_until_ms = NumberAttribute(null=True)
