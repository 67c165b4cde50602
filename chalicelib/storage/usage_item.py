"""Usage items in the pins table (usage_keys says which is where): a bytes
change, a month's folded totals of one shard, a month's request counts, a
tenant's plan, a CID's holds and the operator's months of unique bytes.

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

    # A bytes change: how many bytes pinned, archived (cold) and in Filecoin, when (ms);
    # and when the write starts or ends the request's hold of its CID: the CID, +1/-1, its bytes.
    delta = IntegerAttribute(null=True, attr_name="db")
    cold_delta = IntegerAttribute(null=True, attr_name="dc")
    filecoin_delta = IntegerAttribute(null=True, attr_name="df")
    at_ms = IntegerAttribute(null=True, attr_name="at")
    cid = UnicodeAttribute(null=True, attr_name="cid")
    hold = IntegerAttribute(null=True, attr_name="dh")
    size = IntegerAttribute(null=True, attr_name="sz")

    # A month of one shard: net bytes and byte-milliseconds to the month's end.
    net = IntegerAttribute(null=True, attr_name="nb")
    byte_ms = IntegerAttribute(null=True, attr_name="bms")
    cold_net = IntegerAttribute(null=True, attr_name="nc")
    cold_byte_ms = IntegerAttribute(null=True, attr_name="cms")
    filecoin_net = IntegerAttribute(null=True, attr_name="nf")
    filecoin_byte_ms = IntegerAttribute(null=True, attr_name="fms")

    # A CID's holds (chalicelib.usage.unique.CidHold; `size` as above).
    refs = IntegerAttribute(null=True, attr_name="rc")
    since = IntegerAttribute(null=True, attr_name="hs")
    until = IntegerAttribute(null=True, attr_name="hu")
    version = IntegerAttribute(null=True, attr_name="v")

    # A month's API requests by class and retrieval egress (chalicelib.usage.requests).
    reads = IntegerAttribute(null=True, attr_name="rr")
    writes = IntegerAttribute(null=True, attr_name="rw")
    retrieves = IntegerAttribute(null=True, attr_name="rt")
    egress = IntegerAttribute(null=True, attr_name="eg")

    # A tenant's plan (None: the stage's default) and quota overrides (JSON).
    plan = UnicodeAttribute(null=True)
    overrides = UnicodeAttribute(null=True)
