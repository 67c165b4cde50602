"""Where usage lives in the pins table.

A write that changes its tenant's bytes pinned records the change in the
pin's shard, beside the count change of the same write (pin_keys), an item
of the pin's own, so no two pins' writes share it:

    u#~<created>#<request>#<version>    a bytes change (its bytes and when)

The usage folder moves them into the tenant's usage partition, one item per
month and shard (shards fold apart, so their folders never meet):

    <tenant>#usage  m#<YYYY-MM>#<shard>  the month's net bytes and byte-ms
    <tenant>#usage  r#<YYYY-MM>          the month's API requests by class and egress
    <tenant>#usage  plan                 the tenant's plan and quota overrides

and, for the operator (chalicelib.usage.unique; tenant ids hold no `#`, so
no tenant's partition starts with one):

    #cid#<cid>       hold                the CID's holds (refcount, bytes, period)
    #operator#usage  m#<YYYY-MM>#<n>     unique bytes of the month, n: the CID's operator shard

"u#" sorts apart from every prefix of pin_keys: no pin list or count reads it.
"""

from __future__ import annotations

from chalicelib.storage.pin_keys import change_id

USAGE_CHANGES = "u#~"
MONTHS = "m#"
COUNTS = "r#"
PLAN_SORT_KEY = "plan"
HOLD_SORT_KEY = "hold"
OPERATOR_PARTITION = "#operator#usage"


def usage_change_key(created_ms: int, request_id: str, version: int) -> str:
    return USAGE_CHANGES + change_id(created_ms, request_id, version)


def usage_partition(tenant_id: str) -> str:
    return f"{tenant_id}#usage"


def month_key(month: str, shard: str) -> str:
    """A month's item of one shard (its partition key's shard number)."""
    return f"{MONTHS}{month}#{shard.rpartition('#')[2]}"


def month_of_key(sort_key: str) -> str:
    return sort_key[len(MONTHS) :].partition("#")[0]


def counts_key(month: str) -> str:
    """A month's request counts (chalicelib.usage.requests): ADDed by every container."""
    return f"{COUNTS}{month}"


def hold_partition(cid: str) -> str:
    return f"#cid#{cid}"
