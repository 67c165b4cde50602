"""The invocation slots each tenant's messages hold (chalicelib.worker.invocation_slots).

One item per slot taken, keyed by the tenant and the slot's number (at most
TENANT_INVOCATIONS a tenant): a take is one conditional UpdateItem, which
creates the item if need be (a map of slots in one item could not be: a key
of a map that does not exist yet cannot be set), and the tenant's slots are
one strongly consistent Query of a few small items.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute


class TenantSlot(Model):
    class Meta:
        table_name = "tenant-slots"
        billing_mode = "PAY_PER_REQUEST"

    tenant_id = UnicodeAttribute(hash_key=True)
    slot = IntegerAttribute(range_key=True)
    # When the lease ends (epoch ms): the invocation's deadline. Absent: free.
    until_ms = IntegerAttribute(null=True)
