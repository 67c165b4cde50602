"""The tenants' own Filecoin copies (chalicelib.filecoin.wanted.TenantCopies),
an attribute of their record in the tenants table, set in place as the
storage tier is."""

from __future__ import annotations

from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.tenant_record import TenantRecord
from chalicelib.storage.tenant_repository import update_tenant


class DynamoTenantCopies:
    @busy_as_storage_busy()
    def copies_of(self, tenant_id: str) -> int | None:
        try:
            return TenantRecord.get(tenant_id, attributes_to_get=["filecoin_copies"]).filecoin_copies
        except TenantRecord.DoesNotExist:
            return None

    @busy_as_storage_busy()
    def set_copies(self, tenant_id: str, copies: int | None) -> bool:
        attribute = TenantRecord.filecoin_copies
        action = attribute.remove() if copies is None else attribute.set(copies)
        return update_tenant(TenantRecord(tenant_id), [action])
