"""The archives table: one archive (CAR and block index in S3) per CID.

Per CID a state item (entry STATE) with the archive's state, holder count,
archiving lease, attempts and figures, and a holder item per request that
holds it (entry holder#<tenant>#<request>). A state item whose last holder
left carries `orphaned_ms` and `orphans`, which key a sparse index: the
orphaned archives by the time they were orphaned, read by the sweep (one
Query of the oldest, never a Scan). One partition of that index is enough:
an archive enters it once per last release and leaves it once, far below a
partition's 1,000 writes a second.

A cold-only tenant's holder item carries `cools_at_ms` and `cooling`, which
key a second sparse index: the holders whose request's hot copies are due
to be released, by time (chalicelib.cold.tiering). A holder enters it when
held (as its request is pinned), at most once a day when retrieved, and
leaves it when cooled. Its sort key only grows, so a partition cannot split
its writes: one partition would cap cold-only pins at ~1,000 a second for
the whole service (and throttle the table's writes behind it). The key is
therefore one of COOLING_SHARDS partitions, by CID: 16,000 a second, above
the service's outbox ceiling; the sweep reads each (16 small Queries a run).
"""

from __future__ import annotations

import zlib

from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute

STATE = "state"
HOLDER = "holder#"
# The one partition of the orphans index.
ORPHANS = "orphaned"
# The partitions of the cooling index (`cooling#<n>`).
COOLING_SHARDS = 16


def cooling_partition(cid: str) -> str:
    return f"cooling#{zlib.crc32(cid.encode()) % COOLING_SHARDS}"


def cooling_partitions() -> list[str]:
    return [f"cooling#{shard}" for shard in range(COOLING_SHARDS)]


def holder_entry(tenant_id: str, request_id: str) -> str:
    return f"{HOLDER}{tenant_id}#{request_id}"


def holder_of(entry: str) -> tuple[str, str]:
    """The (tenant, request) of a holder entry (request ids hold no '#')."""
    tenant_id, _, request_id = entry.removeprefix(HOLDER).rpartition("#")
    return tenant_id, request_id


class OrphanedArchives(GlobalSecondaryIndex["ArchiveRecord"]):
    """State items with no holder, oldest orphan first (others lack `orphans`)."""

    class Meta:
        index_name = "orphaned"
        projection = KeysOnlyProjection()

    orphans = UnicodeAttribute(hash_key=True)
    orphaned_ms = IntegerAttribute(range_key=True)


class CoolingHolders(GlobalSecondaryIndex["ArchiveRecord"]):
    """Holder items of cold-only tenants, soonest due first (others lack `cooling`)."""

    class Meta:
        index_name = "cooling"
        projection = KeysOnlyProjection()

    cooling = UnicodeAttribute(hash_key=True)
    cools_at_ms = IntegerAttribute(range_key=True)


class ArchiveRecord(Model):
    class Meta:
        table_name = "archives"
        billing_mode = "PAY_PER_REQUEST"

    cid = UnicodeAttribute(hash_key=True)
    # STATE, or holder_entry(...) for one holding request.
    entry = UnicodeAttribute(range_key=True)
    # State items only (chalicelib.cold.archive_repository).
    state = UnicodeAttribute(null=True)
    holders = IntegerAttribute(null=True)
    changes = IntegerAttribute(null=True)
    leased_by = UnicodeAttribute(null=True)
    leased_until_ms = IntegerAttribute(null=True)
    attempts = IntegerAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    car_key = UnicodeAttribute(null=True)
    index_key = UnicodeAttribute(null=True)
    car_bytes = IntegerAttribute(null=True)
    car_sha256 = UnicodeAttribute(null=True)
    piece_cid_v1 = UnicodeAttribute(null=True)
    piece_cid_v2 = UnicodeAttribute(null=True)
    padded_size = IntegerAttribute(null=True)
    archived_ms = IntegerAttribute(null=True)
    # Set together when the last holder leaves, removed when one comes back.
    orphaned_ms = IntegerAttribute(null=True)
    orphans = UnicodeAttribute(null=True)
    # Holder items of cold-only tenants: set together, removed together.
    cools_at_ms = IntegerAttribute(null=True)
    cooling = UnicodeAttribute(null=True)

    by_orphaned = OrphanedArchives()
    by_cooling = CoolingHolders()
