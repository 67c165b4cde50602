"""`cli.admin tenants filecoin`: a tenant's own copies, against emulated DynamoDB (moto)."""

from __future__ import annotations

from chalicelib.config import Settings
from chalicelib.filecoin.wanted import WantedCopies
from chalicelib.storage.filecoin_tenants import DynamoTenantCopies
from tests.cli.test_admin_cli import run, run_json


def wanted(settings: Settings) -> WantedCopies:
    """What the archiver would read, on the tables the CLI wrote (stage: 2)."""
    return WantedCopies(DynamoTenantCopies(), stage_copies=2)


def test_a_tenant_set_to_n_copies_wants_n_until_it_follows_the_stage_again(settings: Settings) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    # When the tenant is given 3 copies, then its requests want 3
    shown = run_json("tenants", "filecoin", tenant_id, "--copies", "3")
    assert (shown["filecoin_copies"], shown["filecoin_source"]) == (3, "tenant")
    assert wanted(settings).of_request(tenant_id, {}) == 3
    # When it follows the stage again, then the stage's
    result = run("tenants", "filecoin", tenant_id, "--default")
    assert result.exit_code == 0
    assert result.stdout == f"tenant {tenant_id}: Filecoin copies 0 (stage)\n"
    assert wanted(settings).of_request(tenant_id, {}) == 2


def test_bad_uses_are_one_line_errors(settings: Settings) -> None:
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    for args, fragment in [
        ((tenant_id,), "give --copies N or --default"),
        ((tenant_id, "--copies", "2", "--default"), "give --copies N or --default"),
        ((tenant_id, "--copies", "11"), "from 0 to 10"),
        (("tn_nobody", "--copies", "1"), "unknown tenant 'tn_nobody'"),
    ]:
        result = run("tenants", "filecoin", *args)
        assert result.exit_code == 1, args
        assert fragment in result.stderr
    assert DynamoTenantCopies().copies_of(tenant_id) is None
