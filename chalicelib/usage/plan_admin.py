"""Operator actions on tenants' plans and quotas (the admin CLI's)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.tenants.admin import UnknownTenant
from chalicelib.tenants.repository import TenantRepository
from chalicelib.usage.plans import InvalidPlans, PlanRepository, Quotas, TenantPlan, checked_limits
from chalicelib.usage.quotas import TenantQuotas


@dataclass(frozen=True)
class PlanView:
    tenant_id: str
    plan: str
    overrides: Mapping[str, int]
    quotas: Quotas

    def as_dict(self) -> dict[str, object]:
        return {
            "tenant": self.tenant_id,
            "plan": self.plan,
            "overrides": dict(self.overrides),
            "quotas": self.quotas.as_dict(),
        }


class PlanAdmin:
    def __init__(self, tenants: TenantRepository, stored: PlanRepository, quotas: TenantQuotas) -> None:
        self._tenants = tenants
        self._stored = stored
        self._quotas = quotas

    def show(self, tenant_id: str) -> PlanView:
        self._known(tenant_id)
        return self._view(tenant_id, self._stored.get(tenant_id))

    def set_plan(self, tenant_id: str, plan: str) -> PlanView:
        """Put the tenant on `plan` (its overrides stay); InvalidPlans for one the stage lacks."""
        if plan not in self._quotas.plans:
            raise InvalidPlans(f"no plan {plan!r}; plans are {sorted(self._quotas.plans)}")
        self._known(tenant_id)
        stored = TenantPlan(plan, self._stored.get(tenant_id).overrides)
        self._stored.put(tenant_id, stored)
        return self._view(tenant_id, stored)

    def set_quotas(self, tenant_id: str, changes: Mapping[str, int | None]) -> PlanView:
        """Override single limits (None: back to the plan's)."""
        self._known(tenant_id)
        current = self._stored.get(tenant_id)
        set_now = checked_limits({name: value for name, value in changes.items() if value is not None})
        overrides = {name: value for name, value in current.overrides.items() if name not in changes} | set_now
        stored = TenantPlan(current.plan, overrides)
        self._stored.put(tenant_id, stored)
        return self._view(tenant_id, stored)

    def _known(self, tenant_id: str) -> None:
        if self._tenants.get(tenant_id) is None:
            raise UnknownTenant(tenant_id)

    def _view(self, tenant_id: str, stored: TenantPlan) -> PlanView:
        return PlanView(tenant_id, self._quotas.plan_of(stored), stored.overrides, self._quotas.quotas_of(stored))
