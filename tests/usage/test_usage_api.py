"""GET /usage shows the token's tenant's usage only; a bad month is a 400
Failure; a create beyond a quota is a 409 INSUFFICIENT_FUNDS that changes nothing."""

from __future__ import annotations

from tests.api.conftest import other_tenant, tenant_id  # noqa: F401 (fixtures)
from tests.api.helpers import assert_failure
from tests.support.cids import cid_v1


def pin_and_finish(api, services, tenant: str, cid: str, size: int) -> None:
    reply = api.request("POST", "/pins", json_body={"cid": cid})
    assert reply.status == 202
    pin = services.pins.get(tenant, reply.json["requestid"])
    pinning = services.store.update(pin, status="pinning")
    services.store.update(pinning, status="pinned", info={"dag_size": str(size)})


def test_each_tenant_sees_its_own_usage_only(api, services, tenant_id, other_tenant):  # noqa: F811
    # given alice with a pinned pin of 2048 bytes and a queued one, and bob with one pinned of 5
    pin_and_finish(api, services, tenant_id, cid_v1(b"a"), 2048)
    assert api.request("POST", "/pins", json_body={"cid": cid_v1(b"b")}).status == 202
    pin_and_finish(other_tenant.api, services, other_tenant.tenant_id, cid_v1(b"c"), 5)
    # when each asks for its usage
    alice, bob = api.request("GET", "/usage").json, other_tenant.api.request("GET", "/usage").json
    # then each sees its own
    assert alice["tenant"] == tenant_id and alice["bytes_pinned"] == 2048
    assert alice["pins"] == {"queued": 1, "pinning": 0, "pinned": 1, "failed": 0}
    assert bob["bytes_pinned"] == 5 and bob["pins"]["pinned"] == 1 and bob["pins"]["queued"] == 0
    # and a past month is readable (nothing was pinned then)
    old = api.request("GET", "/usage", params={"month": "2020-01"}).json
    assert old["month"] == "2020-01" and old["month_bytes"] == {"opening": 0, "ending": 0, "byte_hours": 0}


def test_requests_by_class_and_egress_are_counted(api, services, tenant_id):  # noqa: F811
    from chalicelib.storage.usage_counters import DynamoRequestCounts
    from chalicelib.usage.requests import RequestMeter

    # given a container that writes its counts at every request
    services.request_meter = RequestMeter(DynamoRequestCounts(), flush_seconds=0)
    # when alice lists, creates and asks for content
    api.request("GET", "/pins")
    api.request("POST", "/pins", json_body={"cid": cid_v1(b"a")})
    api.request("GET", f"/ipfs/{cid_v1(b'a')}", headers={"Accept": "application/vnd.ipld.raw"})
    services.request_meter.egress(tenant_id, 123)
    # then her usage counts each by class (this GET /usage too, a read) and the egress
    usage = api.request("GET", "/usage").json
    assert usage["requests"] == {"read": 2, "write": 1, "retrieve": 1}
    assert usage["egress_bytes"] == 123


def test_a_bad_month_is_a_400_failure(api):
    assert_failure(api.request("GET", "/usage", params={"month": "2026-13"}), 400, "INVALID_MONTH")
    assert_failure(api.request("GET", "/usage", params={"month": "march"}), 400, "INVALID_MONTH")


def test_usage_needs_a_token(api):
    assert_failure(api.as_token(None).request("GET", "/usage"), 401, "UNAUTHORIZED")


def test_a_create_beyond_the_quota_is_409_and_changes_nothing(api, services, tenant_id):  # noqa: F811
    # given alice may keep one pin and has one
    services.plan_admin.set_quotas(tenant_id, {"pins": 1})
    first = api.request("POST", "/pins", json_body={"cid": cid_v1(b"a")})
    assert first.status == 202
    # when she asks for another, and to replace the first
    refused = api.request("POST", "/pins", json_body={"cid": cid_v1(b"b")})
    replaced = api.request("POST", f"/pins/{first.json['requestid']}", json_body={"cid": cid_v1(b"b")})
    # then the create is refused naming the limit and her usage; the replace takes its place
    assert_failure(refused, 409, "INSUFFICIENT_FUNDS")
    assert "pins quota is 1 and 1 are in use" in refused.json["error"]["details"]
    assert replaced.status == 202
    listed = api.request("GET", "/pins", params={"status": "queued,pinning,pinned,failed"}).json
    assert listed["count"] == 1 and listed["results"][0]["requestid"] == replaced.json["requestid"]


def test_a_create_asking_more_filecoin_copies_than_the_quota_is_409(api, services, tenant_id):  # noqa: F811
    # given alice may have one Filecoin copy a request
    services.plan_admin.set_quotas(tenant_id, {"filecoin_copies": 1})
    # when she asks for two in a request's meta
    refused = api.request("POST", "/pins", json_body={"cid": cid_v1(b"a"), "meta": {"filecoin.copies": "2"}})
    # then it is refused naming the limit, and nothing was created
    assert_failure(refused, 409, "INSUFFICIENT_FUNDS")
    assert "filecoin_copies quota is 1 per request and 2 were asked" in refused.json["error"]["details"]
    assert api.request("GET", "/pins", params={"status": "queued,pinning,pinned,failed"}).json["count"] == 0


def test_other_methods_on_usage_are_405(api):
    assert_failure(api.request("DELETE", "/usage"), 405, "METHOD_NOT_ALLOWED")
