"""The archives table behind chalicelib.cold.archive_repository.ArchiveRepository.

Each step is one conditional write or transaction; which condition failed
tells the outcome (DynamoDB lists cancellation reasons in the order of the
transaction's items).
"""

from __future__ import annotations

from pynamodb.exceptions import DeleteError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.cold.archive_repository import (
    ARCHIVED,
    ARCHIVING,
    DELETING,
    FAILED,
    ArchivedCar,
    ArchiveHold,
    ArchiveHolder,
    ArchiveLease,
    ArchiveState,
    Held,
    Left,
    Orphan,
)
from chalicelib.storage.archive_record import (
    ORPHANS,
    STATE,
    ArchiveRecord,
    cooling_partition,
    cooling_partitions,
    holder_entry,
    holder_of,
)
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import condition_failed, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.refcounts import Release, release_holder

R = ArchiveRecord


class DynamoArchiveRepository:
    def __init__(self, dynamo: DynamoConnection) -> None:
        self._dynamo = dynamo

    @busy_as_storage_busy()
    def hold(self, holder: ArchiveHolder, cools_at_ms: int | None = None) -> Held:
        item = R(holder.cid, holder_entry(holder.tenant_id, holder.request_id))
        if cools_at_ms is not None:
            item.cools_at_ms, item.cooling = cools_at_ms, cooling_partition(holder.cid)
        try:
            with self._dynamo.transaction() as tx:
                tx.save(item, condition=R.entry.does_not_exist())
                tx.update(
                    R(holder.cid, STATE),
                    actions=[
                        R.holders.add(1),
                        R.changes.add(1),
                        R.state.set(R.state | ARCHIVING),
                        R.orphaned_ms.remove(),
                        R.orphans.remove(),
                    ],
                    condition=R.state.does_not_exist() | (R.state != DELETING),
                )
        except TransactWriteError as error:
            failed = failed_condition(error)
            if failed == 0:
                return Held.ALREADY_HELD
            if failed == 1:
                return Held.DELETING
            raise
        return Held.ADDED

    @busy_as_storage_busy()
    def state(self, cid: str) -> ArchiveState | None:
        try:
            return _state(R.get(cid, STATE, consistent_read=True))
        except R.DoesNotExist:
            return None

    @busy_as_storage_busy()
    def hold_of(self, holder: ArchiveHolder) -> ArchiveHold | None:
        try:
            item = R.get(holder.cid, holder_entry(holder.tenant_id, holder.request_id), consistent_read=True)
        except R.DoesNotExist:
            return None
        return ArchiveHold(holder, item.cools_at_ms)

    @busy_as_storage_busy()
    def holds_of(self, cid: str, tenant_id: str) -> list[ArchiveHold]:
        items = R.query(cid, R.entry.startswith(holder_entry(tenant_id, "")))
        return [ArchiveHold(_holder(item), item.cools_at_ms) for item in items]

    @busy_as_storage_busy()
    def due_to_cool(self, before_ms: int, limit: int) -> list[ArchiveHold]:
        # Each partition's soonest, then the soonest of all: `limit` small pages.
        due = [
            ArchiveHold(_holder(item), item.cools_at_ms)
            for partition in cooling_partitions()
            for item in R.by_cooling.query(partition, R.cools_at_ms < before_ms, limit=limit, page_size=limit)
        ]
        return sorted(due, key=lambda hold: hold.cools_at_ms or 0)[:limit]

    @busy_as_storage_busy()
    def set_cooling(self, holder: ArchiveHolder, expected_ms: int | None, cools_at_ms: int | None) -> bool:
        item = R(holder.cid, holder_entry(holder.tenant_id, holder.request_id))
        actions: list[Action] = (
            [R.cools_at_ms.remove(), R.cooling.remove()]
            if cools_at_ms is None
            else [R.cools_at_ms.set(cools_at_ms), R.cooling.set(cooling_partition(holder.cid))]
        )
        due = R.cools_at_ms.does_not_exist() if expected_ms is None else R.cools_at_ms == expected_ms
        return _update(item, actions, R.entry.exists() & due)

    @busy_as_storage_busy()
    def leave(self, holder: ArchiveHolder, holders: int, now_ms: int) -> Left:
        left = holders - 1
        actions: list[Action] = [R.holders.set(left), R.changes.add(1)]
        if not left:
            actions += [R.orphaned_ms.set(now_ms), R.orphans.set(ORPHANS)]
        released = release_holder(
            self._dynamo,
            R(holder.cid, holder_entry(holder.tenant_id, holder.request_id)),
            R.entry.exists(),
            R(holder.cid, STATE),
            actions,
            R.holders == holders,
        )
        if released is Release.NOT_HELD:
            return Left.NOT_HELD
        if released is Release.RECOUNT:
            return Left.RECOUNT
        return Left.REMOVED if left else Left.LAST

    @busy_as_storage_busy()
    def take_lease(self, cid: str, lease: ArchiveLease, now_ms: int) -> ArchiveState | None:
        item = R(cid, STATE)
        free = R.leased_by.does_not_exist() | (R.leased_until_ms < now_ms) | (R.leased_by == lease.by)
        actions: list[Action] = [R.leased_by.set(lease.by), R.leased_until_ms.set(lease.until_ms), R.attempts.add(1)]
        if not _update(item, actions, (R.state == ARCHIVING) & free):
            return None
        return _state(item)  # PynamoDB refreshed it from the update's answer

    @busy_as_storage_busy()
    def record_archived(self, cid: str, by: str, car: ArchivedCar) -> bool:
        actions: list[Action] = [
            R.state.set(ARCHIVED),
            R.leased_by.remove(),
            R.leased_until_ms.remove(),
            R.car_key.set(car.car_key),
            R.index_key.set(car.index_key),
            R.car_bytes.set(car.car_bytes),
            R.car_sha256.set(car.car_sha256),
            R.piece_cid_v1.set(car.piece_cid_v1),
            R.piece_cid_v2.set(car.piece_cid_v2),
            R.padded_size.set(car.padded_size),
            R.archived_ms.set(car.archived_ms),
        ]
        return _update(R(cid, STATE), actions, R.leased_by == by)

    @busy_as_storage_busy()
    def record_failure(self, cid: str, by: str | None, error: str, failed: bool) -> bool:
        actions: list[Action] = [R.leased_by.remove(), R.leased_until_ms.remove(), R.last_error.set(error)]
        if failed:
            actions.append(R.state.set(FAILED))
        condition = (R.state == ARCHIVING) if by is None else (R.leased_by == by)
        return _update(R(cid, STATE), actions, condition)

    @busy_as_storage_busy()
    def orphaned(self, before_ms: int, limit: int) -> list[Orphan]:
        page = R.by_orphaned.query(ORPHANS, R.orphaned_ms < before_ms, limit=limit, page_size=limit)
        return [Orphan(item.cid, item.orphaned_ms or 0) for item in page]

    @busy_as_storage_busy()
    def start_deleting(self, cid: str, orphaned_ms: int, changes: int) -> bool:
        condition = (R.holders == 0) & (R.orphaned_ms == orphaned_ms) & (R.changes == changes)
        return _update(R(cid, STATE), [R.state.set(DELETING)], condition)

    @busy_as_storage_busy()
    def forget(self, cid: str) -> bool:
        try:
            R(cid, STATE).delete(condition=(R.state == DELETING) & (R.holders == 0))
        except DeleteError as error:
            if condition_failed(error):
                return False
            raise
        return True


