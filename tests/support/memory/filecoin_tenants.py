"""TenantCopies in a dict, for domain tests: the tenants that exist and their copies."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MemoryTenantCopies:
    tenants: dict[str, int | None] = field(default_factory=dict)

    def copies_of(self, tenant_id: str) -> int | None:
        return self.tenants.get(tenant_id)

    def set_copies(self, tenant_id: str, copies: int | None) -> bool:
        if tenant_id not in self.tenants:
            return False
        self.tenants[tenant_id] = copies
        return True
