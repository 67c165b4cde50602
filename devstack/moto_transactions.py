"""Makes moto's DynamoDB transactions cost what they touch, not the table,
and every write request atomic.

moto backs up every table a TransactWriteItems touches with a deep copy, so a
transaction's cost grows with the table and a tenant of 20,000 pins takes
hours to build. This keeps moto's behaviour (all or nothing) by saving and
restoring only the items the transaction names. moto also applies a request
in steps (check, write, restore on failure) that concurrent threads could
interleave, and a query sorts items and then filters them, so an item
updated in between can come out of order (a status listing once showed a pin
that had just become `pinned` before newer ones); one lock around each read
and write request rules both out, as on AWS. And a query sorts the whole
partition with moto's generic value comparison, which dominates the time of
a query on a shard of a few hundred items; keys are strings and numbers, so
they are compared as such. Dev and test only.
"""

from __future__ import annotations

import copy
import threading
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from moto.dynamodb import models
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_installed = False
_lock = threading.Lock()


def _deepcopy_except_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    # The table "backup" becomes the live table; the items it would have
    # protected are saved by _saved_items instead.
    return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_Saved = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _saved_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[_Saved]:
    saved = []
    for entry in transact_items:
        operation = next(iter(entry.values()))
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            continue
        key = operation.get("Key") or operation.get("Item") or {}
        if table.hash_key_attr not in key:
            continue
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
        current = table.get_item(hash_value, range_value) if (range_value or not table.has_range_key) else None
        saved.append((table, hash_value, range_value, copy.deepcopy(current)))
    return saved


def _restore(saved: list[_Saved]) -> None:
    for table, hash_value, range_value, item in reversed(saved):
        if item is None:
            table.delete_item(hash_value, range_value)
        elif range_value is not None:
            table.items[hash_value][range_value] = item
        else:
            table.items[hash_value] = item


def _plain(value: DynamoType) -> Any:
    """A string or number as Python compares it; anything else as moto casts it."""
    if value.type == "S":
        return value.value
    return Decimal(value.value) if value.type == "N" else value.cast_value


def _fast_comparisons() -> None:
    DynamoType.__eq__ = lambda self, other: self.type == other.type and _plain(self) == _plain(other)  # type: ignore[method-assign,assignment]
    DynamoType.__lt__ = lambda self, other: _plain(self) < _plain(other)  # type: ignore[method-assign]
    DynamoType.__le__ = lambda self, other: _plain(self) <= _plain(other)  # type: ignore[method-assign]
    DynamoType.__gt__ = lambda self, other: _plain(self) > _plain(other)  # type: ignore[method-assign]
    DynamoType.__ge__ = lambda self, other: _plain(self) >= _plain(other)  # type: ignore[method-assign]


def install() -> None:
    """Idempotent; patches moto's backend class for this process."""
    global _installed
    with _lock:
        if _installed:
            return
        models.copy = SimpleNamespace(deepcopy=_deepcopy_except_tables, copy=copy.copy)
        _fast_comparisons()
        original = models.DynamoDBBackend.transact_write_items

        def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
            saved = _saved_items(self, transact_items)
            try:
                original(self, transact_items)
            except Exception:
                _restore(saved)
                raise

        models.DynamoDBBackend.transact_write_items = transact_write_items
        for name in (
            "put_item",
            "update_item",
            "delete_item",
            "transact_write_items",
            "batch_write_item",
            "get_item",
            "batch_get_item",
            "transact_get_items",
            "query",
            "scan",
        ):
            setattr(models.DynamoDBBackend, name, _atomic(getattr(models.DynamoDBBackend, name)))
        _installed = True


_request_lock = threading.RLock()


def _atomic(write: Any) -> Any:
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _request_lock:
            return write(self, *args, **kwargs)

    return locked
