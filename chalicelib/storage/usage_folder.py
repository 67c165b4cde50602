"""Folds a shard's bytes changes into its tenant's month items.

Fed as the counts are (app.fold_counts, change_stream.fold_changes): every
bytes change is written with a count change in the same shard and
transaction, so the stream's record of that one names the shard. A fold is
a transaction that adds the changes to their months (ADD net bytes and
byte-milliseconds to the month's end, chalicelib.usage.ledger) and deletes
them on the condition that they are still there: a reader finds each change
in exactly one place, and two folders of a shard never add one twice. Month
items are per shard, so folders of one tenant's shards never conflict.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action

from chalicelib.busy import StorageBusy
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import conflicted, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.count_folder import BACKOFF_BASE_S, FOLD_ATTEMPTS, TRANSACTION_ITEMS
from chalicelib.storage.pin_keys import tenant_of_shard
from chalicelib.storage.usage_item import UsageItem
from chalicelib.storage.usage_keys import USAGE_CHANGES, month_key, usage_partition
from chalicelib.usage.ledger import BytesChange, FoldedMonth

# Changes per transaction, leaving room for their month items (a few at most).
CHANGES_PER_FOLD = TRANSACTION_ITEMS - 10


def shard_changes(shard: str, limit: int | None = None) -> list[tuple[str, BytesChange]]:
    """The shard's bytes changes not folded yet (sort key, change), oldest write first."""
    items = UsageItem.query(
        shard, UsageItem.sk.startswith(USAGE_CHANGES), consistent_read=True, limit=limit, page_size=limit
    )
    return [(item.sk, BytesChange(item.at_ms or 0, item.delta or 0, item.cold_delta or 0)) for item in items]


class UsageFolder:
    def __init__(self, dynamo: DynamoConnection, sleep: Callable[[float], None] = time.sleep) -> None:
        self._dynamo = dynamo
        self._sleep = sleep

    def fold(self, shard: str) -> int:
        """Folds every bytes change the shard holds now; returns how many.
        Raises StorageBusy when other folders keep cancelling it."""
        folded = 0
        attempts = 0
        with busy_as_storage_busy():
            while changes := shard_changes(shard, CHANGES_PER_FOLD):
                try:
                    self._commit(shard, changes)
                except _Contended:
                    attempts += 1
                    if attempts == FOLD_ATTEMPTS:
                        raise StorageBusy(f"folding usage of {shard} kept meeting another folder") from None
                    self._sleep(random.uniform(0, BACKOFF_BASE_S * 2**attempts))
                    continue
                folded += len(changes)
        return folded

    def _commit(self, shard: str, changes: list[tuple[str, BytesChange]]) -> None:
        months: dict[str, FoldedMonth] = defaultdict(FoldedMonth)
        for _, change in changes:
            months[change.month.text] = months[change.month.text].plus(change)
        partition = usage_partition(tenant_of_shard(shard))
        try:
            with self._dynamo.transaction() as tx:
                for month, totals in months.items():
                    actions: list[Action] = [
                        UsageItem.net.add(totals.net),
                        UsageItem.byte_ms.add(totals.byte_ms),
                        UsageItem.cold_net.add(totals.cold_net),
                        UsageItem.cold_byte_ms.add(totals.cold_byte_ms),
                    ]
                    tx.update(UsageItem(partition, month_key(month, shard)), actions=actions)
                for sort_key, _ in changes:
                    # Still there: no other folder has added it.
                    tx.delete(UsageItem(shard, sort_key), condition=UsageItem.sk.exists())
        except TransactWriteError as error:
            if failed_condition(error) is not None or conflicted(error):
                raise _Contended() from error
            raise


class _Contended(Exception):
    """Another folder of the shard committed or is committing first."""
