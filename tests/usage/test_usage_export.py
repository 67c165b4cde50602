"""Monthly usage records as JSON lines in S3 (moto): one line per tenant,
the month's figures only, the same object when written again."""

from __future__ import annotations

import json
from dataclasses import replace

from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import PinRequest
from chalicelib.storage.pin_keys import shard_key
from chalicelib.usage.export import UsageExport
from chalicelib.usage.months import Month
from chalicelib.wiring import build_services
from tests.cold.s3 import s3_client

CID = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
FEBRUARY, MARCH = Month(2026, 2), Month(2026, 3)
HOUR = 3_600_000


def test_the_month_just_ended_is_written_once_per_tenant_and_again_the_same(settings):
    # given a bucket, alice who pinned 1000 bytes an hour before March, and bob
    s3 = s3_client()
    s3.create_bucket(Bucket="usage-bucket")
    services = build_services(replace(settings, usage_bucket="usage-bucket"))
    services.registry.register(
        "node-a",
        "http://127.0.0.1:5101",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        ["/ip4/203.0.113.2/tcp/4001"],
    )
    alice = services.admin.create_tenant("alice").tenant_id
    bob = services.admin.create_tenant("bob").tenant_id
    services.store.usage_clock = lambda: MARCH.start_ms - HOUR
    pin = services.pins.create(alice, PinRequest(cid=CID))
    services.store.update(services.store.update(pin, status="pinning"), status="pinned", info={"dag_size": "1000"})
    services.usage_folder.fold(shard_key(alice, 0))
    # when the schedule runs on the 1st of March, and once more
    export = UsageExport(
        lambda: (tenant.tenant_id for tenant in services.tenants.all()),
        services.usage,
        s3,
        "usage-bucket",
        clock=lambda: MARCH.start_ms + HOUR,
        operator=services.operator_ledger,
    )
    first = export.export()
    body = s3.get_object(Bucket="usage-bucket", Key=first)["Body"].read()
    again = export.export()
    # then February's records are there, one line a tenant, and the second write is the same object
    assert first == again == "usage/2026-02.jsonl"
    assert s3.get_object(Bucket="usage-bucket", Key=again)["Body"].read() == body
    records = [json.loads(line) for line in body.decode().splitlines()]
    assert [record["tenant"] for record in records] == [alice, bob]
    assert records[0] == {
        "tenant": alice,
        "month": "2026-02",
        "opening_bytes": 0,
        "ending_bytes": 1000,
        "byte_hours": 1000,
        "cold_ending_bytes": 0,
        "cold_byte_hours": 0,
        "filecoin_ending_bytes": 0,
        "filecoin_byte_hours": 0,
        "requests": {"read": 0, "write": 0, "retrieve": 0},
        "egress_bytes": 0,
    }
    # and the operator's unique bytes of the month beside them
    operator = json.loads(s3.get_object(Bucket="usage-bucket", Key="usage/2026-02.operator.json")["Body"].read())
    assert operator == {
        "month": "2026-02",
        "opening_unique_bytes": 0,
        "ending_unique_bytes": 1000,
        "unique_byte_hours": 1000,
    }
    # and a month named by hand is written under its own key
    assert export.export(FEBRUARY.next()) == "usage/2026-03.jsonl"


def test_without_a_bucket_the_schedule_exports_nothing(services):
    from chalice.test import Client

    import app as app_module

    app_module.services.install(services)
    try:
        with Client(app_module.app) as client:
            scheduled = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
            assert client.lambda_.invoke("export_usage", scheduled).payload is None
    finally:
        app_module.services.install(None)
