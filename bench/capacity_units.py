"""DynamoDB's capacity and storage accounting, applied to recorded requests.

The rules, from the DynamoDB developer guide (stated here because the
benchmark applies them, not because the emulator enforces them):

- A write consumes 1 write unit per started KB of the item, the larger of its
  size before and after (a delete: its size before), at least 1; twice that
  inside a transaction. A transaction's ConditionCheck is counted like a
  write of the item (conservative).
- Every secondary index the write changes costs more writes, of the index
  entry's size (its keys and projected attributes): 1 to put or delete an
  entry, 1 to update projected attributes, 2 (delete, put) when the index
  key changes, none when the entry is unchanged. Transactions double these
  too (conservative).
- A strongly consistent read consumes 1 read unit per started 4 KB.
- Storage: every item and every index entry is billed with 100 bytes of
  overhead. A local index lives with its table: an item's local index entries
  are in its partition, and in its item collection (the table's items of one
  partition key and their local index entries), which tables with local
  indexes cap at 10 GB.
- Throughput: a partition takes 1,000 write and 3,000 read units a second. A
  table with local indexes keeps each partition key in one partition. Without
  them, DynamoDB splits a partition key's items across partitions by sort-key
  range, but writes that always land at the end of one range stay on one
  partition: the benchmark takes, conservatively, every "sequential range"
  (a partition key and the sort-key prefix before a 13-digit time, such as
  `tenant#3` / `s#g#`) as one partition, and any other item as its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from bench.support import item_bytes
from chalicelib.storage.pin_keys import CREATED_DIGITS

WRITE_UNIT_BYTES = 1024
STORAGE_OVERHEAD_BYTES = 100

Item = dict[str, Any]  # an item as DynamoDB's wire JSON: {"name": {"S": "..."}}


@dataclass(frozen=True)
class Index:
    name: str
    local: bool
    hash_key: str
    range_key: str | None
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: frozenset[str]


@dataclass(frozen=True)
class TableSchema:
    name: str
    hash_key: str
    range_key: str | None
    indexes: tuple[Index, ...]

    @property
    def has_local_index(self) -> bool:
        return any(index.local for index in self.indexes)

    def key_of(self, item: Item) -> Item:
        """The item's primary key attributes."""
        names = [self.hash_key] + ([self.range_key] if self.range_key else [])
        return {name: item[name] for name in names}

    def entry(self, index: Index, item: Item | None) -> Item | None:
        """The item's entry in `index` (None when the item lacks the index's keys)."""
        if item is None or index.hash_key not in item or (index.range_key and index.range_key not in item):
            return None
        if index.projection == "ALL":
            return dict(item)
        keys = {self.hash_key, self.range_key, index.hash_key, index.range_key} - {None}
        return {name: value for name, value in item.items() if name in keys or name in index.included}


def schema_of(description: dict[str, Any]) -> TableSchema:
    """A table's keys and indexes from DescribeTable's `Table`."""

    def keys(schema: list[dict[str, str]]) -> tuple[str, str | None]:
        by_type = {part["KeyType"]: part["AttributeName"] for part in schema}
        return by_type["HASH"], by_type.get("RANGE")

    indexes = []
    for kind, local in (("LocalSecondaryIndexes", True), ("GlobalSecondaryIndexes", False)):
        for index in description.get(kind, []):
            projection = index.get("Projection", {})
            hash_key, range_key = keys(index["KeySchema"])
            indexes.append(
                Index(
                    index["IndexName"],
                    local,
                    hash_key,
                    range_key,
                    projection.get("ProjectionType", "ALL"),
                    frozenset(projection.get("NonKeyAttributes", [])),
                )
            )
    hash_key, range_key = keys(description["KeySchema"])
    return TableSchema(description["TableName"], hash_key, range_key, tuple(indexes))


def key_text(value: dict[str, Any] | None) -> str:
    """A key attribute's value as text ("" for a table without a sort key)."""
    if value is None:
        return ""
    ((_, inner),) = value.items()
    return str(inner)


