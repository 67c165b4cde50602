"""Folds a shard's bytes changes into its tenant's month items.

Fed as the counts are (app.fold_counts, change_stream.fold_changes): every
bytes change is written with a count change in the same shard and
transaction, so the stream's record of that one names the shard. A fold is
a transaction that adds the changes to their months (ADD net bytes and
byte-milliseconds to the month's end, chalicelib.usage.ledger) and deletes
them on the condition that they are still there: a reader finds each change
in exactly one place, and two folders of a shard never add one twice. Month
items are per shard, so folders of one tenant's shards never conflict.

The same transaction applies the changes that start or end a request's hold
of its CID to the CID's hold item, on the condition that its version is the
one read, and ADDs what the holds book to the operator's month items
(chalicelib.usage.unique): folders of two shards whose changes meet on a
CID cannot both apply theirs to the same hold; the later one folds again.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.busy import StorageBusy
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import conflicted, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.count_folder import BACKOFF_BASE_S, FOLD_ATTEMPTS, TRANSACTION_ITEMS
from chalicelib.storage.pin_keys import tenant_of_shard
from chalicelib.storage.usage_item import UsageItem
from chalicelib.storage.usage_keys import (
    HOLD_SORT_KEY,
    OPERATOR_PARTITION,
    USAGE_CHANGES,
    hold_partition,
    month_key,
    usage_partition,
)
from chalicelib.usage.ledger import BytesChange, FoldedMonth
from chalicelib.usage.unique import CidHold, HoldChange, held_after, operator_shard

# Changes per transaction, leaving room for their CIDs' holds and the month
# items, the tenant's and the operator's; a fold whose items would still be
# too many takes half as many changes.
CHANGES_PER_FOLD = 40


@dataclass(frozen=True)
class _Pending:
    sort_key: str
    change: BytesChange
    hold: HoldChange | None


def _pending(shard: str, limit: int | None = None) -> list[_Pending]:
    items = UsageItem.query(
        shard, UsageItem.sk.startswith(USAGE_CHANGES), consistent_read=True, limit=limit, page_size=limit
    )
    return [_pending_of(item) for item in items]


def _pending_of(item: UsageItem) -> _Pending:
    at = item.at_ms or 0
    change = BytesChange(at, item.delta or 0, item.cold_delta or 0, item.filecoin_delta or 0)
    hold = HoldChange(item.cid, at, item.hold, item.size or 0) if item.cid and item.hold else None
    return _Pending(item.sk, change, hold)


def shard_changes(shard: str, limit: int | None = None) -> list[tuple[str, BytesChange]]:
    """The shard's bytes changes not folded yet (sort key, change), oldest write first."""
    return [(pending.sort_key, pending.change) for pending in _pending(shard, limit)]


def read_holds(cids: Collection[str]) -> dict[str, CidHold]:
    """The CIDs' holds as stored (CidHold(): never held)."""
    keys = [(hold_partition(cid), HOLD_SORT_KEY) for cid in cids]
    holds = {cid: CidHold() for cid in cids}
    if not keys:  # a fold of changes that start or end no hold reads nothing
        return holds
    for item in UsageItem.batch_get(keys, consistent_read=True):
        holds[item.pk.removeprefix(hold_partition(""))] = CidHold(
            item.refs or 0, item.size or 0, item.since, item.until, item.version or 0
        )
    return holds


@dataclass
class _Plan:
    """What one fold transaction writes."""

    months: dict[tuple[str, str], FoldedMonth] = field(default_factory=lambda: defaultdict(FoldedMonth))
    holds: dict[str, tuple[CidHold, CidHold]] = field(default_factory=dict)  # CID: (read, written)

    @property
    def items(self) -> int:
        return len(self.months) + len(self.holds)


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
            while changes := _pending(shard, CHANGES_PER_FOLD):
                try:
                    changes = self._commit(shard, changes)
                except _Contended:
                    attempts += 1
                    if attempts == FOLD_ATTEMPTS:
                        raise StorageBusy(f"folding usage of {shard} kept meeting another folder") from None
                    self._sleep(random.uniform(0, BACKOFF_BASE_S * 2**attempts))
                    continue
                folded += len(changes)
        return folded

    def _commit(self, shard: str, changes: list[_Pending]) -> list[_Pending]:
        """Folds `changes` (or the first of them that fit one transaction); returns those folded."""
        plan = _plan(shard, changes)
        while len(changes) > 1 and plan.items + len(changes) > TRANSACTION_ITEMS:
            changes = changes[: len(changes) // 2]
            plan = _plan(shard, changes)
        try:
            with self._dynamo.transaction() as tx:
                for (partition, sort_key), totals in plan.months.items():
                    tx.update(UsageItem(partition, sort_key), actions=_month_actions(totals))
                for cid, (read, written) in plan.holds.items():
                    tx.save(_hold_item(cid, written), condition=_unchanged(read))
                for pending in changes:
                    # Still there: no other folder has added it.
                    tx.delete(UsageItem(shard, pending.sort_key), condition=UsageItem.sk.exists())
        except TransactWriteError as error:
            if failed_condition(error) is not None or conflicted(error):
                raise _Contended() from error
            raise
        return changes


def _plan(shard: str, changes: list[_Pending]) -> _Plan:
    plan = _Plan()
    partition = usage_partition(tenant_of_shard(shard))
    for pending in changes:
        key = (partition, month_key(pending.change.month.text, shard))
        plan.months[key] = plan.months[key].plus(pending.change)
    by_cid: dict[str, list[HoldChange]] = defaultdict(list)
    for pending in changes:
        if pending.hold is not None:
            by_cid[pending.hold.cid].append(pending.hold)
    for cid, read in read_holds(by_cid).items():
        written, booked = held_after(read, by_cid[cid])
        plan.holds[cid] = (read, written)
        for change in booked:
            key = (OPERATOR_PARTITION, month_key(change.month.text, str(operator_shard(cid))))
            plan.months[key] = plan.months[key].plus(change)
    return plan


def _month_actions(totals: FoldedMonth) -> list[Action]:
    figures = (
        (UsageItem.net, totals.net),
        (UsageItem.byte_ms, totals.byte_ms),
        (UsageItem.cold_net, totals.cold_net),
        (UsageItem.cold_byte_ms, totals.cold_byte_ms),
        (UsageItem.filecoin_net, totals.filecoin_net),
        (UsageItem.filecoin_byte_ms, totals.filecoin_byte_ms),
    )
    # net and byte_ms always, so that the item exists once a month has a change.
    return [attribute.add(value) for n, (attribute, value) in enumerate(figures) if value or n < 2]


def _hold_item(cid: str, hold: CidHold) -> UsageItem:
    return UsageItem(
        hold_partition(cid),
        HOLD_SORT_KEY,
        refs=hold.refs,
        size=hold.size,
        since=hold.since,
        until=hold.until,
        version=hold.version,
    )


def _unchanged(read: CidHold) -> Condition:
    """The hold is still as read: no other folder applied changes to it since."""
    return UsageItem.version == read.version if read.version else UsageItem.pk.does_not_exist()


class _Contended(Exception):
    """Another folder of the shard committed or is committing first."""
