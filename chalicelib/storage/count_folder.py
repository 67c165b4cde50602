"""Folds a shard's recorded count changes into its counter tree.

Pin writes never touch the tree (chalicelib.storage.pin_store): each records
its change as two items of its own (pin_keys.change_sort_keys). Folding
moves changes into the tree in transactions that add them to the buckets
and delete both their items at once, so a count, which reads the tree and
the changes left, finds every change in exactly one of them (pin_store
says how a count read while a fold commits stays exact).

Only folders write the tree, and a shard has about one at a time (the
changes' stream delivers a shard's records to one invocation in order), so
its buckets are not the hot, contended items they would be if every pin
write updated them. Two folders of one shard are still safe: each change is
deleted on the condition that it is still there, so none is added twice.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action

from chalicelib.busy import StorageBusy
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import conflicted, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.pin_counter import Bucket, cells_of, count_name
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.pin_keys import (
    MAX_MS,
    STATUS_CODES,
    STATUS_OF_CODE,
    change_of,
    change_sort_keys,
    changes_range,
    created_of_change,
    status_prefix,
)

TRANSACTION_ITEMS = 100  # DynamoDB's limit
# A fold that keeps meeting another folder gives up after this many tries (a
# stream invocation then fails and is retried).
FOLD_ATTEMPTS = 8
BACKOFF_BASE_S = 0.02
# Changes read per page while folding: a transaction takes at most ~48.
CHANGES_PAGE = 100
# Every change has an item in the stream of its status before or after.
_STATUS_STREAMS = [status_prefix(status) for status in STATUS_CODES]


@dataclass(frozen=True)
class _Change:
    id: str  # pin_keys.change_id
    was: str | None
    now: str | None

    @property
    def sort_keys(self) -> list[str]:
        return change_sort_keys(self.id, self.was, self.now)


@dataclass
class _Batch:
    """Changes for one transaction: within its item limit with their items and buckets."""

    changes: list[_Change] = field(default_factory=list)
    deltas: dict[Bucket, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))

    def room_for(self, buckets: Iterable[Bucket]) -> bool:
        """Whether one more change (two items, pin_keys.change_sort_keys) and its buckets fit."""
        new = set(buckets) - self.deltas.keys()
        return 2 * (len(self.changes) + 1) + len(self.deltas) + len(new) <= TRANSACTION_ITEMS

    def add(self, shard: str, change: _Change) -> None:
        self.changes.append(change)
        for bucket, slot in cells_of(shard, created_of_change(change.id)):
            if change.was:
                self.deltas[bucket][count_name(STATUS_OF_CODE[change.was], slot)] -= 1
            if change.now:
                self.deltas[bucket][count_name(STATUS_OF_CODE[change.now], slot)] += 1


class CountFolder:
    def __init__(self, dynamo: DynamoConnection, sleep: Callable[[float], None] = time.sleep) -> None:
        self._dynamo = dynamo
        self._sleep = sleep

    def fold(self, shard: str) -> int:
        """Folds every change the shard holds now into its tree; returns how
        many. Raises StorageBusy when other folders keep cancelling it."""
        folded = 0
        attempts = 0
        with busy_as_storage_busy():
            while True:
                batch = self._next_batch(shard)
                if not batch.changes:
                    return folded
                try:
                    self._commit(shard, batch)
                except _Contended:
                    attempts += 1
                    if attempts == FOLD_ATTEMPTS:
                        raise StorageBusy(f"folding {shard} kept meeting another folder") from None
                    self._sleep(random.uniform(0, BACKOFF_BASE_S * 2**attempts))
                    continue
                folded += len(batch.changes)

    def _next_batch(self, shard: str) -> _Batch:
        batch = _Batch()
        for change in self._changes(shard):
            buckets = [bucket for bucket, _ in cells_of(shard, created_of_change(change.id))]
            if not batch.room_for(buckets):
                break
            batch.add(shard, change)
        return batch

    @staticmethod
    def _changes(shard: str) -> Iterator[_Change]:
        """The shard's changes, each once (a move is in two status streams)."""
        seen: set[str] = set()
        for stream in _STATUS_STREAMS:
            start, end = changes_range(stream, 0, MAX_MS)
            for item in PinItem.query(
                shard, PinItem.sk.between(start, end), consistent_read=True, page_size=CHANGES_PAGE
            ):
                change = change_of(stream, item.sk)
                if change is not None and change not in seen:
                    seen.add(change)
                    yield _Change(change, item.was, item.now)

    def _commit(self, shard: str, batch: _Batch) -> None:
        try:
            with self._dynamo.transaction() as tx:
                for (pk, sk), by_name in batch.deltas.items():
                    actions: list[Action] = [Path(name).add(n) for name, n in by_name.items() if n]
                    if actions:
                        tx.update(PinItem(pk, sk), actions=actions)
                for change in batch.changes:
                    # Still there: no other folder has added it to the tree.
                    for sort_key in change.sort_keys:
                        tx.delete(PinItem(shard, sort_key), condition=PinItem.sk.exists())
        except TransactWriteError as error:
            if failed_condition(error) is not None or conflicted(error):
                raise _Contended() from error
            raise


class _Contended(Exception):
    """Another folder of the shard committed or is committing first."""