def _holder(item: ArchiveRecord) -> ArchiveHolder:
    tenant_id, request_id = holder_of(item.entry)
    return ArchiveHolder(item.cid, tenant_id, request_id)


def _state(item: ArchiveRecord) -> ArchiveState:
    lease = None if item.leased_by is None else ArchiveLease(item.leased_by, item.leased_until_ms or 0)
    return ArchiveState(
        cid=item.cid,
        state=item.state or ARCHIVING,
        holders=item.holders or 0,
        changes=item.changes or 0,
        lease=lease,
        attempts=item.attempts or 0,
        last_error=item.last_error,
        car=_car(item) if item.state == ARCHIVED else None,
        orphaned_ms=item.orphaned_ms,
    )


def _car(item: ArchiveRecord) -> ArchivedCar:
    """An archived state item's figures (all written at once by record_archived)."""
    return ArchivedCar(
        car_key=item.car_key or "",
        index_key=item.index_key or "",
        car_bytes=item.car_bytes or 0,
        car_sha256=item.car_sha256 or "",
        piece_cid_v1=item.piece_cid_v1 or "",
        piece_cid_v2=item.piece_cid_v2 or "",
        padded_size=item.padded_size or 0,
        archived_ms=item.archived_ms or 0,
    )


def _update(item: ArchiveRecord, actions: list[Action], condition: Condition) -> bool:
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as error:
        if condition_failed(error):
            return False
        raise
    return True
