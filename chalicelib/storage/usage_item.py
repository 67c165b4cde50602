"""Usage items in the pins table (usage_keys says which is where): a bytes
change, a month's folded totals of one shard, a month's request counts, a
tenant's plan.

A model of its own on the pins table, bound with PinItem's table name
(tables.bind_models): the pins' model stays as it is.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute


class UsageItem(Model):
    class Meta:
        table_name = "pins"
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    # A bytes change: how many bytes pinned and archived (cold), when (ms).
    delta = IntegerAttribute(null=True, attr_name="db")
    cold_delta = IntegerAttribute(null=True, attr_name="dc")
    at_ms = IntegerAttribute(null=True, attr_name="at")

    # A month of one shard: net bytes and byte-milliseconds to the month's end.
    net = IntegerAttribute(null=True, attr_name="nb")
    byte_ms = IntegerAttribute(null=True, attr_name="bms")
    cold_net = IntegerAttribute(null=True, attr_name="nc")
    cold_byte_ms = IntegerAttribute(null=True, attr_name="cms")

    # A month's API requests by class and retrieval egress (chalicelib.usage.requests).
    reads = IntegerAttribute(null=True, attr_name="rr")
    writes = IntegerAttribute(null=True, attr_name="rw")
    retrieves = IntegerAttribute(null=True, attr_name="rt")
    egress = IntegerAttribute(null=True, attr_name="eg")

    # A tenant's plan (None: the stage's default) and quota overrides (JSON).
    plan = UnicodeAttribute(null=True)
    overrides = UnicodeAttribute(null=True)
