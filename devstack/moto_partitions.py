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

One difference, within what DynamoDB allows: moto stops at `Limit` on the
next item of the partition, matching the condition or not, and so may
return a LastEvaluatedKey where nothing matching follows; here only a
following matching item does that. DynamoDB's LastEvaluatedKey means "there
may be more" either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
    _scope.query = (self, hash_key, meets)
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
    _, hash_key, meets = query
    partition = self.items.get(hash_key)
    if partition is None:
        return []
    if not self.range_key_attr:
        return [partition]  # a table without a sort key keeps an item per hash key
    items = list(partition.values())
    return items if meets is None else [item for item in items if meets(item)]


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
