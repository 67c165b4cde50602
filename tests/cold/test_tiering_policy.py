"""Tier policies: the stage's default, a tenant's override, read once per cache period."""

from __future__ import annotations

import pytest

from chalicelib.cold.tiers import COLD_ONLY, HOT_COLD, HOT_ONLY, TierPolicies, UnknownTier
from chalicelib.tenants.admin import TenantAdmin, UnknownTenant
from tests.support.memory.tenants import MemoryTenants, MemoryTokens


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


class CountingTenants(MemoryTenants):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, tenant_id: str):
        self.reads += 1
        return super().get(tenant_id)


def test_a_tenant_without_a_tier_follows_the_stage_and_its_own_overrides_it():
    # Given a stage whose default is cold-only after 30 days, and two tenants
    tenants = MemoryTenants()
    admin = TenantAdmin(tenants, MemoryTokens())
    plain, own = admin.create_tenant("plain"), admin.create_tenant("own")
    admin.set_tier(own.tenant_id, HOT_ONLY)
    policies = TierPolicies(tenants, COLD_ONLY, 30, cache_seconds=0)
    # Then one follows the stage, the other its own tier
    assert (policies.policy_for(plain.tenant_id).cools, policies.policy_for(plain.tenant_id).cold_after_days) == (
        True,
        30,
    )
    assert policies.policy_for(own.tenant_id).archives is False
    # And an unknown tenant (a request's tenant is always known) follows the stage
    assert policies.policy_for("tn_gone").tier == COLD_ONLY


def test_a_tenants_policy_is_read_once_per_cache_period():
    tenants, clock = CountingTenants(), Clock()
    admin = TenantAdmin(tenants, MemoryTokens())
    tenant = admin.create_tenant("alice")
    policies = TierPolicies(tenants, HOT_COLD, 30, cache_seconds=60, clock=clock)
    assert policies.policy_for(tenant.tenant_id).tier == HOT_COLD
    # When the operator changes it, then a container sees the change only after its cache period
    admin.set_tier(tenant.tenant_id, COLD_ONLY, 3)
    clock.ms += 59_000
    assert policies.policy_for(tenant.tenant_id).tier == HOT_COLD
    clock.ms += 1_000
    assert (policies.policy_for(tenant.tenant_id).tier, policies.policy_for(tenant.tenant_id).cold_after_days) == (
        COLD_ONLY,
        3,
    )
    assert tenants.reads == 2


def test_a_bad_tier_or_day_count_is_refused_and_nothing_stored():
    tenants = MemoryTenants()
    admin = TenantAdmin(tenants, MemoryTokens())
    tenant = admin.create_tenant("alice")
    with pytest.raises(UnknownTier):
        admin.set_tier(tenant.tenant_id, "lukewarm")
    with pytest.raises(ValueError):
        admin.set_tier(tenant.tenant_id, COLD_ONLY, 0)
    with pytest.raises(UnknownTenant):
        admin.set_tier("tn_nobody", COLD_ONLY)
    assert tenants.get(tenant.tenant_id).tier is None
    with pytest.raises(UnknownTier):
        TierPolicies(tenants, "lukewarm", 30)