@dataclass(frozen=True)
class Place:
    """Where capacity is consumed: an item of a table, or an entry of a global
    index (a local index's entries count to their table item's place)."""

    table: str
    index: str  # "" for the table and its local indexes
    hash: str
    range: str

    @property
    def partition(self) -> tuple[str, str, str]:
        return self.table, self.index, self.hash


# A time field of a sort key: its own `#`-separated field of 13 digits (the
# pins' `created`, the outbox's), which no digest or CID field is; a count
# change's follows the `~` that puts it atop its stream.
_TIME_FIELD = re.compile(rf"(?:^|#~?)(\d{{{CREATED_DIGITS}}})(?=#|$)")


def sequential_range(place: Place) -> Place:
    """The range of items written in time order that `place` is in: its
    partition key and the sort-key prefix before the first time field. A
    sort key without one (a counter bucket) is a range of its own."""
    match = _TIME_FIELD.search(place.range)
    if match is None:
        return place
    return replace(place, range=place.range[: match.start(1)])


@dataclass(frozen=True)
class ItemWrite:
    """What one write request did to one item."""

    schema: TableSchema
    before: Item | None
    after: Item | None
    transactional: bool
    check_only: bool = False

    @property
    def place(self) -> Place:
        item = self.after if self.after is not None else self.before
        assert item is not None, "a write names an item that exists before or after it"
        key = self.schema.key_of(item)
        return Place(
            self.schema.name, "", key_text(key[self.schema.hash_key]), key_text(key.get(self.schema.range_key or ""))
        )

    def units(self) -> Iterator[tuple[Place, float]]:
        """Write units by place: the item, then every index entry it changes."""
        factor = 2.0 if self.transactional else 1.0
        sizes = [item_bytes(item) for item in (self.before, self.after) if item is not None]
        yield self.place, factor * _write_units(max(sizes, default=0))
        if self.check_only:
            return
        for index in self.schema.indexes:
            old, new = self.schema.entry(index, self.before), self.schema.entry(index, self.after)
            for entry_place, size in self._index_writes(index, old, new):
                yield entry_place, factor * _write_units(size)

    def _index_writes(self, index: Index, old: Item | None, new: Item | None) -> list[tuple[Place, int]]:
        if old == new:
            return []
        if old is None or new is None:
            entry = old if old is not None else new
            assert entry is not None
            return [(self._entry_place(index, entry), item_bytes(entry))]
        old_place, new_place = self._entry_place(index, old), self._entry_place(index, new)
        if _index_key(index, old) != _index_key(index, new):
            return [(old_place, item_bytes(old)), (new_place, item_bytes(new))]
        return [(new_place, max(item_bytes(old), item_bytes(new)))]

    def _entry_place(self, index: Index, entry: Item) -> Place:
        if index.local:
            return self.place
        return Place(
            self.schema.name,
            index.name,
            key_text(entry[index.hash_key]),
            key_text(entry.get(index.range_key or "")),
        )


def _index_key(index: Index, entry: Item) -> tuple[str, str]:
    return key_text(entry[index.hash_key]), key_text(entry.get(index.range_key or ""))


def _write_units(size: int) -> float:
    return float(max(1, -(-size // WRITE_UNIT_BYTES)))


def stored_bytes(schema: TableSchema, item: Item) -> dict[str, int]:
    """Bytes billed for one stored item, by table and by index ("table/index")."""
    stored = {schema.name: item_bytes(item) + STORAGE_OVERHEAD_BYTES}
    for index in schema.indexes:
        entry = schema.entry(index, item)
        if entry is not None:
            stored[f"{schema.name}/{index.name}"] = item_bytes(entry) + STORAGE_OVERHEAD_BYTES
    return stored


def collection_bytes(schema: TableSchema, item: Item) -> int:
    """The item's share of its item collection: the item and its local index entries."""
    local = {f"{schema.name}/{index.name}" for index in schema.indexes if index.local}
    return sum(size for name, size in stored_bytes(schema, item).items() if name == schema.name or name in local)
