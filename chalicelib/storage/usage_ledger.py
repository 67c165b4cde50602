"""A tenant's bytes ledger from the pins table (chalicelib.usage.ledger).

Read as the counts are (pin_store.PinStore._count): the changes not folded
yet, then the month items, then the changes again only if there were some.
A change read first and still there after the months were read was not
folded when they were: it is counted once, from the changes. If one was
folded meanwhile it may be in the months too: read again. A change not read
first was folded before (the months read after hold it) or written since
(a concurrent write, counted whole or not at all): each is counted once.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable

from chalicelib.busy import StorageBusy
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.pin_keys import MAX_MS, shard_key
from chalicelib.storage.pin_store import CONFLICT_BACKOFF_BASE_S, COUNT_ATTEMPTS
from chalicelib.storage.shard_plan import ShardPlans
from chalicelib.storage.usage_folder import shard_changes
from chalicelib.storage.usage_item import UsageItem
from chalicelib.storage.usage_keys import MONTHS, OPERATOR_PARTITION, month_of_key, usage_partition
from chalicelib.usage.ledger import BytesChange, BytesLedger, FoldedMonth
from chalicelib.usage.months import Month


class DynamoUsageLedger:
    def __init__(self, plans: ShardPlans, sleep: Callable[[float], None] = time.sleep) -> None:
        self._plans = plans
        self._sleep = sleep

    def ledger(self, tenant_id: str) -> BytesLedger:
        """One Query per shard for the changes, one for the months, and the
        changes again only when some were found."""
        with busy_as_storage_busy():
            shards = [shard_key(tenant_id, shard) for shard in self._plans.of(tenant_id).shards_until(MAX_MS)]
            changes = _changes(shards)
            for attempt in range(COUNT_ATTEMPTS):
                months = _months(usage_partition(tenant_id))
                again = _changes(shards) if changes else {}
                if changes.keys() <= again.keys():
                    return BytesLedger(months, list(changes.values()))
                changes = again
                self._sleep(random.uniform(0, CONFLICT_BACKOFF_BASE_S * 2**attempt))
        raise StorageBusy(f"the usage was folded during each of {COUNT_ATTEMPTS} reads")


def _changes(shards: list[str]) -> dict[tuple[str, str], BytesChange]:
    return {(shard, sort_key): change for shard in shards for sort_key, change in shard_changes(shard)}


class DynamoOperatorLedger:
    """The operator's months of unique bytes (chalicelib.usage.unique): one Query."""

    @busy_as_storage_busy()
    def operator_ledger(self) -> BytesLedger:
        return BytesLedger(_months(OPERATOR_PARTITION))


def _months(partition: str) -> dict[Month, FoldedMonth]:
    months: dict[Month, FoldedMonth] = defaultdict(FoldedMonth)
    for item in UsageItem.query(partition, UsageItem.sk.startswith(MONTHS), consistent_read=True):
        month = Month.parse(month_of_key(item.sk))
        months[month] = months[month].added(
            FoldedMonth(
                item.net or 0,
                item.byte_ms or 0,
                item.cold_net or 0,
                item.cold_byte_ms or 0,
                item.filecoin_net or 0,
                item.filecoin_byte_ms or 0,
            )
        )
    return dict(months)
