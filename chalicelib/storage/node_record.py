"""The registry of Kubo fleet nodes.

All nodes share one partition so placement reads the fleet with one Query
(never a Scan); a fleet is tens of nodes, far below a partition's limits.
"""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute, string_list

FLEET_PARTITION = "fleet"


class NodeRecord(Model):
    class Meta:
        table_name = "nodes"
        billing_mode = "PAY_PER_REQUEST"

    fleet = UnicodeAttribute(hash_key=True, default=FLEET_PARTITION)
    node_id = UnicodeAttribute(range_key=True)
    rpc_url = UnicodeAttribute()
    peer_id = UnicodeAttribute()
    multiaddrs = string_list()
    tags = string_list()
    healthy = BooleanAttribute(default=True)
    free_bytes = IntegerAttribute(null=True)
    checked_ms = IntegerAttribute(null=True)
    registered_ms = IntegerAttribute()
    # Absent on records written before versions: version 0.
    version = IntegerAttribute(null=True)
