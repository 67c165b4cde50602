"""Per-tenant pin counts by status, bucketed by creation time.

A list page must report the exact number of matching pins, `before`/`after`
included, without reading them all. Counts are kept in a tree of time buckets:
a level-k slot spans 64**k milliseconds and belongs to the bucket of its
parent (level k, parent index), one DynamoDB item per bucket. The item holds,
per slot and status, a number attribute named by the status code and the slot
(`p17`: pinned pins of slot 17; codes in STATUS_CODES). The first ADD that
touches a slot creates its attribute, so a sparse bucket stays small.

The number of pins created before time t is the sum of the slots below t's on
each of the six levels, read as six items in one BatchGetItem, plus the pins
of the last 64 ms read directly: a cost bound by the tree, not by the tenant's
size.

Item size: at most 64 slots x 4 statuses = 256 attributes of 2-3 bytes of
name and a count of at most 64**k (one pin per millisecond), i.e. at most 7
bytes at level 6. The worst item, at level 6, is ~2.6 KB (tests/storage check
the bound): one strongly consistent read unit (4 KB) whatever the tenant. A
write unit is 1 KB, so updating a dense bucket costs up to 3 of them (6 in a
transaction) where a sparse one costs 1.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from pynamodb.attributes import UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.models import Model

from chalicelib.busy import StorageBusy

FANOUT = 64
LEVELS = 6  # a level-6 slot spans ~2.2 years; all of them share parent 0
# Times from here on (year 2109) are beyond the tree.
HORIZON_MS = FANOUT ** (LEVELS + 1)
STATUS_CODES = {"queued": "q", "pinning": "g", "pinned": "p", "failed": "f"}
# Rounds of BatchGetItem for the keys DynamoDB leaves unprocessed when throttled.
READ_ROUNDS = 8

Cell = tuple[str, int]  # (bucket, slot)
BucketCounts = Mapping[str, int]  # a bucket's counts by attribute name


class PinCounter(Model):
    """A bucket's key; its counts are attributes named by `count_name`, which
    PynamoDB's models cannot declare, so they are read and written raw."""

    class Meta:
        table_name = "pin-counters"
        billing_mode = "PAY_PER_REQUEST"

    bucket = UnicodeAttribute(hash_key=True)


def bucket_key(tenant_id: str, level: int, parent: int) -> str:
    return f"{tenant_id}#{level}#{parent}"


def count_name(status: str, slot: int) -> str:
    """The attribute counting the pins of `status` in `slot`."""
    return f"{STATUS_CODES[status]}{slot}"


def cells_of(tenant_id: str, created_ms: int) -> list[Cell]:
    """The (bucket, slot) of every level that counts a pin created then,
    from level 1 up."""
    cells = []
    for level in range(1, LEVELS + 1):
        index = created_ms // FANOUT**level
        cells.append((bucket_key(tenant_id, level, index // FANOUT), index % FANOUT))
    return cells


def prefix_cells(tenant_id: str, before_ms: int) -> list[Cell]:
    """Cells whose lower slots add up to the pins created before `before_ms`,
    but for those of the level-1 cell holding it (one cell per level, level 1
    first). None before time 0; beyond the tree, every slot of the top bucket.
    """
    if before_ms <= 0:
        return []
    if before_ms >= HORIZON_MS:
        return [(bucket_key(tenant_id, LEVELS, 0), FANOUT)]
    return cells_of(tenant_id, before_ms)


def slot_count(counts: BucketCounts, slots: Iterable[int], statuses: Collection[str]) -> int:
    """Pins of `statuses` in these slots of one bucket."""
    return sum(counts.get(count_name(status, slot), 0) for slot in slots for status in statuses)


def read_buckets(
    connection: Connection, keys: Collection[str], sleep: Callable[[float], None] = time.sleep
) -> dict[str, BucketCounts]:
    """The counts of each bucket, strongly consistent, in one BatchGetItem
    (and more only for keys DynamoDB leaves unprocessed). A bucket never
    written has no item and counts nothing. Raises StorageBusy when DynamoDB
    (throttled) keeps leaving keys unprocessed.

    At most 100 keys (BatchGetItem's limit); a count needs 12.
    """
    table = PinCounter.Meta.table_name
    found: dict[str, BucketCounts] = {key: {} for key in keys}
    pending = [{"bucket": {"S": key}} for key in found]
    for attempt in range(READ_ROUNDS):
        # Key maps, as Model.batch_get passes too; PynamoDB annotates them as str.
        response = connection.batch_get_item(table, pending, consistent_read=True)  # type: ignore[arg-type]
        for item in response.get("Responses", {}).get(table, []):
            key = item.pop("bucket")["S"]
            found[key] = {name: int(value["N"]) for name, value in item.items()}
        pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
        if not pending:
            return found
        sleep(random.uniform(0, 0.05 * 2**attempt))
    raise StorageBusy(f"{len(pending)} counter buckets unprocessed after {READ_ROUNDS} BatchGetItem rounds")
