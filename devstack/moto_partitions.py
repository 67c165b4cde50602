"""Makes moto's DynamoDB Query on a table read the partition and key range
it names, not the whole table.

moto answers a Query on a table's key by listing every item of the table,
sorting them all, keeping the queried partition, and then, for each item of
that partition, computing its size before it checks the sort-key condition.
So a query of a few items of a counts stream cost ~200 ms once one tenant
had 1,000 pins queued, and every DynamoDB request of the stack waited for it
(devstack.moto_transactions serialises them), the API's included
(docs/benchmarks-history.md section 10). DynamoDB reads only the items in
the key condition. Here a table Query hands moto's own query code just the
items of its partition that meet its sort-key condition; moto then orders,
pages, filters and projects them as before. Queries of an index keep moto's
way. Dev and test only.

Each partition also keeps its sort keys in order (`_Partition`, made on the
partition's first Query and kept by moto's own puts and deletes), so a
condition on the sort key is a bisection, not a pass over the partition:
under one tenant's 10,000 queued pins (some 30,000 items in its partition)
the pass was 15 % of the emulator's time, inside the lock every DynamoDB
request of the stack waits on, and another tenant's pins waited for it
(docs/benchmarks-history.md section 10, run 5).

One difference, within what DynamoDB allows: moto stops at `Limit` on the
next item of the partition, matching the condition or not, and so may
return a LastEvaluatedKey where nothing matching follows; here only a
following matching item does that. DynamoDB's LastEvaluatedKey means "there
may be more" either way.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from moto.dynamodb.comparisons import get_comparison_func
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_original_query = Table.query
_original_all_items = Table.all_items
_scope = threading.local()


def _query(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    *args: Any,
    **kwargs: Any,
) -> Any:
    # Table.query's positional parameters after range_objs: limit,
    # exclusive_start_key, scan_index_forward, projection_expressions, index_name.
    index_name = args[4] if len(args) > 4 else kwargs.get("index_name")
    if index_name or hash_key is None:
        return _original_query(self, hash_key, range_comparison, range_objs, *args, **kwargs)
    # moto checks a table's sort-key condition on the attribute its last key condition names.
    conditions = kwargs.get("range_key_conditions")
    attribute = conditions[-1][0] if conditions else None
    meets = _condition(attribute, range_comparison, range_objs) if range_comparison else None
    on_sort_key = attribute in (None, self.range_key_attr)
    ordered = (range_comparison, _sort_values(range_objs)) if range_comparison and on_sort_key else None
    _scope.query = (self, hash_key, meets, ordered)
    try:
        return _original_query(self, hash_key, range_comparison, range_objs, *args, **kwargs)
    finally:
        _scope.query = None


def _all_items(self: Table) -> list[Item]:
    """moto's list of every item, or inside a table Query of this table, the
    items of its partition that meet its sort-key condition."""
    query = getattr(_scope, "query", None)
    if query is None or query[0] is not self:
        return _original_all_items(self)
    _, hash_key, meets, ordered = query
    partition = self.items.get(hash_key)
    if partition is None:
        return []
    if not self.range_key_attr:
        return [partition]  # a table without a sort key keeps an item per hash key
    if ordered is not None and ordered[1] is not None:
        if not isinstance(partition, _Partition):
            partition = self.items[hash_key] = _Partition(partition)
        found = partition.matching(*ordered)
        if found is not None:
            return found
    items = list(partition.values())
    return items if meets is None else [item for item in items if meets(item)]


def _sort_value(key: DynamoType) -> str | Decimal | None:
    """A string or number key's value, ordered as DynamoDB orders it (a
    string's code points order as its UTF-8 bytes do); None for another type."""
    if key.type == "S":
        return str(key.value)
    if key.type == "N":
        return Decimal(key.value)
    return None


def _sort_values(operands: Iterable[DynamoType]) -> list[Any] | None:
    values = [_sort_value(operand) for operand in operands]
    return None if None in values else values


class _Partition(dict[DynamoType, Item]):
    """A partition's items by sort key, with the keys' values in order."""

    def __init__(self, items: dict[DynamoType, Item]) -> None:
        super().__init__(items)
        ordered = sorted((value, key) for key in items if (value := _sort_value(key)) is not None)
        self._values = [value for value, _ in ordered]
        self._keys = [key for _, key in ordered]
        self._indexed = len(ordered) == len(items)  # every key a string or a number

    def __setitem__(self, key: DynamoType, item: Item) -> None:
        value = _sort_value(key)
        if key not in self and value is not None:
            at = bisect_left(self._values, value)
            self._values.insert(at, value)
            self._keys.insert(at, key)
        self._indexed = self._indexed and value is not None
        super().__setitem__(key, item)

    def pop(self, key: DynamoType, *default: Any) -> Any:
        value = _sort_value(key)
        if key in self and value is not None:
            at = bisect_left(self._values, value)
            del self._values[at], self._keys[at]
        return super().pop(key, *default)

    def matching(self, comparison: str, operands: list[Any]) -> list[Item] | None:
        """The items whose sort key meets the condition; None: not one this can bisect."""
        if not self._indexed:
            return None
        comparison = _NAMES.get(comparison, comparison.upper())
        values, bound = self._values, _BOUNDS.get(comparison)
        if comparison == "BEGINS_WITH" and isinstance(operands[0], str):
            low = high = bisect_left(values, operands[0])
            while high < len(values) and str(values[high]).startswith(operands[0]):
                high += 1
        elif bound is not None:
            low, high = bound(values, *operands)
        else:
            return None
        return [self[key] for key in self._keys[low:high]]


# moto's key condition parser names comparisons by their symbol.
_NAMES = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}
# Each comparison's slice of the ordered values: (first in, first past).
_BOUNDS: dict[str, Callable[..., tuple[int, int]]] = {
    "EQ": lambda values, v: (bisect_left(values, v), bisect_right(values, v)),
    "LT": lambda values, v: (0, bisect_left(values, v)),
    "LE": lambda values, v: (0, bisect_right(values, v)),
    "GT": lambda values, v: (bisect_right(values, v), len(values)),
    "GE": lambda values, v: (bisect_left(values, v), len(values)),
    "BETWEEN": lambda values, low, high: (bisect_left(values, low), bisect_right(values, high)),
}


def _condition(attribute: str | None, range_comparison: str, range_objs: list[DynamoType]) -> Callable[[Item], bool]:
    """moto's check of a table query's sort-key condition (DynamoType.compare),
    with its operands cast once per query rather than once per item."""
    compare = get_comparison_func(range_comparison)
    operands = [obj.cast_value for obj in range_objs]

    def meets(item: Item) -> bool:
        value = item.attrs.get(attribute) if attribute else item.range_key
        if value is None or not value:
            return False
        # cast_value, for the key types (string, number) without its type tests
        cast = value.value if value.type == "S" else Decimal(value.value) if value.type == "N" else value.cast_value
        return bool(compare(cast, *operands))

    return meets


# What `install` replaces: (owner, attribute) -> the emulation's.
PATCHES: dict[tuple[type, str], Any] = {(Table, "query"): _query, (Table, "all_items"): _all_items}


def install() -> None:
    """Idempotent; for the process running the emulated AWS."""
    for (owner, name), value in PATCHES.items():
        setattr(owner, name, value)
