"""Per-tenant pin counts by status, bucketed by creation time.

A list page must report the exact number of matching pins, `before`/`after`
included, without reading them all. Counts are kept in a tree of time buckets:
a level-k bucket spans 64**k milliseconds and lives in the item of its parent
bucket (level k, parent index) under its slot (index within the parent). The
number of pins created before time t is then the sum of at most 63 sibling
slots on each of the six levels, plus the pins of the last 64 ms read directly:
a cost bound by the tree, not by the tenant's size.
"""
from __future__ import annotations

from typing import List, Tuple

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

FANOUT = 64
LEVELS = 6  # a level-6 bucket spans ~2.2 years; all of them share parent 0
# Times from here on (year 2109) are beyond the tree.
HORIZON_MS = FANOUT ** (LEVELS + 1)


def bucket_key(tenant_id: str, level: int, parent: int) -> str:
    return f"{tenant_id}#{level}#{parent}"


class PinCounter(Model):
    class Meta:
        table_name = "pin-counters"
        billing_mode = "PAY_PER_REQUEST"

    bucket = UnicodeAttribute(hash_key=True)
    slot = NumberAttribute(range_key=True)
    queued = NumberAttribute(default=0)
    pinning = NumberAttribute(default=0)
    pinned = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)


def cells_of(tenant_id: str, created_ms: int) -> List[Tuple[str, int]]:
    """The (bucket, slot) of every level that counts a pin created then."""
    cells = []
    for level in range(1, LEVELS + 1):
        index = created_ms // FANOUT**level
        cells.append((bucket_key(tenant_id, level, index // FANOUT), index % FANOUT))
    return cells


def prefix_cells(tenant_id: str, before_ms: int) -> Tuple[int, List[Tuple[str, int]]]:
    """How to count the pins created before `before_ms`.

    Returns the start of the last partial 64 ms window, whose pins are counted
    directly, and per level the cell holding `before_ms`: the slots below it in
    the same bucket are summed.
    """
    return before_ms - before_ms % FANOUT, cells_of(tenant_id, before_ms)


def top_bucket(tenant_id: str) -> str:
    """The bucket whose slots add up to every pin of the tenant."""
    return bucket_key(tenant_id, LEVELS, 0)
