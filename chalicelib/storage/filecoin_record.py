"""The filecoin-copies table: the Filecoin copies of each CID.

Per CID (the partition) a state item (entry STATE: the tracker's version,
when it visits next, why it waits, what the requests were last shown), a
want item per holding request (want#<tenant>#<request>: the copies it
wants) and a copy item per copy ever begun (copy#<provider>#<n>: its
receipt). A state item with `due_ms` carries `due`, which keys a sparse
index: the CIDs to visit, by time. Its sort key only grows, so as for the
archives' cooling index one partition would cap the whole service at
~1,000 writes a second; it is one of DUE_SHARDS partitions by CID, and the
tracker reads each (16 small Queries a page).

Per calendar month a spend item (partition spend#YYYY-MM, entry STATE).
"""

from __future__ import annotations

import zlib
from typing import cast

from pynamodb.attributes import ListAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute

STATE = "state"
WANT = "want#"
COPY = "copy#"
SPEND = "spend#"
DUE_SHARDS = 16


def due_partition(cid: str) -> str:
    return f"due#{zlib.crc32(cid.encode()) % DUE_SHARDS}"


def due_partitions() -> list[str]:
    return [f"due#{shard}" for shard in range(DUE_SHARDS)]


def want_entry(tenant_id: str, request_id: str) -> str:
    return f"{WANT}{tenant_id}#{request_id}"


def want_of(entry: str) -> tuple[str, str]:
    """The (tenant, request) of a want entry (request ids hold no '#')."""
    tenant_id, _, request_id = entry.removeprefix(WANT).rpartition("#")
    return tenant_id, request_id


def copy_entry(provider_id: str, n: int) -> str:
    return f"{COPY}{provider_id}#{n}"


def spend_partition(period: str) -> str:
    return f"{SPEND}{period}"


class DueCids(GlobalSecondaryIndex["FilecoinRecord"]):
    """State items of the CIDs to visit, soonest first (others lack `due`)."""

    class Meta:
        index_name = "due"
        projection = KeysOnlyProjection()

    due = UnicodeAttribute(hash_key=True)
    due_ms = IntegerAttribute(range_key=True)


class FilecoinRecord(Model):
    class Meta:
        table_name = "filecoin-copies"
        billing_mode = "PAY_PER_REQUEST"

    cid = UnicodeAttribute(hash_key=True)
    # STATE, want_entry(...) or copy_entry(...).
    entry = UnicodeAttribute(range_key=True)
    version = IntegerAttribute(null=True)
    # State items: set together, removed together.
    due_ms = IntegerAttribute(null=True)
    due = UnicodeAttribute(null=True)
    waiting = UnicodeAttribute(null=True)
    shown = UnicodeAttribute(null=True)
    # Want items.
    copies = IntegerAttribute(null=True)
    # Copy items: the receipt (chalicelib.filecoin.backend.Receipt) and bookkeeping.
    n = IntegerAttribute(null=True)
    provider_id = UnicodeAttribute(null=True)
    piece_cid = UnicodeAttribute(null=True)
    copy_state = UnicodeAttribute(null=True)
    data_set_id = UnicodeAttribute(null=True)
    piece_id = UnicodeAttribute(null=True)
    # Absent on other items (an empty list would be stored on each).
    transactions = cast("ListAttribute[str]", ListAttribute(of=UnicodeAttribute, null=True))
    last_proven_epoch = IntegerAttribute(null=True)
    ends_epoch = IntegerAttribute(null=True)
    detail = UnicodeAttribute(null=True)
    created_ms = IntegerAttribute(null=True)
    updated_ms = IntegerAttribute(null=True)
    attempt = IntegerAttribute(null=True)
    checked_ms = IntegerAttribute(null=True)
    lapsed_ms = IntegerAttribute(null=True)
    # Spend items: what the period's copies reserved, in the token's smallest unit.
    spent = IntegerAttribute(null=True)

    by_due = DueCids()
