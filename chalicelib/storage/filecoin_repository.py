"""The filecoin-copies table behind chalicelib.filecoin.repository.CopyRepository.

Each step is one conditional write or transaction; a refused condition is
the step's False, never an error.
"""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib.filecoin.backend import CopyState, Receipt
from chalicelib.filecoin.repository import CidRecords, CidState, CopyRecord, Due, Want
from chalicelib.storage.attributes import at_version
from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import condition_failed, conflicted, failed_condition
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.filecoin_record import (
    COPY,
    STATE,
    WANT,
    FilecoinRecord,
    copy_entry,
    due_partition,
    due_partitions,
    spend_partition,
    want_entry,
    want_of,
)

R = FilecoinRecord


class DynamoCopyRepository:
    def __init__(self, dynamo: DynamoConnection) -> None:
        self._dynamo = dynamo

    @busy_as_storage_busy()
    def want(self, cid: str, want: Want, now_ms: int) -> None:
        with self._dynamo.transaction() as tx:
            tx.save(R(cid, want_entry(want.tenant_id, want.request_id), copies=want.copies))
            tx.update(R(cid, STATE), actions=_due_now(cid, now_ms))

    @busy_as_storage_busy()
    def unwant(self, cid: str, tenant_id: str, request_id: str, now_ms: int) -> None:
        with self._dynamo.transaction() as tx:
            tx.delete(R(cid, want_entry(tenant_id, request_id)))
            tx.update(R(cid, STATE), actions=_due_now(cid, now_ms))

    @busy_as_storage_busy()
    def copies(self, cid: str) -> list[CopyRecord]:
        items = R.query(cid, R.entry.startswith(COPY), consistent_read=True)
        return sorted((_copy(item) for item in items), key=lambda record: (record.created_ms, record.key))

    @busy_as_storage_busy()
    def copy(self, cid: str, provider_id: str, n: int) -> CopyRecord | None:
        try:
            return _copy(R.get(cid, copy_entry(provider_id, n), consistent_read=True))
        except R.DoesNotExist:
            return None

    @busy_as_storage_busy()
    def records(self, cid: str) -> CidRecords:
        # One Query of the partition: its state, wants and copies sort apart by entry.
        state, wants, copies = None, [], []
        for item in R.query(cid, consistent_read=True):
            if item.entry == STATE:
                state = _state(item)
            elif item.entry.startswith(WANT):
                wants.append(Want(*want_of(item.entry), item.copies or 0))
            elif item.entry.startswith(COPY):
                copies.append(_copy(item))
        return CidRecords(state, wants, sorted(copies, key=lambda record: (record.created_ms, record.key)))

    @busy_as_storage_busy()
    def due(self, before_ms: int, limit: int) -> list[Due]:
        # Each partition's soonest, then the soonest of all: `limit` small pages.
        found = [
            Due(item.cid, item.due_ms or 0)
            for partition in due_partitions()
            for item in R.by_due.query(partition, R.due_ms < before_ms, limit=limit, page_size=limit)
        ]
        return sorted(found, key=lambda due: (due.due_ms, due.cid))[:limit]

    @busy_as_storage_busy()
    def add_copy(self, record: CopyRecord, expected_version: int) -> bool:
        try:
            with self._dynamo.transaction() as tx:
                tx.save(_item(record, version=1), condition=R.entry.does_not_exist())
                tx.update(
                    R(record.cid, STATE),
                    actions=[R.version.add(1)],
                    condition=at_version(R.version, expected_version),
                )
        except TransactWriteError as error:
            if failed_condition(error) is not None or conflicted(error):
                return False
            raise
        return True

    @busy_as_storage_busy()
    def save_copy(self, record: CopyRecord) -> bool:
        item = _item(record, version=record.version)
        return _refused_as_false(lambda: item.save(condition=R.version == record.version - 1))

    @busy_as_storage_busy()
    def set_state(self, state: CidState) -> bool:
        actions: list[Action] = [
            R.version.set(state.version),
            R.waiting.set(state.waiting) if state.waiting else R.waiting.remove(),
            R.shown.set(state.shown) if state.shown else R.shown.remove(),
        ]
        if state.due_ms is None:
            actions += [R.due_ms.remove(), R.due.remove()]
        else:
            actions += [R.due_ms.set(state.due_ms), R.due.set(due_partition(state.cid))]
        return _update(R(state.cid, STATE), actions, at_version(R.version, state.version - 1))

    @busy_as_storage_busy()
    def mark_due(self, cid: str, now_ms: int) -> None:
        R(cid, STATE).update(actions=_due_now(cid, now_ms))

    @busy_as_storage_busy()
    def reserve_spend(self, period: str, amount: int, cap: int) -> bool:
        if amount > cap:
            return False
        # An ADD conditioned on the total before it: one step, however many trackers reserve at once.
        within = R.spent.does_not_exist() | (R.spent <= cap - amount)
        return _update(R(spend_partition(period), STATE), [R.spent.add(amount)], within)

    @busy_as_storage_busy()
    def release_spend(self, period: str, amount: int) -> None:
        R(spend_partition(period), STATE).update(actions=[R.spent.add(-amount)])

    @busy_as_storage_busy()
    def spent(self, period: str) -> int:
        try:
            return R.get(spend_partition(period), STATE, consistent_read=True).spent or 0
        except R.DoesNotExist:
            return 0


