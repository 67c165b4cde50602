"""Tenants are walled off from each other, a tenant's tokens all see the same
pins, and only a valid, unrevoked bearer token gets in."""

from __future__ import annotations

import uuid

import pytest

from chalicelib.pins.service import PinService
from chalicelib.storage.pin_store import PinStore
from chalicelib.tenants.authenticator import Authenticator
from tests.api.conftest import FakeClock
from tests.api.helpers import ALL_STATUSES, assert_failure, header
from tests.support.cids import cid_v1


def snapshot(api):
    return api.list(status=ALL_STATUSES, limit=1000)


def test_a_tenant_never_sees_counts_or_touches_another_tenants_pins(api, other_tenant, set_status, pin_queue):
    # given alice's pins in several statuses, with a name and meta
    cid = cid_v1("alice-only")
    mine = [api.pin(cid, name="private", meta={"owner": "alice"}) for _ in range(3)]
    set_status(mine[0]["requestid"], "pinned")
    set_status(mine[1]["requestid"], "failed")
    before = snapshot(api)
    pin_queue.drain()
    bob = other_tenant.api

    # then bob's every listing and count is empty
    for params in [
        {},
        {"status": ALL_STATUSES},
        {"status": "pinned", "limit": 1},
        {"cid": cid},
        {"name": "private"},
        {"name": "PRIV", "match": "ipartial"},
        {"meta": '{"owner":"alice"}'},
    ]:
        assert bob.list(**params) == {"count": 0, "results": []}, params

    # and bob is told alice's requests do not exist, exactly as for an unknown id
    unknown = str(uuid.UUID(int=uuid.UUID(mine[0]["requestid"]).int ^ 1))
    for method, body in [("GET", None), ("POST", {"cid": cid_v1("hijack")}), ("DELETE", None)]:
        expected = bob.request(method, f"/pins/{unknown}", json_body=body)
        assert_failure(expected, 404, "NOT_FOUND")
        for pin in mine:
            reply = bob.request(method, f"/pins/{pin['requestid']}", json_body=body)
            assert (reply.status, reply.json) == (expected.status, expected.json), method

    # and alice's pins, counts and the queue are untouched
    assert snapshot(api) == before
    assert pin_queue.drain() == []
    assert snapshot(bob) == {"count": 0, "results": []}


def test_a_request_id_of_another_tenant_is_unknown_even_at_the_same_millisecond(api, other_tenant, services, pin_clock):
    # given alice and bob each have a pin created in the same millisecond
    # (accepted by two different containers)
    alice_pin = api.pin(cid_v1("alice-same-ms"))
    services.pins = PinService(
        PinStore(services.dynamo),
        services.registry,
        services.outbox,
        services.settings.replication_factor,
        clock=pin_clock,
    )
    bob_pin = other_tenant.api.pin(cid_v1("bob-same-ms"))
    assert bob_pin["created"] == alice_pin["created"]

    # then neither can read, replace or delete the other's by id
    for reader, pin in [(other_tenant.api, alice_pin), (api, bob_pin)]:
        assert_failure(reader.request("GET", f"/pins/{pin['requestid']}"), 404, "NOT_FOUND")
        assert_failure(
            reader.request("POST", f"/pins/{pin['requestid']}", json_body={"cid": cid_v1("x")}), 404, "NOT_FOUND"
        )
        assert_failure(reader.request("DELETE", f"/pins/{pin['requestid']}"), 404, "NOT_FOUND")
    # and both pins are intact, each listed for its owner only
    assert api.list(status=ALL_STATUSES)["results"] == [alice_pin]
    assert other_tenant.api.list(status=ALL_STATUSES)["results"] == [bob_pin]


def test_the_same_cid_pinned_by_two_tenants_is_two_independent_requests(api, other_tenant):
    # given alice and bob pin the same CID
    cid = cid_v1("shared-content")
    alice_pin = api.pin(cid, name="alice")
    bob_pin = other_tenant.api.pin(cid, name="bob")
    assert alice_pin["requestid"] != bob_pin["requestid"]

    # then each sees only their own
    assert [item["requestid"] for item in api.list(cid=cid)["results"]] == [alice_pin["requestid"]]
    assert [item["requestid"] for item in other_tenant.api.list(cid=cid)["results"]] == [bob_pin["requestid"]]

    # when bob deletes his, alice's stays
    assert other_tenant.api.request("DELETE", f"/pins/{bob_pin['requestid']}").status == 202
    assert api.request("GET", f"/pins/{alice_pin['requestid']}").json == alice_pin
    assert api.list(cid=cid)["count"] == 1
    assert other_tenant.api.list(cid=cid)["count"] == 0


