"""Tenants' plans in their usage partition of the pins table (usage_keys),
behind chalicelib.usage.plans.PlanRepository."""

from __future__ import annotations

import json

from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.usage_item import UsageItem
from chalicelib.storage.usage_keys import PLAN_SORT_KEY, usage_partition
from chalicelib.usage.plans import TenantPlan, checked_limits


class DynamoPlanRepository:
    @busy_as_storage_busy()
    def get(self, tenant_id: str) -> TenantPlan:
        try:
            item = UsageItem.get(usage_partition(tenant_id), PLAN_SORT_KEY)
        except UsageItem.DoesNotExist:
            return TenantPlan()
        return TenantPlan(item.plan, checked_limits(json.loads(item.overrides or "{}")))

    @busy_as_storage_busy()
    def put(self, tenant_id: str, plan: TenantPlan) -> None:
        overrides = json.dumps(dict(plan.overrides), sort_keys=True) if plan.overrides else None
        UsageItem(usage_partition(tenant_id), PLAN_SORT_KEY, plan=plan.plan, overrides=overrides).save()
