"""The admin CLI's storage tiers of tenants, against emulated DynamoDB (moto)."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.cold.tiers import TierPolicies
from chalicelib.config import Settings
from chalicelib.storage.tenant_repository import DynamoTenantRepository
from tests.cli.test_admin_cli import assert_one_line_error, run, run_json


def policies(settings: Settings) -> TierPolicies:
    """What the workers would read of a tenant's tier, uncached, on the tables the CLI wrote."""
    return TierPolicies(DynamoTenantRepository(), settings.storage_tier, settings.cold_only_after_days, 0)


def test_given_a_new_tenant_when_shown_then_it_follows_the_stages_tier(settings: Settings) -> None:
    # Given a tenant just created
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    # When shown and listed
    shown = run_json("tenants", "show", tenant_id)
    table = run("tenants", "list")
    # Then its tier is the stage's default
    assert (shown["tier"], shown["tier_source"], shown["cold_after_days"]) == ("hot+cold", "stage", None)
    assert "hot+cold (stage)" in table.stdout


def test_given_a_tenant_set_cold_only_when_shown_then_its_tier_and_days_are_stored_and_read_by_workers(
    settings: Settings,
) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    # When set cold-only after 7 days
    result = run("tenants", "tier", tenant_id, "cold-only", "--cold-after-days", "7")
    # Then the CLI says so, shows it, and the workers' policy reads it
    assert result.exit_code == 0 and "cold-only/7d" in result.stdout
    shown = run_json("tenants", "show", tenant_id)
    assert (shown["tier"], shown["cold_after_days"], shown["tier_source"]) == ("cold-only", 7, "tenant")
    policy = policies(settings).policy_for(tenant_id)
    assert (policy.tier, policy.cold_after_days, policy.cools) == ("cold-only", 7, True)


def test_given_cold_only_without_days_when_set_then_the_stages_days_apply(settings: Settings) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    run_json("tenants", "tier", tenant_id, "cold-only")
    policy = policies(replace(settings, cold_only_after_days=12)).policy_for(tenant_id)
    assert (policy.tier, policy.cold_after_days) == ("cold-only", 12)


def test_given_a_tenant_with_a_tier_when_set_back_to_stage_then_it_follows_the_stage_again(
    settings: Settings,
) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    run_json("tenants", "tier", tenant_id, "hot-only")
    assert policies(settings).policy_for(tenant_id).archives is False
    # When set back to the stage's
    shown = run_json("tenants", "tier", tenant_id, "stage")
    # Then it follows the stage again
    assert (shown["tier"], shown["tier_source"]) == ("hot+cold", "stage")
    assert DynamoTenantRepository().get(tenant_id).tier is None


def test_given_days_with_another_tier_or_an_unknown_tenant_when_set_then_one_line_errors(settings: Settings) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    assert_one_line_error(run("tenants", "tier", tenant_id, "hot-only", "--cold-after-days", "3"), "cold-only")
    assert_one_line_error(run("tenants", "tier", "tn_nobody", "hot-only"), "unknown tenant")
    assert_one_line_error(run("tenants", "show", "tn_nobody"), "unknown tenant")
    # And a bad tier or day count is click's usage error, nothing stored
    assert run("tenants", "tier", tenant_id, "lukewarm").exit_code == 2
    assert run("tenants", "tier", tenant_id, "cold-only", "--cold-after-days", "0").exit_code == 2
    assert DynamoTenantRepository().get(tenant_id).tier is None