def test_every_token_of_a_tenant_sees_and_manages_the_same_pins(api, services, tenant_id):
    # given a second token for the same tenant
    phone = api.as_token(services.admin.issue_token(tenant_id, "phone").secret)

    # when each token creates a pin
    from_laptop = api.pin(cid_v1("laptop"))
    from_phone = phone.pin(cid_v1("phone"))

    # then both tokens list both, and each can read and remove the other's
    assert api.list(status="queued") == phone.list(status="queued")
    assert api.list(status="queued")["count"] == 2
    assert phone.request("GET", f"/pins/{from_laptop['requestid']}").json == from_laptop
    assert api.request("DELETE", f"/pins/{from_phone['requestid']}").status == 202
    assert phone.list(status="queued")["results"] == [from_laptop]


@pytest.mark.parametrize(
    "authorization",
    # (missing, empty, Basic and unknown tokens are rows of test_bad_requests.py)
    [None, "Token {token}", "{token}", "Bearer", "Bearer {token}x", "Bearer " + "x" * 5000, "Bearer {token}\ud800"],
    ids=["missing", "token-scheme", "no-scheme", "bearer-only", "altered", "huge", "lone-surrogate"],
)
def test_requests_without_a_valid_bearer_token_get_401(api, tenant_token, authorization):
    headers = {} if authorization is None else {"Authorization": authorization.replace("{token}", tenant_token)}
    anonymous = api.as_token(None)
    pin = api.pin(cid_v1("guarded"))
    for method, path, body in [
        ("GET", "/pins", None),
        ("POST", "/pins", {"cid": cid_v1("intruder")}),
        ("GET", f"/pins/{pin['requestid']}", None),
        ("POST", f"/pins/{pin['requestid']}", {"cid": cid_v1("intruder")}),
        ("DELETE", f"/pins/{pin['requestid']}", None),
    ]:
        reply = anonymous.request(method, path, json_body=body, headers=headers)
        assert_failure(reply, 401, "UNAUTHORIZED")
        assert "bearer" in (header(reply, "WWW-Authenticate") or "").lower()
    # nothing was created, replaced or deleted
    assert api.list(status=ALL_STATUSES) == {"count": 1, "results": [pin]}


def test_the_bearer_scheme_is_case_insensitive(api, tenant_token):
    reply = api.as_token(None).request("GET", "/pins", headers={"Authorization": f"bearer {tenant_token}"})
    assert reply.status == 200


def test_a_revoked_token_stops_working_once_the_cache_period_passes(api, services, tenant_id, tenant_token):
    # given a tenant with two tokens, both in use, and a clock the test moves
    clock = FakeClock(1_700_000_000_000)
    services.authenticator = Authenticator(services.tokens, cache_seconds=60, clock=clock)
    admin = services.admin
    spare = admin.issue_token(tenant_id, "spare")
    spare_api = api.as_token(spare.secret)
    laptop_token_id = next(token.token_id for token in admin.tokens(tenant_id) if token.label == "laptop")
    pin = api.pin(cid_v1("revocation"))
    assert spare_api.list(status="queued")["count"] == 1

    # when the laptop's token is revoked and the cache period passes
    admin.revoke_token(tenant_id, laptop_token_id)
    clock.advance(60_001)

    # then the revoked token is refused everywhere
    assert_failure(api.request("GET", "/pins"), 401, "UNAUTHORIZED")
    assert_failure(api.request("GET", f"/pins/{pin['requestid']}"), 401, "UNAUTHORIZED")
    assert_failure(api.request("POST", "/pins", json_body={"cid": cid_v1("after revocation")}), 401, "UNAUTHORIZED")
    assert_failure(api.request("DELETE", f"/pins/{pin['requestid']}"), 401, "UNAUTHORIZED")
    # and the other token still works, on pins the revoked one created
    assert spare_api.list(status="queued") == {"count": 1, "results": [pin]}
    assert spare_api.request("DELETE", f"/pins/{pin['requestid']}").status == 202
