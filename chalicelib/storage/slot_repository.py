"""The tenant-slots table behind chalicelib.worker.invocation_slots.SlotRepository."""

from __future__ import annotations

from collections.abc import Mapping

from pynamodb.exceptions import DeleteError, UpdateError

from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import condition_failed
from chalicelib.storage.tenant_slot import TenantSlot


class DynamoSlotRepository:
    @busy_as_storage_busy()
    def take(self, tenant_id: str, slot: int, until_ms: int, now_ms: int) -> bool:
        try:
            TenantSlot(tenant_id, slot).update(
                actions=[TenantSlot.until_ms.set(until_ms)],
                condition=TenantSlot.until_ms.does_not_exist() | (TenantSlot.until_ms < now_ms),
            )
        except UpdateError as error:
            if condition_failed(error):
                return False
            raise
        return True

    @busy_as_storage_busy()
    def leases(self, tenant_id: str) -> Mapping[int, int]:
        return {
            item.slot: item.until_ms
            for item in TenantSlot.query(tenant_id, consistent_read=True)
            if item.until_ms is not None
        }

    @busy_as_storage_busy()
    def give_back(self, tenant_id: str, slot: int, until_ms: int) -> None:
        try:
            TenantSlot(tenant_id, slot).delete(condition=TenantSlot.until_ms == until_ms)
        except DeleteError as error:
            if not condition_failed(error):
                raise
