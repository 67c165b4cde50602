"""The pins table behind chalicelib.pins.repository.PinRepository, with
exact counts by status and time.

Every change to a pin (create, delete, update) is one DynamoDB transaction
over the pin's own items (chalicelib.storage.pin_keys: the pin, its status
copy, its index entries), a record of how it changes the counts, and its
outbox message, so an index or a count can never disagree with the pins.
No item in it is shared with another pin: concurrent writers of a tenant
never conflict (counters every write touched would serialise them). The
changes are folded into each shard's counter tree afterwards
(chalicelib.storage.count_folder); a count reads the changes not folded
yet, then the tree, and so sees every change at least once (a fold in
between moves it into the tree read after). It reads the changes again
only when it found some: those still there were not in the tree it read,
so each is counted once; if one was folded meanwhile, it reads again. A
list page without `before` finds its changes atop the streams it reads for
its pins (pin_keys), in the same requests: with the tree, two requests.

Pins go in and come out as domain values; PinItem never leaves this package.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import And, Condition, Or
from pynamodb.expressions.update import Action
from pynamodb.pagination import ResultIterator
from pynamodb.transactions import TransactWrite

from chalicelib.busy import StorageBusy
from chalicelib.pins.idempotency import Claimed, IdempotencyClaim
from chalicelib.pins.model import STATUSES, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import ClaimTaken, CreatedTaken, StaleRecord
from chalicelib.pins.scan_limit import (
    DEFAULT_MAX_SCANNED_PINS,
    check_meta_scan,
    check_scan,
    indexed_pairs,
    scan_too_slow,
    scans_time_range,
)
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.attributes import at_version
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import conflicted, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.outbox_entry import entry_of
from chalicelib.storage.pin_counter import FANOUT, range_blocks, read_buckets, slot_count
from chalicelib.storage.pin_item import PinItem, plain_map
from chalicelib.storage.pin_keys import (
    BY_CID,
    BY_FOLDED_NAME,
    BY_META,
    BY_NAME,
    CLAIM_SORT_KEY,
    MAX_MS,
    META_OVERFLOW,
    META_SORT_KEY,
    STATUS_CODES,
    change_id,
    change_of,
    change_sort_keys,
    changes_range,
    claim_key,
    created_of,
    created_of_change,
    digest,
    entry_key,
    entry_prefix,
    event_sort_key,
    meta_key,
    pair_digest,
    pin_sort_key,
    shard_key,
    status_prefix,
    stream_prefixes,
)
from chalicelib.storage.shard_plan import ShardPlans
from chalicelib.storage.usage_changes import usage_change_items
from chalicelib.webhooks.info_events import info_events

ALL_STATUSES = frozenset(STATUSES)
# An event item outlives the stream's 24 hours, in which the webhooks read it.
EVENT_TTL_SECONDS = 2 * 24 * 3600
# A transaction that conflicts with another is retried this many times, after
# uniform(0, CONFLICT_BACKOFF_BASE_S * 2**attempt) seconds each.
CONFLICT_RETRIES = 6
CONFLICT_BACKOFF_BASE_S = 0.02
# A scan of a time range stops here and is refused: API Gateway gives up at
# 29 s and the API function at 30 s. The pin count limit keeps ordinary pins
# far below it; this catches ranges of unusually large ones (16 KB of meta).
SCAN_SECONDS = 20.0
# Index entries are ~60 bytes: a page of them is one or two read units.
ENTRY_PAGE = 100
FIRST_LOCKSTEP_PAGE = 4
BATCH_GET_KEYS = 100  # BatchGetItem's limit
# Meta larger than this (as JSON) is kept in an item of its own, written once,
# not in the pin and its status copy that every status change rewrites; a
# pin as Kubo sends it stays under 1 KB of write unit with its meta.
META_INLINE_BYTES = 1024
# Requests to several shards (a list's first pages, a count's changes) at once.
PARALLEL_READS = 16
T = TypeVar("T")
R = TypeVar("R")
# A count whose changes were folded while it read is read again, this many times in all.
COUNT_ATTEMPTS = 5
# Changes not folded yet that a count read: change id -> status codes before, after.
Changes = dict[str, tuple[str | None, str | None]]


@dataclass
class _ScanDeadline:
    """When a scan's streams must stop, and how many pins they have read."""

    clock: Callable[[], float]
    at: float
    read: int = 0

    def page_read(self, scanned: int) -> None:
        self.read += scanned
        if self.clock() > self.at:
            raise scan_too_slow(self.read, SCAN_SECONDS)


