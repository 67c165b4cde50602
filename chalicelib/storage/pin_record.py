"""The pins table: one item per pin request, keyed by tenant and creation time.

`created_ms` is the sort key, so DynamoDB itself enforces the promise that
`created` is unique within a tenant at millisecond precision. Every index is
local (same partition key), because local indexes allow strongly consistent
reads: a tenant sees its own writes at once in every list and count.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import MapAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, LocalSecondaryIndex
from pynamodb.models import Model

from chalicelib.storage.attributes import IntegerAttribute, string_list


def plain_map(value: Any) -> dict[str, str]:
    """A map attribute as a dict: PynamoDB gives a raw MapAttribute when read
    from DynamoDB and keeps the dict it was built from otherwise."""
    return value.as_dict() if hasattr(value, "as_dict") else dict(value or {})


def sort_key(prefix: str, created_ms: int) -> str:
    """Index sort key: a fixed prefix, then a zero-padded time for ordering."""
    return f"{prefix}#{created_ms:013d}"


class StatusIndex(LocalSecondaryIndex["PinRecord"]):
    class Meta:
        index_name = "status-created"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    status_sort = UnicodeAttribute(range_key=True)


class CidIndex(LocalSecondaryIndex["PinRecord"]):
    class Meta:
        index_name = "cid-created"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    cid_sort = UnicodeAttribute(range_key=True)


class NameIndex(LocalSecondaryIndex["PinRecord"]):
    """Exact names; the key holds a digest of the name, which may be 255
    characters of UTF-8 and would not fit a sort key next to the time."""

    class Meta:
        index_name = "name-created"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    name_sort = UnicodeAttribute(range_key=True)


class FoldedNameIndex(LocalSecondaryIndex["PinRecord"]):
    """Case-insensitive names (`match=iexact`)."""

    class Meta:
        index_name = "folded-name-created"
        projection = AllProjection()

    tenant_id = UnicodeAttribute(hash_key=True)
    folded_name_sort = UnicodeAttribute(range_key=True)


class PinRecord(Model):
    class Meta:
        table_name = "pins"
        billing_mode = "PAY_PER_REQUEST"

    tenant_id = UnicodeAttribute(hash_key=True)
    created_ms = IntegerAttribute(range_key=True)
    request_id = UnicodeAttribute()
    status = UnicodeAttribute()
    cid = UnicodeAttribute()
    cid_key = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    folded_name = UnicodeAttribute(null=True)
    origins = string_list()
    meta: MapAttribute[str, str] = MapAttribute(default=dict)
    info: MapAttribute[str, str] = MapAttribute(default=dict)
    delegates = string_list()
    node_ids = string_list()
    # Incremented by every update and checked by every conditional write
    # (chalicelib.pins.repository); absent on items written before it: 0.
    version = IntegerAttribute(null=True)

    status_sort = UnicodeAttribute()
    cid_sort = UnicodeAttribute()
    name_sort = UnicodeAttribute(null=True)
    folded_name_sort = UnicodeAttribute(null=True)

    by_status = StatusIndex()
    by_cid = CidIndex()
    by_name = NameIndex()
    by_folded_name = FoldedNameIndex()
