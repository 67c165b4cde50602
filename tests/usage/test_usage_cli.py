"""`cli.admin usage` and `tenants plan` / `tenants quota` against emulated DynamoDB (moto)."""

from __future__ import annotations

from chalicelib.config import Settings
from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import PinRequest
from chalicelib.storage.pin_keys import shard_key
from chalicelib.storage.usage_plans import DynamoPlanRepository
from chalicelib.wiring import build_services
from tests.cli.test_admin_cli import assert_one_line_error, run, run_json

CID = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")


def test_plans_and_quotas_set_from_the_cli(settings: Settings) -> None:
    # given a tenant on the stage's default plan
    tenant_id = run_json("tenants", "create", "alice")["tenant_id"]
    assert run_json("tenants", "plan", tenant_id)["plan"] == "unlimited"
    # when put on free, with its pins raised and its in-flight limit set
    run("tenants", "plan", tenant_id, "free")
    shown = run_json("tenants", "quota", tenant_id, "--pins", "5000", "--in-flight", "7")
    # then the quotas are free's but for those, as stored for the API to read
    assert shown["plan"] == "free" and shown["overrides"] == {"pins": 5000, "in_flight": 7}
    assert shown["quotas"]["pins"] == 5000 and shown["quotas"]["bytes"] == 5 * 1024**3
    assert DynamoPlanRepository().get(tenant_id).overrides == {"pins": 5000, "in_flight": 7}
    # and `plan` drops an override
    back = run("tenants", "quota", tenant_id, "--pins", "plan")
    assert back.exit_code == 0 and "pins:             1000" in back.stdout
    # and a bad plan, quota or tenant is one line on stderr
    assert_one_line_error(run("tenants", "plan", tenant_id, "gold"), "no plan 'gold'")
    assert_one_line_error(run("tenants", "quota", tenant_id, "--pins", "-3"), "whole number")
    assert_one_line_error(run("tenants", "quota", tenant_id), "give at least one")
    assert_one_line_error(run("tenants", "plan", "tn_nobody", "free"), "unknown tenant")


def test_usage_of_one_tenant_and_of_all(settings: Settings) -> None:
    # given alice with a pinned pin of 4096 bytes and bob with nothing
    alice = run_json("tenants", "create", "alice")["tenant_id"]
    bob = run_json("tenants", "create", "bob")["tenant_id"]
    services = build_services(settings)
    services.registry.register(
        "node-a",
        "http://127.0.0.1:5101",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        ["/ip4/203.0.113.2/tcp/4001"],
    )
    pin = services.pins.create(alice, PinRequest(cid=CID))
    services.store.update(services.store.update(pin, status="pinning"), status="pinned", info={"dag_size": "4096"})
    # when the operator asks for alice's usage, and everyone's
    one = run_json("usage", alice)
    every = run_json("usage", "--all")
    table = run("usage", "--all", "--month", "2020-01")
    # then alice's is hers, the report has both, and a past month reads as empty
    assert one["bytes_pinned"] == 4096 and one["pins"]["pinned"] == 1 and one["filecoin_bytes"] == 0
    assert [(row["tenant"], row["bytes_pinned"]) for row in every["tenants"]] == [(alice, 4096), (bob, 0)]
    assert table.exit_code == 0 and "2020-01" in table.stdout and alice in table.stdout
    assert "0 unique bytes now; 2020-01: 0 as it began" in table.stdout
    # and once bob pins the same CID and the changes fold, the operator stores its bytes once
    pin = services.pins.create(bob, PinRequest(cid=CID))
    services.store.update(services.store.update(pin, status="pinning"), status="pinned", info={"dag_size": "4096"})
    for tenant_id in (alice, bob):
        services.usage_folder.fold(shard_key(tenant_id, 0))
    operator = run_json("usage", "--all")["operator"]
    assert operator["unique_bytes"] == 4096 and operator["month_unique_bytes"]["ending"] == 4096
    # and a bad month or a missing tenant is one line on stderr
    assert_one_line_error(run("usage", alice, "--month", "2020-1"), "YYYY-MM")
    assert_one_line_error(run("usage"), "TENANT_ID or --all")
    assert_one_line_error(run("usage", "tn_nobody"), "unknown tenant")