def _items_until(deadline: _ScanDeadline | None, results: ResultIterator[PinItem]) -> Iterator[PinItem]:
    """The items of `results`, looking at the deadline after every page (a
    filter may drop every item of a page, so items alone would not do)."""
    for page in results.page_iter:
        if deadline is not None:
            deadline.page_read(page["ScannedCount"])
        for item in page.get("Items", []):
            yield PinItem.from_raw_data(item)


class _ConditionFailed(Exception):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


@dataclass(frozen=True)
class CountChange:
    """What one write does to the counts: the pin's status before and after
    (None where it does not exist), at the pin's version after the write."""

    shard: str
    pin: Pin
    version: int
    before: str | None
    after: str | None

    @property
    def items(self) -> list[PinItem]:
        """Its two items, atop the streams whose counts it changes."""
        was, now = STATUS_CODES.get(self.before or ""), STATUS_CODES.get(self.after or "")
        change = change_id(self.pin.created_ms, self.pin.request_id, self.version)
        return [PinItem(self.shard, key, was=was, now=now) for key in change_sort_keys(change, was, now)]


def fold(name: str) -> str:
    return name.casefold()


class PinStore:
    def __init__(
        self,
        dynamo: DynamoConnection,
        conflict_retries: int = CONFLICT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        max_scanned_pins: int = DEFAULT_MAX_SCANNED_PINS,
        clock: Callable[[], float] = time.monotonic,
        plans: ShardPlans | None = None,
    ) -> None:
        self.dynamo = dynamo
        self._conflict_retries = conflict_retries
        self._sleep = sleep
        self._max_scanned_pins = max_scanned_pins
        self._clock = clock
        self.plans = ShardPlans() if plans is None else plans
        # When a write changes its tenant's bytes pinned (chalicelib.storage.usage_changes).
        self.usage_clock: Callable[[], int] = now_ms

    def _shard_of(self, tenant_id: str, created_ms: int) -> str:
        return shard_key(tenant_id, self.plans.of(tenant_id).shard_of(created_ms))

    def _shards(self, tenant_id: str, hi_ms: int) -> list[str]:
        """The partition keys of every shard holding pins created up to `hi_ms`."""
        return [shard_key(tenant_id, shard) for shard in self.plans.of(tenant_id).shards_until(hi_ms)]

    def get(self, tenant_id: str, created_ms: int) -> Pin | None:
        with busy_as_storage_busy():
            shard = self._shard_of(tenant_id, created_ms)
            try:
                item = PinItem.get(shard, pin_sort_key(created_ms), consistent_read=True)
            except PinItem.DoesNotExist:
                return None
            return next(_pins_of(tenant_id, [item]))

    # -- writes --------------------------------------------------------------

    def create(
        self, pin: Pin, announce: OutboxMessage, replacing: Pin | None = None, claim: IdempotencyClaim | None = None
    ) -> None:
        with busy_as_storage_busy():
            shard = self._shard_of(pin.tenant_id, pin.created_ms)
            old_shard = None if replacing is None else self._shard_of(replacing.tenant_id, replacing.created_ms)
        changes = [CountChange(shard, pin, pin.version, None, pin.status)]
        deleted: list[PinItem] = []
        if replacing is not None and old_shard is not None:
            changes.append(CountChange(old_shard, replacing, replacing.version + 1, replacing.status, None))
            deleted = _index_items(old_shard, replacing) + _meta_apart(replacing)
        # DynamoDB reports a transaction's items deletes first, then puts:
        # where a failed condition is tells whose it was.
        claim_at = 1 + len(deleted) if replacing is not None else 0
        usage = [] if old_shard is None else usage_change_items(old_shard, replacing, None, self.usage_clock())

        def fill(tx: TransactWrite) -> None:
            if replacing is not None and old_shard is not None:
                tx.delete(PinItem(old_shard, pin_sort_key(replacing.created_ms)), condition=_unchanged(replacing))
                for item in deleted:
                    tx.delete(item)
            if claim is not None:
                tx.save(_claim_item(pin, claim), condition=_claimable(pin.created_ms))
            # Create-if-absent is atomic by construction: no version to check.
            tx.save(_pin_item(shard, pin), condition=PinItem.sk.does_not_exist())
            for item in _index_items(shard, pin) + _meta_apart(pin):
                tx.save(item)
            for change in changes:
                for item in change.items:
                    tx.save(item)
            for usage_item in usage:
                tx.save(usage_item)
            tx.save(entry_of(announce))

        try:
            self._transact(fill)
        except _ConditionFailed as failed:
            if replacing is not None and failed.position == 0:
                raise StaleRecord() from failed
            if claim is not None and failed.position == claim_at:
                raise ClaimTaken() from failed
            raise CreatedTaken() from failed

    def claimed(self, tenant_id: str, key: str, now_ms: int) -> Claimed | None:
        with busy_as_storage_busy():
            try:
                item = PinItem.get(claim_key(tenant_id, key), CLAIM_SORT_KEY, consistent_read=True)
            except PinItem.DoesNotExist:
                return None
        if (item.expires_ms or 0) <= now_ms:
            return None  # expired; DynamoDB's TTL deletes it within days
        return Claimed(item.fingerprint or "", _pin_of(tenant_id, item))

    def delete(self, pin: Pin, announce: OutboxMessage) -> None:
        with busy_as_storage_busy():
            shard = self._shard_of(pin.tenant_id, pin.created_ms)

        def fill(tx: TransactWrite) -> None:
            tx.delete(PinItem(shard, pin_sort_key(pin.created_ms)), condition=_unchanged(pin))
            for item in _index_items(shard, pin) + _meta_apart(pin):
                tx.delete(item)
            for item in CountChange(shard, pin, pin.version + 1, pin.status, None).items:
                tx.save(item)
            for usage_item in usage_change_items(shard, pin, None, self.usage_clock()):
                tx.save(usage_item)
            tx.save(entry_of(announce))

        try:
            self._transact(fill)
        except _ConditionFailed as failed:
            raise StaleRecord() from failed

    def update(
        self,
        pin: Pin,
        *,
        status: str | None = None,
        info: Mapping[str, str] | None = None,
        node_ids: Sequence[str] | None = None,
    ) -> Pin:
        updated = pin.updated(status, info, node_ids)
        with busy_as_storage_busy():
            shard = self._shard_of(pin.tenant_id, pin.created_ms)
        actions: list[Action] = [PinItem.version.set(updated.version)]
        if status is not None:
            actions.append(PinItem.status.set(status))
        if info is not None:
            actions.append(PinItem.info.set(dict(info)))
        if node_ids is not None:
            actions.append(PinItem.node_ids.set(list(node_ids)))
        moved = updated.status != pin.status
        # The cold-tier and Filecoin events of the change, for the webhooks (none on the pinning path).
        events = [_event_item(shard, updated, *event) for event in info_events(pin.info, updated.info)]

        def fill(tx: TransactWrite) -> None:
            if moved:
                tx.delete(_status_copy(shard, pin))
            tx.update(PinItem(shard, pin_sort_key(pin.created_ms)), actions=actions, condition=_unchanged(pin))
            # The copies listed by status, CID and name are the pin as now stored.
            for item in _copies(shard, updated):
                tx.save(item)
            if moved:
                for item in CountChange(shard, pin, updated.version, pin.status, updated.status).items:
                    tx.save(item)
            for usage_item in usage_change_items(shard, pin, updated, self.usage_clock()):
                tx.save(usage_item)
            for event in events:
                tx.save(event)

        try:
            self._transact(fill)
        except _ConditionFailed as failed:
            raise StaleRecord() from failed
        return updated

    def event_data(self, shard: str, sort_key: str) -> dict[str, str] | None:
        """The data of a request's event item (pin_keys.event_sort_key); None once expired."""
        with busy_as_storage_busy():
            try:
                item = PinItem.get(shard, sort_key, consistent_read=True)
            except PinItem.DoesNotExist:
                return None
        return {"cid": item.cid or "", **plain_map(item.info)}

    def _transact(self, fill: Callable[[TransactWrite], None]) -> None:
        """Runs one transaction; retries it (a bounded number of times, with
        backoff) while it conflicts with another, then raises StorageBusy."""
        with busy_as_storage_busy():
            for attempt in range(self._conflict_retries + 1):
                try:
                    with self.dynamo.transaction() as tx:
                        fill(tx)
                    return
                except TransactWriteError as error:
                    failed = failed_condition(error)
                    if failed is not None:
                        raise _ConditionFailed(failed) from error
                    # Writers of one pin (an API request and a worker) may meet.
                    if not conflicted(error) or attempt == self._conflict_retries:
                        raise
                    self._sleep(random.uniform(0, CONFLICT_BACKOFF_BASE_S * 2**attempt))

    # -- reads ---------------------------------------------------------------

    def find(self, tenant_id: str, query: PinQuery) -> tuple[list[Pin], int]:
        lo, hi = _ms_range(query)
        if lo > hi:
            return [], 0
        with busy_as_storage_busy():
            return self._find(tenant_id, query, lo, hi)

    def _find(self, tenant_id: str, query: PinQuery, lo: int, hi: int) -> tuple[list[Pin], int]:
        shards = self._shards(tenant_id, hi)
        if query.cid_keys:
            prefixes = [entry_prefix(BY_CID, cid) for cid in query.cid_keys]
            residual = query.name is not None or bool(query.meta)
            return self._from_entries(tenant_id, shards, prefixes, query, lo, hi, residual)
        if query.name is not None and query.match in ("exact", "iexact"):
            kind, name = (BY_NAME, query.name) if query.match == "exact" else (BY_FOLDED_NAME, fold(query.name))
            prefixes = [entry_prefix(kind, digest(name))]
            return self._from_entries(tenant_id, shards, prefixes, query, lo, hi, bool(query.meta))
        if query.meta:
            candidates = self._meta_candidates(shards, query.meta, lo, hi)
            if candidates is not None:
                return self._matching(tenant_id, shards, candidates, query)
            # Every pair matches too many pins: reading the time range may still do.
            check_meta_scan(query, None, self.count(tenant_id, query.statuses, lo, hi), self._max_scanned_pins)
            return self._page_and_count(tenant_id, self._scan(shards, query.statuses, lo, hi), query)
        if scans_time_range(query):
            # Refused before a pin is read when the range holds too many.
            check_scan(query, self.count(tenant_id, query.statuses, lo, hi), self._max_scanned_pins)
            return self._page_and_count(tenant_id, self._scan(shards, query.statuses, lo, hi), query)
        # One shard reads the page in one request; the pins of several are
        # spread evenly over them, so each gives its share and one to spare.
        page_size = query.limit if len(shards) == 1 else -(-query.limit // len(shards)) + 1
        if hi < MAX_MS:
            return self._page_before(tenant_id, shards, query, lo, hi, page_size)
        # Without `before`, each stream's top holds its changes: read with its first pins.
        changes: Changes = {}
        pins = self._pins_newest_first(shards, query.statuses, lo, hi, page_size, None, changes)
        count = self._count(shards, query.statuses, lo, hi, changes)
        return list(_pins_of(tenant_id, itertools.islice(pins, query.limit))), count

    def _page_before(
        self, tenant_id: str, shards: Sequence[str], query: PinQuery, lo: int, hi: int, page_size: int
    ) -> tuple[list[Pin], int]:
        """A page with `before`: its streams' first pages, then the count.
        The pins of the last 64 ms of the range, which the tree would count
        in a bucket of their own, are counted from those pages instead when
        the pages reach below them (unless the 64 ms hold a page of pins)."""
        window = max(lo, (hi + 1) // FANOUT * FANOUT)
        streams = [(shard, prefix) for shard in shards for prefix in stream_prefixes(query.statuses)]
        firsts = list(_in_parallel(lambda stream: _first_page(*stream, lo, hi, page_size), streams))
        if all(ended or (items and created_of(items[-1].sk) < window) for items, ended, _ in firsts):
            count = sum(created_of(item.sk) >= window for items, _, _ in firsts for item in items)
            if lo < window:
                rest = _read_changes(shards, query.statuses, lo, window - 1)
                count += self._count(shards, query.statuses, lo, window - 1, rest)
        else:
            count = self._count(shards, query.statuses, lo, hi, _read_changes(shards, query.statuses, lo, hi))
        pins = _newest_first(stream for _, _, stream in firsts)
        return list(_pins_of(tenant_id, itertools.islice(pins, query.limit))), count

    def _pins_newest_first(
        self,
        shards: Sequence[str],
        statuses: frozenset[str],
        lo: int,
        hi: int,
        page_size: int,
        deadline: _ScanDeadline | None,
        changes: Changes | None = None,
    ) -> Iterator[PinItem]:
        """The pins of `statuses` created in [lo, hi] ms, newest first: the
        pins themselves when every status is wanted, else their status copies.
        With `changes` (for a range up to MAX_MS), the streams are read from
        their tops and the changes of pins created in [lo, hi] go there: all
        of them once this returns, as each stream's first pin is read."""
        if changes is None:
            streams = [
                _query(shard, prefix, lo, hi, page_size, deadline)
                for shard in shards
                for prefix in stream_prefixes(statuses)
            ]
        else:
            streams = [
                _pins_below_changes(shard, prefix, lo, page_size, changes)
                for shard in shards
                for prefix in stream_prefixes(statuses)
            ]
        return _newest_first(streams)

    def _scan(self, shards: Sequence[str], statuses: frozenset[str], lo: int, hi: int) -> Iterator[PinItem]:
        """Every pin of `statuses` in [lo, hi], stopped with QueryTooBroad at the deadline."""
        deadline = _ScanDeadline(self._clock, self._clock() + SCAN_SECONDS)
        return self._pins_newest_first(shards, statuses, lo, hi, ENTRY_PAGE, deadline)

    @staticmethod
    def _page_and_count(tenant_id: str, items: Iterable[PinItem], query: PinQuery) -> tuple[list[Pin], int]:
        return _page_and_count(_pins_of(tenant_id, items), query)

    def _from_entries(
        self,
        tenant_id: str,
        shards: Sequence[str],
        prefixes: Sequence[str],
        query: PinQuery,
        lo: int,
        hi: int,
        residual: bool,
    ) -> tuple[list[Pin], int]:
        """A query answered by the pins' copies listed by CID or name: read
        like the pins, in one request per value and shard (with another
        filter, under the scans' deadline)."""
        deadline = _ScanDeadline(self._clock, self._clock() + SCAN_SECONDS) if residual else None
        copies = _newest_first(
            _query(shard, prefix, lo, hi, ENTRY_PAGE, deadline) for shard in shards for prefix in prefixes
        )
        return self._page_and_count(tenant_id, (copy for copy in copies if copy.status in query.statuses), query)

    def _matching(
        self, tenant_id: str, shards: Sequence[str], created: Sequence[int], query: PinQuery
    ) -> tuple[list[Pin], int]:
        """Reads the pins created at these milliseconds (newest first) and
        keeps those the whole query selects."""
        # Candidates of large pins (16 KB of meta) could outrun the function: the scans' deadline.
        deadline = _ScanDeadline(self._clock, self._clock() + SCAN_SECONDS)
        pins = self._read_pins(tenant_id, created, deadline)
        return _page_and_count((pin for pin in pins if pin is not None), query)

    def _read_pins(
        self, tenant_id: str, created: Sequence[int], deadline: _ScanDeadline | None = None
    ) -> Iterator[Pin | None]:
        """The pins created at these milliseconds, in that order (None where
        gone), 100 keys per strongly consistent BatchGetItem."""
        for start in range(0, len(created), BATCH_GET_KEYS):
            chunk = created[start : start + BATCH_GET_KEYS]
            keys = [(self._shard_of(tenant_id, ms), pin_sort_key(ms)) for ms in chunk]
            found = {pin.created_ms: pin for pin in _pins_of(tenant_id, PinItem.batch_get(keys, consistent_read=True))}
            if deadline is not None:
                deadline.page_read(len(chunk))
            yield from (found.get(ms) for ms in chunk)

    def _meta_candidates(self, shards: Sequence[str], meta: Mapping[str, str], lo: int, hi: int) -> list[int] | None:
        """The pins a meta filter may select, newest first: those holding its
        rarest pair, found by reading every pair's entries in lockstep until
        one ends, and the pins with more pairs than are indexed. None when
        each pair matches more pins than one request may read."""
        pairs = [entry_prefix(BY_META, pair_digest(key, value)) for key, value in sorted(meta.items())]
        streams = [_newest_first(_growing(shard, prefix, lo, hi) for shard in shards) for prefix in pairs]
        read: list[list[int]] = [[] for _ in streams]
        rarest: list[int] | None = None
        while rarest is None and len(read[0]) <= self._max_scanned_pins:
            for stream, taken in zip(streams, read, strict=True):
                entry = next(stream, None)
                if entry is None:
                    rarest = taken
                    break
                taken.append(created_of(entry.sk))
        if rarest is None:
            return None
        overflow = entry_prefix(BY_META, META_OVERFLOW)
        for entry in _newest_first(_query(shard, overflow, lo, hi, ENTRY_PAGE, None) for shard in shards):
            rarest.append(created_of(entry.sk))
            if len(rarest) > self._max_scanned_pins:
                return None
        return sorted(set(rarest), reverse=True)

    def count(self, tenant_id: str, statuses: frozenset[str], lo: int, hi: int) -> int:
        """Pins of `statuses` created in [lo, hi] ms: per shard, the changes
        not folded yet, then at most 13 tree buckets (one BatchGetItem per
        100), and the changes again only if there were some."""
        if lo > hi:
            return 0
        with busy_as_storage_busy():
            shards = self._shards(tenant_id, hi)
            return self._count(shards, statuses, lo, hi, _read_changes(shards, statuses, lo, hi))

    def _count(self, shards: Sequence[str], statuses: frozenset[str], lo: int, hi: int, changes: Changes) -> int:
        """The count from `changes`, read before this is called, and the tree.

        A change read then and still there after the tree is read was not
        folded when the tree was read: it is counted once, from the changes.
        One folded meanwhile may be in the tree too: then it starts again
        from the changes read last. A change that is not in `changes` was
        folded before they were read (the tree read after holds it) or was
        written since (a concurrent write, counted or not, whole). The tree's
        slots count each pin in one bucket (range_blocks), so a fold during
        the tree's read changes the count by whole changes too."""
        blocks = [block for shard in shards for block in range_blocks(shard, lo, hi + 1)]
        codes = {STATUS_CODES[status] for status in statuses}
        connection = self.dynamo.connection
        for attempt in range(COUNT_ATTEMPTS):
            trees = read_buckets(connection, {bucket for bucket, _ in blocks}, self._sleep)
            again = _read_changes(shards, statuses, lo, hi) if changes else {}
            if changes.keys() <= again.keys():
                folded = sum(slot_count(trees[bucket], slots, statuses) for bucket, slots in blocks)
                return folded + sum((now in codes) - (was in codes) for was, now in changes.values())
            changes = again
            self._sleep(random.uniform(0, CONFLICT_BACKOFF_BASE_S * 2**attempt))
        raise StorageBusy(f"the counts were folded during each of {COUNT_ATTEMPTS} reads")


def _read_changes(shards: Sequence[str], statuses: frozenset[str], lo: int, hi: int) -> Changes:
    """The changes not folded yet of pins of `statuses` created in [lo, hi],
    from the top of every stream that lists them, the shards in parallel."""
    streams = [(shard, prefix) for shard in shards for prefix in stream_prefixes(statuses)]

    def read(stream: tuple[str, str]) -> Changes:
        shard, prefix = stream
        start, end = changes_range(prefix, lo, hi)
        items = PinItem.query(shard, PinItem.sk.between(start, end), consistent_read=True)
        return {change: (item.was, item.now) for item in items if (change := change_of(prefix, item.sk))}

    found: Changes = {}
    for changes in _in_parallel(read, streams):
        found.update(changes)
    return found


def _first_page(
    shard: str, prefix: str, lo: int, hi: int, page_size: int
) -> tuple[list[PinItem], bool, Iterator[PinItem]]:
    """A stream's first page of items (newest first), whether it is the
    last, and the whole stream (read on as consumed)."""
    results = _newest(shard, prefix, lo, hi, page_size=page_size)
    pages = results.page_iter
    first = [PinItem.from_raw_data(item) for item in next(pages).get("Items", [])]
    rest = (PinItem.from_raw_data(item) for page in pages for item in page.get("Items", []))
    return first, not pages.last_evaluated_key, itertools.chain(first, rest)


def _pins_below_changes(shard: str, prefix: str, lo: int, page_size: int, changes: Changes) -> Iterator[PinItem]:
    """A stream's pins created from `lo` on, newest first, read from the
    stream's top: its changes (which sort above its pins) of pins created
    from `lo` on go to `changes` as they are met."""
    _, top = changes_range(prefix, 0, MAX_MS)
    between = PinItem.sk.between(entry_key(prefix, lo), top)
    for item in PinItem.query(shard, between, consistent_read=True, scan_index_forward=False, page_size=page_size):
        change = change_of(prefix, item.sk)
        if change is None:
            yield item
        elif created_of_change(change) >= lo:
            changes[change] = (item.was, item.now)


def _newest(shard: str, prefix: str, lo: int, hi: int, **paging: Any) -> ResultIterator[PinItem]:
    """The shard's items under `prefix` created in [lo, hi] ms, newest first, strongly consistent."""
    between = PinItem.sk.between(entry_key(prefix, lo), entry_key(prefix, hi))
    return PinItem.query(shard, between, consistent_read=True, scan_index_forward=False, **paging)


def _query(
    shard: str, prefix: str, lo: int, hi: int, page_size: int, deadline: _ScanDeadline | None
) -> Iterator[PinItem]:
    """_newest, read a page at a time as it is consumed."""
    return _items_until(deadline, _newest(shard, prefix, lo, hi, page_size=page_size))


def _growing(shard: str, prefix: str, lo: int, hi: int) -> Iterator[PinItem]:
    """_newest, in pages that start small and double: streams read in
    lockstep until the shortest ends read about as much as it holds, not a
    full page each."""
    start: dict[str, dict[str, Any]] | None = None
    size = FIRST_LOCKSTEP_PAGE
    while True:
        results = _newest(shard, prefix, lo, hi, limit=size, page_size=size, last_evaluated_key=start)
        yield from results
        start = results.last_evaluated_key
        if not start:
            return
        size = min(2 * size, ENTRY_PAGE)


def _newest_first(streams: Iterable[Iterator[PinItem]]) -> Iterator[PinItem]:
    """Streams that are each newest first, merged. No pin is in two: it has
    one shard, one status and one CID. Their first pages are read at once,
    so a tenant of many shards waits for one request, not one per shard."""
    return heapq.merge(*_started(list(streams)), key=lambda item: created_of(item.sk), reverse=True)


def _started(streams: list[Iterator[T]]) -> list[Iterator[T]]:
    """The streams, each with its first item (its first request) already read, in parallel."""
    firsts = list(_in_parallel(lambda stream: list(itertools.islice(stream, 1)), streams))
    return [itertools.chain(first, stream) for first, stream in zip(firsts, streams, strict=True)]


def _in_parallel(read: Callable[[T], R], streams: Sequence[T]) -> Iterator[R]:
    """`read` of each, in order: at once when there are several (a request each)."""
    return _shard_reads().map(read, streams) if len(streams) > 1 else map(read, streams)


@functools.cache
def _shard_reads() -> ThreadPoolExecutor:
    """One pool per container for reads that go to several shards at once."""
    return ThreadPoolExecutor(max_workers=PARALLEL_READS, thread_name_prefix="shard-read")


def _meta_is_apart(meta: Mapping[str, str]) -> bool:
    return len(json.dumps(dict(meta), ensure_ascii=False).encode("utf-8", "surrogatepass")) > META_INLINE_BYTES


def _meta_apart(pin: Pin) -> list[PinItem]:
    """The item holding the pin's meta when it is too large to copy."""
    if not _meta_is_apart(pin.meta):
        return []
    return [PinItem(meta_key(pin.tenant_id, pin.created_ms), META_SORT_KEY, meta=dict(pin.meta))]


def _pins_of(tenant_id: str, items: Iterable[PinItem]) -> Iterator[Pin]:
    """The pins of pin items (or status copies), with the meta kept apart
    read back in one strongly consistent BatchGetItem per 100 pins."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, BATCH_GET_KEYS)):
        keys = [(meta_key(tenant_id, created_of(item.sk)), META_SORT_KEY) for item in chunk if item.meta_apart]
        apart = (
            {meta.pk: plain_map(meta.meta) for meta in PinItem.batch_get(keys, consistent_read=True)} if keys else {}
        )
        for item in chunk:
            pin = _pin_of(tenant_id, item)
            yield replace(pin, meta=apart.get(meta_key(tenant_id, pin.created_ms), {})) if item.meta_apart else pin


def _claim_item(pin: Pin, claim: IdempotencyClaim) -> PinItem:
    """The claim of an idempotency key: the request it was for and the first
    answer, whole (its meta too: the pin may be gone when a retry comes)."""
    item = _pin_item(claim_key(pin.tenant_id, claim.key), pin, CLAIM_SORT_KEY)
    item.meta = dict(pin.meta) or None
    item.meta_apart = None
    item.created_ms = pin.created_ms
    item.fingerprint = claim.fingerprint
    item.expires_ms = claim.expires_ms
    item.expires = datetime.fromtimestamp(claim.expires_ms / 1000, tz=UTC)
    return item


def _event_item(shard: str, pin: Pin, event_type: str, data: Mapping[str, str]) -> PinItem:
    """An event of the request, kept for the stream's readers until its TTL."""
    expires = datetime.fromtimestamp(time.time() + EVENT_TTL_SECONDS, tz=UTC)
    return PinItem(
        shard,
        event_sort_key(pin.created_ms, pin.request_id, pin.version, event_type),
        cid=pin.cid,
        info=dict(data) or None,
        expires=expires,
    )


def _claimable(now_ms: int) -> Condition:
    """No claim of the key, or one whose window has passed."""
    return Or(PinItem.sk.does_not_exist(), PinItem.expires_ms < now_ms)


def _pin_item(shard: str, pin: Pin, sort_key: str | None = None) -> PinItem:
    """The pin's item (or, with another sort key, its status copy): its meta
    kept apart when large, so that status changes rewrite only small items."""
    apart = _meta_is_apart(pin.meta)
    return PinItem(
        shard,
        sort_key or pin_sort_key(pin.created_ms),
        request_id=pin.request_id,
        status=pin.status,
        cid=pin.cid,
        cid_key=pin.cid_key,
        name=pin.name,
        origins=list(pin.origins) or None,
        meta=None if apart else dict(pin.meta) or None,
        meta_apart=apart or None,
        info=dict(pin.info) or None,
        delegates=list(pin.delegates) or None,
        node_ids=list(pin.node_ids) or None,
        version=pin.version,
    )


def _status_copy(shard: str, pin: Pin) -> PinItem:
    return _pin_item(shard, pin, entry_key(status_prefix(pin.status), pin.created_ms))


def _copies(shard: str, pin: Pin) -> list[PinItem]:
    """The pin's copies that lists read instead of it: by status, CID and
    names. A lookup by CID or name then reads its page in one request, as a
    status list does; every update rewrites them (a few small items)."""
    prefixes = [entry_prefix(BY_CID, pin.cid_key)]
    if pin.name is not None:
        prefixes += [entry_prefix(BY_NAME, digest(pin.name)), entry_prefix(BY_FOLDED_NAME, digest(fold(pin.name)))]
    return [_status_copy(shard, pin)] + [
        _pin_item(shard, pin, entry_key(prefix, pin.created_ms)) for prefix in prefixes
    ]


def _index_items(shard: str, pin: Pin) -> list[PinItem]:
    """Every item of the pin but the pin itself and its change: its copies,
    and an entry per indexed meta pair (or the overflow entry)."""
    pairs = indexed_pairs(pin.meta)
    meta_prefixes = (
        [entry_prefix(BY_META, META_OVERFLOW)]
        if pairs is None
        else [entry_prefix(BY_META, pair_digest(key, value)) for key, value in pairs]
    )
    meta_entries = [PinItem(shard, entry_key(prefix, pin.created_ms)) for prefix in meta_prefixes]
    return [*_copies(shard, pin), *meta_entries]


def _pin_of(tenant_id: str, item: PinItem) -> Pin:
    return Pin(
        tenant_id=tenant_id,
        # A claim's sort key holds no time: it keeps the pin's.
        created_ms=created_of(item.sk) if item.created_ms is None else item.created_ms,
        request_id=item.request_id or "",
        status=item.status or "",
        cid=item.cid or "",
        cid_key=item.cid_key or "",
        name=item.name,
        origins=item.origins or (),
        meta=plain_map(item.meta),
        info=plain_map(item.info),
        delegates=item.delegates or (),
        node_ids=item.node_ids or (),
        version=item.version or 0,
    )


def _unchanged(pin: Pin) -> Condition:
    """The pin is still the request and the version that was read."""
    return And(PinItem.request_id == pin.request_id, at_version(PinItem.version, pin.version))


def _ms_range(query: PinQuery) -> tuple[int, int]:
    """Inclusive millisecond bounds equivalent to the strict ns bounds."""
    lo = 0 if query.after_ns is None else query.after_ns // 1_000_000 + 1
    hi = MAX_MS if query.before_ns is None else -(-query.before_ns // 1_000_000) - 1
    return max(lo, 0), min(hi, MAX_MS)


def _name_matches(name: str | None, wanted: str | None, match: str) -> bool:
    if wanted is None:
        return True
    if name is None:
        return False
    if match == "exact":
        return name == wanted
    if match == "iexact":
        return fold(name) == fold(wanted)
    if match == "partial":
        return wanted in name
    return fold(wanted) in fold(name)


def _page_and_count(pins: Iterable[Pin], query: PinQuery) -> tuple[list[Pin], int]:
    """Counts every match but keeps only the page: memory stays that of one
    page however many pins a filter has to read."""
    page: list[Pin] = []
    count = 0
    for pin in pins:
        if not _matches(pin, query):
            continue
        count += 1
        if len(page) < query.limit:
            page.append(pin)
    return page, count


def _matches(pin: Pin, query: PinQuery) -> bool:
    """Whether the query selects a pin read from its time range."""
    return (
        pin.status in query.statuses
        and (not query.cid_keys or pin.cid_key in query.cid_keys)
        and _name_matches(pin.name, query.name, query.match)
        and all(pin.meta.get(key) == value for key, value in query.meta.items())
    )
