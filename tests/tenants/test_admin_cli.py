"""`cli.admin`: tokens issued with a scope (shown by `tokens list`, enforced
by the authenticator's answer) and a tenant's own rate limits."""

from __future__ import annotations

import pytest

from chalicelib.config import Settings
from chalicelib.storage.tenant_repository import DynamoTokenRepository
from chalicelib.tenants.authenticator import Authenticator
from tests.cli.test_admin_cli import assert_one_line_error, run, run_json

STAGE = Settings()
STAGE_LIMITS = {
    "per_second": STAGE.rate_limit_per_second,
    "burst": STAGE.rate_limit_burst,
    "token_per_second": STAGE.rate_limit_token_per_second,
    "token_burst": STAGE.rate_limit_token_burst,
}


@pytest.fixture
def tenant_id(settings: Settings) -> str:
    return run_json("tenants", "create", "alice")["tenant_id"]


def test_tokens_are_issued_with_a_scope_listed_and_answered_by_the_authenticator(tenant_id: str) -> None:
    # when three tokens are issued: the default, read and retrieve
    issued = {
        scope: run_json(
            "tokens", "issue", tenant_id, "--label", scope, *(["--scope", scope] if scope != "write" else [])
        )
        for scope in ("write", "read", "retrieve")
    }
    # then each says its scope, `tokens list` shows it (JSON and table)
    assert {scope: token["scope"] for scope, token in issued.items()} == {s: s for s in issued}
    listed = {token["label"]: token["scope"] for token in run_json("tokens", "list", tenant_id)}
    assert listed == {"write": "write", "read": "read", "retrieve": "retrieve"}
    table = run("tokens", "list", tenant_id).stdout
    assert "SCOPE" in table.splitlines()[0] and "retrieve" in table
    # and the API sees the scope
    authenticator = Authenticator(DynamoTokenRepository(), cache_seconds=0)
    for scope, token in issued.items():
        assert authenticator.caller_for("Bearer " + token["secret"]).scope == scope


def test_an_unknown_scope_is_refused_and_no_token_issued(tenant_id: str) -> None:
    result = run("tokens", "issue", tenant_id, "--label", "x", "--scope", "admin")
    assert result.exit_code == 2 and "admin" in result.output
    assert run_json("tokens", "list", tenant_id) == []


def test_a_tenants_rate_limits_are_set_kept_in_part_and_dropped(tenant_id: str) -> None:
    # given a tenant on the stage's limits
    assert run_json("tenants", "show", tenant_id)["rate_limits"] == STAGE_LIMITS
    assert run_json("tenants", "show", tenant_id)["rate_limits_source"] == "stage"
    # when two of its limits are set, then the others keep the stage's values
    shown = run_json("tenants", "rate-limit", tenant_id, "--per-second", "500", "--token-burst", "50")
    assert shown["rate_limits"] == {**STAGE_LIMITS, "per_second": 500, "token_burst": 50}
    assert shown["rate_limits_source"] == "tenant"
    # when another is set, then the first two stay
    again = run_json("tenants", "rate-limit", tenant_id, "--burst", "9000")
    assert again["rate_limits"] == {**STAGE_LIMITS, "per_second": 500, "burst": 9000, "token_burst": 50}
    assert "500/s burst 9000" in run("tenants", "rate-limit", tenant_id, "--burst", "9000").stdout
    # when set back to the stage's, then it follows them again
    back = run_json("tenants", "rate-limit", tenant_id, "--stage")
    assert (back["rate_limits"], back["rate_limits_source"]) == (STAGE_LIMITS, "stage")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "give --stage"),
        (("--stage", "--burst", "5"), "give --stage"),
        (("--token-burst", "0"), "needs a burst"),
    ],
    ids=["nothing", "stage-and-a-limit", "rate-without-burst"],
)
def test_impossible_rate_limits_are_refused_on_one_line(tenant_id: str, args: tuple[str, ...], fragment: str) -> None:
    assert_one_line_error(run("tenants", "rate-limit", tenant_id, *args), fragment)
    assert run_json("tenants", "show", tenant_id)["rate_limits_source"] == "stage"


def test_rate_limits_of_an_unknown_tenant_are_refused(settings: Settings) -> None:
    assert_one_line_error(run("tenants", "rate-limit", "tn_nobody", "--burst", "5"), "unknown tenant")
