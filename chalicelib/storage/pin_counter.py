"""Per-shard pin counts by status, bucketed by creation time.

A list page must report the exact number of matching pins, `before`/`after`
included, without reading them all. Counts are kept in a tree of time buckets:
a level-k slot spans 64**k milliseconds (level 0: one millisecond) and belongs
to the bucket of its parent (level k, parent index), one item per bucket in
the shard's partition of the pins table (pin_keys.counter_sort_key). The item
holds, per slot and status, a number attribute named by the status code and
the slot (`p17`: pinned pins of slot 17; codes in STATUS_CODES). The first ADD
that touches a slot creates its attribute, so a sparse bucket stays small.

The number of pins created in a time range is the sum of at most two runs of
slots a level (range_blocks): at most 13 items per shard (7 for a range from
time 0), read in one BatchGetItem, a cost bound by the tree and the tenant's
shards, not by the tenant's size.
Only the count folder writes buckets (chalicelib.storage.count_folder).

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

from pynamodb.connection import Connection

from chalicelib.busy import StorageBusy
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.pin_keys import STATUS_CODES, counter_sort_key

FANOUT = 64
LEVELS = 6  # a level-6 slot spans ~2.2 years; all of them share parent 0
# Times from here on (year 2109) are beyond the tree.
HORIZON_MS = FANOUT ** (LEVELS + 1)
# Rounds of BatchGetItem for the keys DynamoDB leaves unprocessed when throttled.
READ_ROUNDS = 8
BATCH_KEYS = 100  # BatchGetItem's limit

Bucket = tuple[str, str]  # (shard's partition key, sort key)
Cell = tuple[Bucket, int]  # (bucket, slot)
BucketCounts = Mapping[str, int]  # a bucket's counts by attribute name
# Bucket items hold counts besides their keys; everything else is a key.
_KEYS = ("pk", "sk")


def count_name(status: str, slot: int) -> str:
    """The attribute counting the pins of `status` in `slot`."""
    return f"{STATUS_CODES[status]}{slot}"


def cells_of(shard: str, created_ms: int) -> list[Cell]:
    """The (bucket, slot) of every level that counts a pin created then,
    from level 0 up."""
    cells = []
    for level in range(LEVELS + 1):
        index = created_ms // FANOUT**level
        cells.append(((shard, counter_sort_key(level, index // FANOUT)), index % FANOUT))
    return cells


def range_blocks(shard: str, start_ms: int, end_ms: int) -> list[tuple[Bucket, range]]:
    """Slot ranges, at most two a level, that together cover the pins created
    in [start_ms, end_ms) once each and no other pin: a change is counted by
    one bucket or none, so a count never sees half of a fold. Times beyond
    the tree are in no slot."""
    blocks = []
    start, end = max(start_ms, 0), min(end_ms, HORIZON_MS)
    for level in range(LEVELS + 1):
        if start >= end:
            break
        if level == LEVELS:
            blocks.append(((shard, counter_sort_key(level, 0)), range(start, end)))
            break
        up, down = -(-start // FANOUT) * FANOUT, end // FANOUT * FANOUT
        if up > down:  # within one bucket, no whole slot of the level above
            blocks.append(((shard, counter_sort_key(level, start // FANOUT)), range(start % FANOUT, end - down)))
            break
        if start < up:
            blocks.append(((shard, counter_sort_key(level, start // FANOUT)), range(start % FANOUT, FANOUT)))
        if down < end:
            blocks.append(((shard, counter_sort_key(level, end // FANOUT)), range(0, end - down)))
        start, end = up // FANOUT, down // FANOUT
    return blocks


def slot_count(counts: BucketCounts, slots: Iterable[int], statuses: Collection[str]) -> int:
    """Pins of `statuses` in these slots of one bucket."""
    return sum(counts.get(count_name(status, slot), 0) for slot in slots for status in statuses)


def read_buckets(
    connection: Connection, buckets: Collection[Bucket], sleep: Callable[[float], None] = time.sleep
) -> dict[Bucket, BucketCounts]:
    """The counts of each bucket, strongly consistent, in one BatchGetItem per
    100 buckets (its limit; a count needs 12 a shard), and more only for keys
    DynamoDB leaves unprocessed. A bucket never written has no item and counts
    nothing. Raises StorageBusy when DynamoDB (throttled) keeps leaving keys
    unprocessed."""
    table = PinItem.Meta.table_name
    found: dict[Bucket, BucketCounts] = {bucket: {} for bucket in buckets}
    keys = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in found]
    for start in range(0, len(keys), BATCH_KEYS):
        pending = keys[start : start + BATCH_KEYS]
        for attempt in range(READ_ROUNDS):
            # Key maps, as Model.batch_get passes too; PynamoDB annotates them as str.
            response = connection.batch_get_item(table, pending, consistent_read=True)  # type: ignore[arg-type]
            for item in response.get("Responses", {}).get(table, []):
                bucket = (item["pk"]["S"], item["sk"]["S"])
                found[bucket] = {name: int(value["N"]) for name, value in item.items() if name not in _KEYS}
            pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not pending:
                break
            sleep(random.uniform(0, 0.05 * 2**attempt))
        else:
            raise StorageBusy(f"{len(pending)} counter buckets unprocessed after {READ_ROUNDS} BatchGetItem rounds")
    return found