def _due_now(cid: str, now_ms: int) -> list[Action]:
    return [R.version.add(1), R.due_ms.set(now_ms), R.due.set(due_partition(cid))]


def _state(item: FilecoinRecord) -> CidState:
    return CidState(item.cid, item.version or 0, item.due_ms, item.waiting or "", item.shown or "")


def _item(record: CopyRecord, version: int) -> FilecoinRecord:
    receipt = record.receipt
    return R(
        record.cid,
        copy_entry(receipt.provider_id, record.n),
        version=version,
        n=record.n,
        provider_id=receipt.provider_id,
        piece_cid=receipt.piece_cid,
        copy_state=receipt.state.value,
        data_set_id=receipt.data_set_id,
        piece_id=receipt.piece_id,
        transactions=list(receipt.transactions) or None,
        last_proven_epoch=receipt.last_proven_epoch,
        ends_epoch=receipt.ends_epoch,
        detail=receipt.detail or None,
        created_ms=record.created_ms,
        updated_ms=record.updated_ms,
        attempt=record.attempt,
        checked_ms=record.checked_ms,
        lapsed_ms=record.lapsed_ms,
    )


def _copy(item: FilecoinRecord) -> CopyRecord:
    receipt = Receipt(
        provider_id=item.provider_id or "",
        piece_cid=item.piece_cid or "",
        state=CopyState(item.copy_state or CopyState.PENDING),
        data_set_id=item.data_set_id,
        piece_id=item.piece_id,
        transactions=tuple(item.transactions or ()),
        last_proven_epoch=item.last_proven_epoch,
        ends_epoch=item.ends_epoch,
        detail=item.detail or "",
    )
    return CopyRecord(
        cid=item.cid,
        n=item.n or 0,
        receipt=receipt,
        created_ms=item.created_ms or 0,
        updated_ms=item.updated_ms or 0,
        attempt=item.attempt or 0,
        checked_ms=item.checked_ms,
        lapsed_ms=item.lapsed_ms,
        version=item.version or 0,
    )


def _update(item: FilecoinRecord, actions: list[Action], condition: Condition) -> bool:
    return _refused_as_false(lambda: item.update(actions=actions, condition=condition))


def _refused_as_false(write: Callable[[], object]) -> bool:
    try:
        write()
    except (PutError, UpdateError) as error:
        if condition_failed(error):
            return False
        raise
    return True
