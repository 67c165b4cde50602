"""The pins table behind chalicelib.pins.repository.PinRepository, keeping
the per-status time-bucket counts exact.

Every change to a pin (create, delete, update) is one DynamoDB transaction
that also moves its counts and writes its outbox message, so a count can
never disagree with the pins it counts. Pins go in and come out as domain
values; PinRecord never leaves this package.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import reduce

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.condition import And, Condition
from pynamodb.expressions.operand import Path
from pynamodb.expressions.update import Action
from pynamodb.pagination import ResultIterator
from pynamodb.transactions import TransactWrite

from chalicelib.pins.model import STATUSES, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import CreatedTaken, StaleRecord
from chalicelib.pins.scan_limit import DEFAULT_MAX_SCANNED_PINS, check_scan, scan_too_slow, scans_time_range
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.attributes import at_version
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import cancellation_codes
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.outbox_entry import entry_of
from chalicelib.storage.pin_counter import (
    FANOUT,
    LEVELS,
    BucketCounts,
    Cell,
    PinCounter,
    cells_of,
    count_name,
    prefix_cells,
    read_buckets,
    slot_count,
)
from chalicelib.storage.pin_record import PinRecord, plain_map, sort_key

MAX_MS = 10**13 - 1  # the sort keys hold 13 digits of milliseconds
ALL_STATUSES = frozenset(STATUSES)
# A transaction that conflicts with another is retried this many times, after
# uniform(0, CONFLICT_BACKOFF_BASE_S * 2**attempt) seconds each.
CONFLICT_RETRIES = 6
CONFLICT_BACKOFF_BASE_S = 0.02
# A scan of a time range stops here and is refused: API Gateway gives up at
# 29 s and the API function at 30 s. The pin count limit keeps ordinary pins
# far below it; this catches ranges of unusually large ones (16 KB of meta).
SCAN_SECONDS = 20.0


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


def _records_until(deadline: _ScanDeadline, results: ResultIterator[PinRecord]) -> Iterator[PinRecord]:
    """The records of `results`, looking at the deadline after every page (a
    filter may drop every item of a page, so items alone would not do)."""
    for page in results.page_iter:
        deadline.page_read(page["ScannedCount"])
        for item in page.get("Items", []):
            yield PinRecord.from_raw_data(item)


class _ConditionFailed(Exception):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


# (created_ms, status before, status after); None where the pin does not exist.
CountChange = tuple[int, str | None, str | None]


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
    ) -> None:
        self._dynamo = dynamo
        self._conflict_retries = conflict_retries
        self._sleep = sleep
        self._max_scanned_pins = max_scanned_pins
        self._clock = clock

    def get(self, tenant_id: str, created_ms: int) -> Pin | None:
        with busy_as_storage_busy():
            try:
                return _pin_of(PinRecord.get(tenant_id, created_ms, consistent_read=True))
            except PinRecord.DoesNotExist:
                return None

    # -- writes --------------------------------------------------------------

    def create(self, pin: Pin, announce: OutboxMessage, replacing: Pin | None = None) -> None:
        changes: list[CountChange] = [(pin.created_ms, None, pin.status)]
        if replacing is not None:
            changes.append((replacing.created_ms, replacing.status, None))

        def fill(tx: TransactWrite) -> None:
            if replacing is not None:
                tx.delete(_key_of(replacing), condition=_unchanged(replacing))
            # Create-if-absent is atomic by construction: no version to check.
            tx.save(_record_of(pin), condition=PinRecord.created_ms.does_not_exist())
            self._move_counts(tx, pin.tenant_id, changes)
            tx.save(entry_of(announce))

        try:
            self._transact(fill)
        except _ConditionFailed as failed:
            # A transaction's items are in PynamoDB's order: deletes before puts.
            if replacing is not None and failed.position == 0:
                raise StaleRecord() from failed
            raise CreatedTaken() from failed

    def delete(self, pin: Pin, announce: OutboxMessage) -> None:
        def fill(tx: TransactWrite) -> None:
            tx.delete(_key_of(pin), condition=_unchanged(pin))
            self._move_counts(tx, pin.tenant_id, [(pin.created_ms, pin.status, None)])
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
        actions: list[Action] = [PinRecord.version.set(updated.version)]
        if status is not None:
            actions += [PinRecord.status.set(status), PinRecord.status_sort.set(sort_key(status, pin.created_ms))]
        if info is not None:
            actions.append(PinRecord.info.set(dict(info)))
        if node_ids is not None:
            actions.append(PinRecord.node_ids.set(list(node_ids)))

        def fill(tx: TransactWrite) -> None:
            tx.update(_key_of(pin), actions=actions, condition=_unchanged(pin))
            self._move_counts(tx, pin.tenant_id, [(pin.created_ms, pin.status, updated.status)])

        try:
            self._transact(fill)
        except _ConditionFailed as failed:
            raise StaleRecord() from failed
        return updated

    def _move_counts(self, tx: TransactWrite, tenant_id: str, changes: Iterable[CountChange]) -> None:
        # One transaction may touch an item once: merge the deltas per bucket.
        deltas: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for created_ms, before, after in changes:
            for bucket, slot in cells_of(tenant_id, created_ms):
                if before:
                    deltas[bucket][count_name(before, slot)] -= 1
                if after:
                    deltas[bucket][count_name(after, slot)] += 1
        for bucket, by_name in deltas.items():
            actions: list[Action] = [Path(name).add(n) for name, n in by_name.items() if n]
            if actions:
                # ADD is atomic by construction: counters need no version.
                tx.update(PinCounter(bucket), actions=actions)

    def _transact(self, fill: Callable[[TransactWrite], None]) -> None:
        """Runs one transaction; retries it (a bounded number of times, with
        backoff) while it conflicts with another, then raises StorageBusy."""
        with busy_as_storage_busy():
            for attempt in range(self._conflict_retries + 1):
                try:
                    with self._dynamo.transaction() as tx:
                        fill(tx)
                    return
                except TransactWriteError as error:
                    codes = cancellation_codes(error)
                    if "ConditionalCheckFailed" in codes:
                        raise _ConditionFailed(codes.index("ConditionalCheckFailed")) from error
                    # Concurrent writers of the same tenant share counter items.
                    if "TransactionConflict" not in codes or attempt == self._conflict_retries:
                        raise
                    self._sleep(random.uniform(0, CONFLICT_BACKOFF_BASE_S * 2**attempt))

    # -- reads ---------------------------------------------------------------

    def find(self, tenant_id: str, query: PinQuery) -> tuple[list[Pin], int]:
        with busy_as_storage_busy():
            page, count = self._find(tenant_id, query)
        return [_pin_of(record) for record in page], count

    def _find(self, tenant_id: str, query: PinQuery) -> tuple[list[PinRecord], int]:
        lo, hi = _ms_range(query)
        if lo > hi:
            return [], 0
        results: Iterable[Iterable[PinRecord]]
        if query.cid_keys:
            results = (
                PinRecord.by_cid.query(
                    tenant_id,
                    PinRecord.cid_sort.between(sort_key(cid, lo), sort_key(cid, hi)),
                    filter_condition=_filters(query),
                    consistent_read=True,
                    scan_index_forward=False,
                )
                for cid in query.cid_keys
            )
        elif query.name is not None and query.match in ("exact", "iexact"):
            index, attribute, prefix = (
                (PinRecord.by_name, PinRecord.name_sort, name_digest(query.name))
                if query.match == "exact"
                else (PinRecord.by_folded_name, PinRecord.folded_name_sort, name_digest(fold(query.name)))
            )
            results = [
                index.query(
                    tenant_id,
                    attribute.between(sort_key(prefix, lo), sort_key(prefix, hi)),
                    filter_condition=_filters(query),
                    consistent_read=True,
                    scan_index_forward=False,
                )
            ]
        elif scans_time_range(query):
            # Refused before a pin is read when the range holds too many.
            check_scan(query, self.count(tenant_id, query.statuses, lo, hi), self._max_scanned_pins)
            return self._count_and_page(self._scan(tenant_id, query, lo, hi), query)
        else:
            page = self._page_by_status(tenant_id, query.statuses, lo, hi, query.limit)
            return page, self.count(tenant_id, query.statuses, lo, hi)
        return self._count_and_page(results, query)

    def _scan(self, tenant_id: str, query: PinQuery, lo: int, hi: int) -> list[Iterator[PinRecord]]:
        """Every pin of the query's statuses in [lo, hi], newest first per
        stream (the status index when not every status is wanted, so only
        those are read), stopped with QueryTooBroad at the deadline."""
        if query.statuses == ALL_STATUSES:
            streams = [
                PinRecord.query(
                    tenant_id,
                    PinRecord.created_ms.between(lo, hi),
                    filter_condition=_filters(query),
                    consistent_read=True,
                    scan_index_forward=False,
                )
            ]
        else:
            streams = [
                PinRecord.by_status.query(
                    tenant_id,
                    PinRecord.status_sort.between(sort_key(status, lo), sort_key(status, hi)),
                    filter_condition=_filters(query),
                    consistent_read=True,
                    scan_index_forward=False,
                )
                for status in sorted(query.statuses)
            ]
        deadline = _ScanDeadline(self._clock, self._clock() + SCAN_SECONDS)
        return [_records_until(deadline, stream) for stream in streams]

    @staticmethod
    def _count_and_page(results: Iterable[Iterable[PinRecord]], query: PinQuery) -> tuple[list[PinRecord], int]:
        """Counts every match but keeps only the page: memory stays that of
        one page however many pins a filter has to read."""
        merged = heapq.merge(*results, key=lambda record: record.created_ms, reverse=True)
        page: list[PinRecord] = []
        count = 0
        for record in merged:
            if query.meta and not _meta_matches(record, query.meta):
                continue
            count += 1
            if len(page) < query.limit:
                page.append(record)
        return page, count

    def _page_by_status(
        self, tenant_id: str, statuses: frozenset[str], lo: int, hi: int, limit: int
    ) -> list[PinRecord]:
        if statuses == ALL_STATUSES:
            # Every status: the table itself is in `created` order.
            return list(
                PinRecord.query(
                    tenant_id,
                    PinRecord.created_ms.between(lo, hi),
                    consistent_read=True,
                    scan_index_forward=False,
                    limit=limit,
                    page_size=limit,
                )
            )
        per_status = [
            PinRecord.by_status.query(
                tenant_id,
                PinRecord.status_sort.between(sort_key(status, lo), sort_key(status, hi)),
                consistent_read=True,
                scan_index_forward=False,
                limit=limit,
                page_size=limit,
            )
            for status in sorted(statuses)
        ]
        merged = heapq.merge(*per_status, key=lambda record: record.created_ms, reverse=True)
        return [record for _, record in zip(range(limit), merged, strict=False)]

    def count(self, tenant_id: str, statuses: frozenset[str], lo: int, hi: int) -> int:
        """Pins of `statuses` created in [lo, hi] ms, from the counter tree:
        the difference of two prefix counts, whose buckets (at most 12) are
        read in one BatchGetItem."""
        if lo > hi:
            return 0
        upper, lower = prefix_cells(tenant_id, hi + 1), prefix_cells(tenant_id, lo)
        with busy_as_storage_busy():
            buckets = read_buckets(self._dynamo.connection, {bucket for bucket, _ in upper + lower}, self._sleep)
            return self._prefix(tenant_id, hi + 1, upper, statuses, buckets) - self._prefix(
                tenant_id, lo, lower, statuses, buckets
            )

    def _prefix(
        self,
        tenant_id: str,
        before_ms: int,
        cells: list[Cell],
        statuses: frozenset[str],
        buckets: Mapping[str, BucketCounts],
    ) -> int:
        """Pins of `statuses` created before `before_ms`: on each level the
        slots below the one holding `before_ms`, then that level-1 slot's
        pins on the shorter side of `before_ms`, read directly."""
        below = sum(slot_count(buckets[bucket], range(slot), statuses) for bucket, slot in cells)
        window_start = before_ms - before_ms % FANOUT
        if len(cells) < LEVELS or before_ms == window_start:
            return below  # before 0 or beyond the tree, or on a slot boundary
        bucket, slot = cells[0]
        window = slot_count(buckets[bucket], [slot], statuses)
        if window == 0:
            return below
        if before_ms - window_start <= FANOUT // 2:
            return below + self._count_pins(tenant_id, window_start, before_ms, statuses)
        return below + window - self._count_pins(tenant_id, before_ms, window_start + FANOUT, statuses)

    @staticmethod
    def _count_pins(tenant_id: str, start_ms: int, end_ms: int, statuses: frozenset[str]) -> int:
        """Pins of `statuses` created in [start_ms, end_ms)."""
        return PinRecord.count(
            tenant_id,
            PinRecord.created_ms.between(start_ms, end_ms - 1),
            filter_condition=None if statuses == ALL_STATUSES else PinRecord.status.is_in(*statuses),
            consistent_read=True,
        )


def _record_of(pin: Pin) -> PinRecord:
    """The pin's item, with every index key derived from its fields."""
    name, created_ms = pin.name, pin.created_ms
    return PinRecord(
        pin.tenant_id,
        created_ms,
        request_id=pin.request_id,
        status=pin.status,
        cid=pin.cid,
        cid_key=pin.cid_key,
        name=name,
        folded_name=None if name is None else fold(name),
        origins=list(pin.origins),
        meta=dict(pin.meta),
        info=dict(pin.info),
        delegates=list(pin.delegates),
        node_ids=list(pin.node_ids),
        version=pin.version,
        status_sort=sort_key(pin.status, created_ms),
        cid_sort=sort_key(pin.cid_key, created_ms),
        name_sort=None if name is None else sort_key(name_digest(name), created_ms),
        folded_name_sort=None if name is None else sort_key(name_digest(fold(name)), created_ms),
    )


