"""The admin CLI against emulated DynamoDB (moto), through click's runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from chalicelib.config import Settings
from chalicelib.storage.layout import DESTROY_DOCS
from chalicelib.storage.tables import MODELS
from chalicelib.storage.tenant_repository import DynamoTokenRepository
from chalicelib.tenants.authenticator import Authenticator, Unauthenticated
from chalicelib.tenants.tokens import hash_secret
from cli.admin import Options, build_settings, cli
from tests.conftest import PEER_A, PEER_B
from tests.support.table_layouts import create, emulated_aws, existing_tables, old_pins_spec

BASE = ["--table-prefix", "test", "--region", "us-east-1"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, [*BASE, *args], catch_exceptions=False)


def run_json(*args: str) -> Any:
    result = run("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def authenticator() -> Authenticator:
    """What the API would answer for a token, uncached, on the tables the CLI wrote."""
    return Authenticator(DynamoTokenRepository(), cache_seconds=0)


@pytest.fixture
def tenant_id(settings: Settings) -> str:
    return run_json("tenants", "create", "alice")["tenant_id"]


# --- help ---------------------------------------------------------------------


def _all_commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _all_commands(sub, (*path, name))


@pytest.mark.parametrize("path", list(_all_commands(cli)), ids=lambda p: " ".join(p) or "root")
def test_given_any_command_when_asked_for_help_then_exits_0(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])

    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout


def test_given_tables_create_when_asked_for_help_then_says_infra_owns_aws_tables() -> None:
    result = CliRunner().invoke(cli, ["tables", "create", "--help"])

    assert "infra/" in result.stdout


# --- settings -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "env", "prefix"),
    [
        (Options(), {}, "pinning-dev"),
        (Options(), {"STAGE": "prod"}, "pinning-prod"),
        (Options(), {"TABLE_PREFIX": "custom", "STAGE": "prod"}, "custom"),
        (Options(stage="prod"), {"TABLE_PREFIX": "pinning-dev"}, "pinning-prod"),
        (Options(stage="prod", table_prefix="mine"), {"TABLE_PREFIX": "other"}, "mine"),
    ],
)
def test_given_options_and_env_when_settings_built_then_table_prefix_follows_precedence(
    options: Options, env: dict, prefix: str
) -> None:
    assert build_settings(options, env).table_prefix == prefix


def test_given_endpoint_and_region_options_when_settings_built_then_they_override_env() -> None:
    env = {"AWS_ENDPOINT_URL": "http://env:1", "AWS_REGION": "eu-west-1", "TOKEN_CACHE_SECONDS": "5"}

    settings = build_settings(Options(endpoint_url="http://opt:2", region="eu-central-1"), env)

    assert (settings.aws_endpoint_url, settings.region) == ("http://opt:2", "eu-central-1")
    assert settings.token_cache_seconds == 5


def test_given_env_only_when_settings_built_then_env_endpoint_and_region_used() -> None:
    settings = build_settings(Options(), {"AWS_ENDPOINT_URL": "http://env:1", "AWS_DEFAULT_REGION": "ap-south-1"})

    assert (settings.aws_endpoint_url, settings.region) == ("http://env:1", "ap-south-1")


# --- tenants ------------------------------------------------------------------


def test_given_a_created_tenant_when_listed_then_it_appears_with_name_and_rfc3339_time(settings: Settings) -> None:
    created = run("tenants", "create", "alice")
    tenant_id = created.stdout.strip()

    listed = run_json("tenants", "list")
    table = run("tenants", "list")

    assert created.exit_code == 0 and tenant_id.startswith("tn_")
    assert [(t["tenant_id"], t["name"]) for t in listed] == [(tenant_id, "alice")]
    assert listed[0]["created"].endswith("Z") and "T" in listed[0]["created"]
    assert tenant_id in table.stdout and "alice" in table.stdout


def test_given_json_after_the_command_when_run_then_json_output(settings: Settings) -> None:
    result = run("tenants", "create", "bob", "--json")

    assert json.loads(result.stdout)["name"] == "bob"


def test_given_no_tables_when_listing_then_one_line_error(settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["--table-prefix", "missing", "--region", "us-east-1", "tenants", "list"])

    assert_one_line_error(result, "missing-tenants", "tables create")


# --- tokens -------------------------------------------------------------------


def test_given_two_issued_tokens_when_listed_then_both_shown_without_secrets(tenant_id: str) -> None:
    first = run_json("tokens", "issue", tenant_id, "--label", "laptop")
    second = run_json("tokens", "issue", tenant_id, "--label", "ci")

    listed = run_json("tokens", "list", tenant_id)
    table = run("tokens", "list", tenant_id)

    assert sorted((t["token_id"], t["label"], t["status"]) for t in listed) == sorted(
        [(first["token_id"], "laptop", "active"), (second["token_id"], "ci", "active")]
    )
    for secret in (first["secret"], second["secret"]):
        for output in (json.dumps(listed), table.output):
            assert secret not in output
            assert hash_secret(secret) not in output
    assert all("secret" not in token and "token_hash" not in token for token in listed)
    assert first["token_id"] in table.stdout and "active" in table.stdout


def test_given_an_issued_secret_when_presented_then_it_authenticates_as_the_tenant(tenant_id: str) -> None:
    issued = run_json("tokens", "issue", tenant_id, "--label", "laptop")

    assert authenticator().tenant_for("Bearer " + issued["secret"]) == tenant_id


def test_given_plain_output_when_issuing_then_stdout_is_the_secret_and_stderr_warns(tenant_id: str) -> None:
    result = run("tokens", "issue", tenant_id, "--label", "laptop")

    secret = result.stdout.strip()
    assert result.exit_code == 0
    assert secret.startswith("pst_") and "\n" not in secret
    assert "not" in result.stderr and "shown only now" in result.stderr
    assert authenticator().tenant_for("Bearer " + secret) == tenant_id


def test_given_a_revoked_token_when_listed_and_presented_then_revoked_and_refused(tenant_id: str) -> None:
    kept = run_json("tokens", "issue", tenant_id, "--label", "laptop")
    revoked = run_json("tokens", "issue", tenant_id, "--label", "ci")

    result = run("tokens", "revoke", tenant_id, revoked["token_id"])

    assert result.exit_code == 0, result.output
    status = {t["token_id"]: (t["status"], t["revoked"]) for t in run_json("tokens", "list", tenant_id)}
    assert status[kept["token_id"]] == ("active", None)
    assert status[revoked["token_id"]][0] == "revoked" and status[revoked["token_id"]][1].endswith("Z")
    with pytest.raises(Unauthenticated):
        authenticator().tenant_for("Bearer " + revoked["secret"])
    assert authenticator().tenant_for("Bearer " + kept["secret"]) == tenant_id


def test_given_a_revoked_token_when_revoked_again_then_unchanged(tenant_id: str) -> None:
    token = run_json("tokens", "issue", tenant_id, "--label", "ci")
    first = run_json("tokens", "revoke", tenant_id, token["token_id"])

    again = run_json("tokens", "revoke", tenant_id, token["token_id"])

    assert again["revoked"] == first["revoked"] and again["status"] == "revoked"


def test_given_an_unknown_tenant_when_issuing_a_token_then_exit_1(settings: Settings) -> None:
    result = run("tokens", "issue", "tn_nobody", "--label", "x")

    assert_one_line_error(result, "unknown tenant", "tn_nobody")


def test_given_an_unknown_tenant_when_listing_tokens_then_exit_1(settings: Settings) -> None:
    assert_one_line_error(run("tokens", "list", "tn_nobody"), "unknown tenant")


def test_given_an_unknown_token_when_revoking_then_exit_1(tenant_id: str) -> None:
    assert_one_line_error(run("tokens", "revoke", tenant_id, "tok_nope"), "unknown token", "tok_nope")


def test_given_another_tenants_token_when_revoking_then_exit_1_and_still_works(tenant_id: str) -> None:
    other = run_json("tenants", "create", "mallory")["tenant_id"]
    token = run_json("tokens", "issue", tenant_id, "--label", "laptop")

    result = run("tokens", "revoke", other, token["token_id"])

    assert_one_line_error(result, "unknown token")
    assert authenticator().tenant_for("Bearer " + token["secret"]) == tenant_id


# --- nodes --------------------------------------------------------------------


def register(node_id: str, peer: str, *extra: str) -> Result:
    return run("nodes", "register", node_id, "--rpc-url", f"http://{node_id}:5001", "--peer-id", peer, *extra)


def test_given_registered_nodes_when_listed_then_shown_and_removed_ones_gone(settings: Settings) -> None:
    a = register("node-a", PEER_A, "--multiaddr", "/ip4/203.0.113.1/tcp/4001", "--tag", "eu", "--tag", "ssd")
    b = register("node-b", PEER_B, "--multiaddr", f"/ip4/203.0.113.2/tcp/4001/p2p/{PEER_B}")
    listed = run_json("nodes", "list")
    table = run("nodes", "list")

    removed = run("nodes", "remove", "node-a")

    assert (a.exit_code, b.exit_code) == (0, 0), a.output + b.output
    assert [n["node_id"] for n in listed] == ["node-a", "node-b"]
    node_a = listed[0]
    assert node_a["rpc_url"] == "http://node-a:5001" and node_a["peer_id"] == PEER_A
    assert node_a["healthy"] is True
    assert node_a["multiaddrs"] == [f"/ip4/203.0.113.1/tcp/4001/p2p/{PEER_A}"]
    assert node_a["tags"] == ["eu", "ssd"]
    assert "node-a" in table.stdout and "eu,ssd" in table.stdout and "yes" in table.stdout
    assert removed.exit_code == 0
    assert [n["node_id"] for n in run_json("nodes", "list")] == ["node-b"]


def test_given_a_bad_multiaddr_when_registering_then_exit_1_and_nothing_registered(settings: Settings) -> None:
    result = register("node-a", PEER_A, "--multiaddr", "/ip4/999.0.0.1/tcp/4001")

    assert_one_line_error(result, "bad multiaddr", "/ip4/999.0.0.1/tcp/4001")
    assert run_json("nodes", "list") == []


def test_given_a_multiaddr_of_another_peer_when_registering_then_exit_1(settings: Settings) -> None:
    result = register("node-a", PEER_A, "--multiaddr", f"/ip4/203.0.113.1/tcp/4001/p2p/{PEER_B}")

    assert_one_line_error(result, "another peer")


def test_given_no_multiaddr_when_registering_then_exit_1(settings: Settings) -> None:
    assert_one_line_error(register("node-a", PEER_A), "multiaddr")


def test_given_an_unknown_node_when_removing_then_exit_1(settings: Settings) -> None:
    assert_one_line_error(run("nodes", "remove", "node-z"), "unknown node", "node-z")


def queued_drains(settings: Settings) -> list[str]:
    """The node ids of the drain messages waiting in the pin queue."""
    import boto3

    from chalicelib.queue.messages import decode

    got = boto3.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=settings.queue_url, MaxNumberOfMessages=10
    )
    return [decode(m["Body"]).node_id for m in got.get("Messages", []) if decode(m["Body"]).kind == "drain"]


def test_given_a_node_when_removed_then_its_drain_is_queued_and_the_output_says_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIN_QUEUE_URL", settings.queue_url)
    register("node-a", PEER_A, "--multiaddr", "/ip4/203.0.113.1/tcp/4001")

    removed = run("nodes", "remove", "node-a")

    assert removed.exit_code == 0, removed.output
    assert "removed node node-a" in removed.stdout and "re-replicated" in removed.stdout
    assert queued_drains(settings) == ["node-a"]


def test_given_no_queue_url_when_removing_then_the_drain_waits_in_the_outbox_for_the_sweep(settings: Settings) -> None:
    from chalicelib.queue.messages import decode
    from chalicelib.storage.outbox_entry import OutboxEntry

    register("node-a", PEER_A, "--multiaddr", "/ip4/203.0.113.1/tcp/4001")

    assert run_json("nodes", "remove", "node-a") == {"node_id": "node-a", "removed": True, "drain": "queued"}

    waiting = [
        decode(entry.body) for shard in range(settings.outbox_shards) for entry in OutboxEntry.query(f"shard#{shard}")
    ]
    assert [(message.kind, message.node_id) for message in waiting] == [("drain", "node-a")]


def test_given_a_removed_node_when_drained_again_then_queued_and_a_registered_one_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIN_QUEUE_URL", settings.queue_url)
    register("node-b", PEER_B, "--multiaddr", "/ip4/203.0.113.2/tcp/4001")

    again = run("nodes", "drain", "node-a")

    assert again.exit_code == 0, again.output
    assert queued_drains(settings) == ["node-a"]
    assert_one_line_error(run("nodes", "drain", "node-b"), "node-b", "registered", "nodes remove")


# --- tables -------------------------------------------------------------------


def test_given_no_endpoint_when_creating_tables_then_refuses_pointing_at_infra(aws: None) -> None:
    result = CliRunner().invoke(cli, ["--table-prefix", "fresh", "--region", "us-east-1", "tables", "create"])

    assert_one_line_error(result, "infra/", "--allow-aws")


def test_given_missing_tables_when_created_then_created_once_and_usable(aws: None) -> None:
    args: list[str] = ["--table-prefix", "fresh", "--region", "us-east-1", "--json"]

    first = CliRunner().invoke(cli, [*args, "tables", "create", "--allow-aws"])
    second = CliRunner().invoke(cli, [*args, "tables", "create", "--allow-aws"])
    tenant = CliRunner().invoke(cli, [*args, "tenants", "create", "carol"])

    assert first.exit_code == 0, first.output
    assert "fresh-tenants" in json.loads(first.stdout)["created"]
    assert json.loads(second.stdout)["created"] == []
    assert "fresh-nodes" in json.loads(second.stdout)["existing"]
    assert json.loads(tenant.stdout)["name"] == "carol"


def test_given_the_stage_tables_when_checked_then_each_matches_and_exit_0(settings: Settings) -> None:
    result = run("--json", "tables", "check")

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert {(f["state"], tuple(f["differences"])) for f in found} == {("matching", ())}
    assert "test-pins" in {f["table"] for f in found}


def test_given_a_table_of_another_layout_when_checked_then_named_with_what_to_do_on_aws(aws: None) -> None:
    create(old_pins_spec(replace(Settings(), table_prefix="old")))

    result = CliRunner().invoke(cli, ["--table-prefix", "old", "--region", "us-east-1", "tables", "check"])

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["other", "layout", "old-pins"]
    assert lines[1].strip() == "partition key pk expected, found tenant_id"
    assert "missing       old-tenants" in lines
    # and one line on stderr: tables on AWS are the service stack's, and nothing migrates them
    assert result.stderr.count("\n") == 1
    for fragment in ("another layout", "export", "make destroy-fleet destroy-service STAGE=dev", DESTROY_DOCS):
        assert fragment in result.stderr


def test_given_a_table_of_another_layout_when_creating_tables_then_refused_and_none_created(aws: None) -> None:
    create(old_pins_spec(replace(Settings(), table_prefix="old")))

    result = CliRunner().invoke(
        cli, ["--table-prefix", "old", "--region", "us-east-1", "tables", "create", "--allow-aws"]
    )

    assert_one_line_error(result, "refused, no table created", "old-pins: partition key pk expected, found tenant_id")
    assert existing_tables(replace(Settings(), table_prefix="old"), MODELS) == {"old-pins"}


def test_given_a_local_stack_started_by_older_code_when_creating_tables_then_told_to_restart_it() -> None:
    # a running local stack is moto in server mode: its tables live in memory only
    with emulated_aws() as endpoint_url:
        create(old_pins_spec(replace(Settings(), table_prefix="old")), endpoint_url=endpoint_url)

        result = CliRunner().invoke(cli, ["--endpoint-url", endpoint_url, "--table-prefix", "old", "tables", "create"])

    assert_one_line_error(result, "old-pins: partition key pk expected", "in memory", "start it again")
