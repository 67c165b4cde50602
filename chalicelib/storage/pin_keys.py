"""Where each item of a pin lives in the pins table: partition and sort keys.

A tenant's pins are spread over shards, each its own partition key
(`tenant#shard`), so no tenant is confined to one partition's throughput and
the table has no local index whose 10 GB item collection could fill. A pin's
shard follows from its `created` millisecond and the tenant's shard plan, so a
request id (which carries the millisecond) still locates the pin in one read.

Inside a shard, one pin is several items, all written in its transaction, so
every read of the base table (strongly consistent) sees them agree:

    p#<created>                 the pin itself
    s#<status>#<created>        full copies, listed by status,
    c#<cid>#<created>           by CID,
    n#<name digest>#<created>   by exact name and by folded name
    f#<name digest>#<created>
    m#<pair digest>#<created>   an entry per indexed meta key/value pair (or
                                one overflow entry for a pin with more pairs)

A write that changes the counts records the change, until it is folded into
the counter tree, at the top of each list stream whose count it changes:

    p#~<created>#<request>#<v>      a pin created or deleted
    s#<status>#~<created>#<req>#<v> a pin that enters or leaves the status

"~" sorts after every digit, so a stream read newest first from its top
meets the changes not folded yet before its pins: a list page reads its
count's changes in the request that reads its pins. Every change is two
items (create: `p#~` and its status's; delete: the same; a move: the two
statuses'), each naming the statuses before and after.

A write that changes what a request's `info` says of its archive, tier or
Filecoin copies also inserts the event it is, for the webhooks
(chalicelib.webhooks.info_events), with its data and a TTL:

    e#<created>#<request>#<v>#<event type>

No list, count or fold reads `e#`: the items are only the stream's.

A tenant's claimed idempotency key is an item of its own
(`tenant#claim#<key digest>`), written with the pin it created.

A pin's meta larger than 1 KB is kept apart, in a partition of its own
(`tenant#meta#<created>`, written once), not copied into the pin and its
status copy.

The shard's counts are written only by folding changes in (count_folder):

    k#<level>#<parent>          a bucket of the shard's counter tree

`created` is 13 zero-padded digits, so each kind sorts by time and a query
reads it newest first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection

from chalicelib.pins.model import STATUSES

CREATED_DIGITS = 13
MAX_MS = 10**CREATED_DIGITS - 1
STATUS_CODES = {"queued": "q", "pinning": "g", "pinned": "p", "failed": "f"}
STATUS_OF_CODE = {code: status for status, code in STATUS_CODES.items()}
assert set(STATUS_CODES) == set(STATUSES)

PIN = "p"
BY_STATUS = "s"
BY_CID = "c"
BY_NAME = "n"
BY_FOLDED_NAME = "f"
BY_META = "m"
COUNTER = "k"
EVENT = "e"
# Sorts after the 13 digits of a pin's `created`: changes sit atop their stream.
CHANGES = "~"
# The meta entry of a pin with more pairs than are indexed: every meta query reads these.
META_OVERFLOW = "+"


def shard_key(tenant_id: str, shard: int) -> str:
    return f"{tenant_id}#{shard}"


def tenant_of_shard(shard: str) -> str:
    """The tenant of a shard's partition key (tenant ids hold no `#`)."""
    return shard.rpartition("#")[0]


def plan_key(tenant_id: str) -> str:
    """The partition of the tenant's shard plan: no shard's key ends like this."""
    return f"{tenant_id}#plan"


def meta_key(tenant_id: str, created_ms: int) -> str:
    """The partition of a pin's large meta, one per pin: written once, read by
    key, so it needs no order and spreads over all of DynamoDB's partitions."""
    return f"{tenant_id}#meta#{created_ms:0{CREATED_DIGITS}d}"


META_SORT_KEY = "meta"
CLAIM_SORT_KEY = "claim"


def claim_key(tenant_id: str, key: str) -> str:
    """The partition of a tenant's idempotency key (pins.idempotency), one per key."""
    return f"{tenant_id}#claim#{digest(key)}"


def pin_sort_key(created_ms: int) -> str:
    return f"{PIN}#{created_ms:0{CREATED_DIGITS}d}"


def entry_prefix(kind: str, value: str = "") -> str:
    """The sort key prefix of one index's entries for `value` (none for pins)."""
    return f"{kind}#{value}#" if value else f"{kind}#"


def entry_key(prefix: str, created_ms: int) -> str:
    return f"{prefix}{created_ms:0{CREATED_DIGITS}d}"


def status_prefix(status: str) -> str:
    return entry_prefix(BY_STATUS, STATUS_CODES[status])


def created_of(sort_key: str) -> int:
    """The `created` millisecond every pin item's sort key ends with."""
    return int(sort_key[-CREATED_DIGITS:])


def digest(text: str) -> str:
    """A fixed-width stand-in for a name or pair, which may be kilobytes long."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def pair_digest(key: str, value: str) -> str:
    return digest(json.dumps([key, value], ensure_ascii=False))


def stream_prefixes(statuses: Collection[str]) -> list[str]:
    """The list streams of pins of `statuses`: the pins themselves when every
    status is wanted (their changes are creates and deletes), else the status
    copies of each."""
    if set(statuses) == set(STATUSES):
        return [entry_prefix(PIN)]
    return [status_prefix(status) for status in sorted(statuses)]


def change_id(created_ms: int, request_id: str, version: int) -> str:
    """One count change: a pin's request and version make it unique."""
    return f"{created_ms:0{CREATED_DIGITS}d}#{request_id}#{version}"


def change_sort_keys(change: str, was: str | None, now: str | None) -> list[str]:
    """The sort keys of a change's two items, from the status codes before
    and after (None where the pin does not exist)."""
    streams = [entry_prefix(BY_STATUS, code) for code in (was, now) if code]
    if was is None or now is None:
        streams.append(entry_prefix(PIN))
    return [f"{stream}{CHANGES}{change}" for stream in streams]


def changes_range(stream: str, lo_ms: int, hi_ms: int) -> tuple[str, str]:
    """Sort keys bounding a stream's changes of pins created in [lo_ms, hi_ms]."""
    # "~" sorts after every character of a request id and a version.
    return entry_key(stream + CHANGES, lo_ms), entry_key(stream + CHANGES, hi_ms) + "~"


def change_of(stream: str, sort_key: str) -> str | None:
    """The change an item of the stream records (None for its pins)."""
    return sort_key[len(stream) + 1 :] if sort_key.startswith(stream + CHANGES) else None


def created_of_change(change: str) -> int:
    """The `created` millisecond of the pin a change is of."""
    return int(change[:CREATED_DIGITS])


def event_sort_key(created_ms: int, request_id: str, version: int, event_type: str) -> str:
    """A request's event, written at the pin's `version`: one per write and type."""
    return f"{EVENT}#{created_ms:0{CREATED_DIGITS}d}#{request_id}#{version}#{event_type}"


def counter_sort_key(level: int, parent: int) -> str:
    return f"{COUNTER}#{level}#{parent}"