def _pin_of(record: PinRecord) -> Pin:
    return Pin(
        tenant_id=record.tenant_id,
        created_ms=record.created_ms,
        request_id=record.request_id,
        status=record.status,
        cid=record.cid,
        cid_key=record.cid_key,
        name=record.name,
        origins=record.origins,
        meta=plain_map(record.meta),
        info=plain_map(record.info),
        delegates=record.delegates,
        node_ids=record.node_ids,
        version=record.version or 0,
    )


def _key_of(pin: Pin) -> PinRecord:
    return PinRecord(pin.tenant_id, pin.created_ms)


def name_digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def _unchanged(pin: Pin) -> Condition:
    """The pin is still the request and the version that was read."""
    return And(PinRecord.request_id == pin.request_id, at_version(PinRecord.version, pin.version))


def _ms_range(query: PinQuery) -> tuple[int, int]:
    """Inclusive millisecond bounds equivalent to the strict ns bounds."""
    lo = 0 if query.after_ns is None else query.after_ns // 1_000_000 + 1
    hi = MAX_MS if query.before_ns is None else -(-query.before_ns // 1_000_000) - 1
    return max(lo, 0), min(hi, MAX_MS)


def _meta_matches(record: PinRecord, wanted: Mapping[str, str]) -> bool:
    # Compared here, not in a FilterExpression: PynamoDB cannot name map
    # keys holding "[" or "]", and the filter would not read fewer items.
    meta = plain_map(record.meta)
    return all(meta.get(key) == value for key, value in wanted.items())


def _filters(query: PinQuery) -> Condition | None:
    """Everything but `meta`, which `_meta_matches` checks."""
    conditions: list[Condition] = []
    if query.statuses != ALL_STATUSES:
        conditions.append(PinRecord.status.is_in(*query.statuses))
    if query.name is not None:
        name, folded = query.name, fold(query.name)
        if query.match == "exact":
            conditions.append(PinRecord.name == name)
        elif query.match == "iexact":
            conditions.append(PinRecord.folded_name == folded)
        elif not name:
            conditions.append(PinRecord.name.exists())
        elif query.match == "partial":
            conditions.append(PinRecord.name.contains(name))
        else:
            conditions.append(PinRecord.folded_name.contains(folded))
    return reduce(And, conditions) if conditions else None
