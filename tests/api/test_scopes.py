"""Scoped tokens: `read` lists and gets, `write` does everything (the default,
so tokens issued before scopes keep working), `retrieve` only reads content
(GET/HEAD /ipfs/{cid}). A known tenant's token lacking the scope gets 403,
decided before anything about the request's ids is read: another tenant's
ids stay 404 for tokens that may read, and look like unknown ones to tokens
that may not."""

from __future__ import annotations

import uuid

import pytest
from chalice.test import Client

from chalicelib.storage.tenant_record import ApiTokenRecord
from chalicelib.tenants.scopes import UnknownScope
from chalicelib.tenants.tokens import hash_secret, new_secret
from tests.api.helpers import ALL_STATUSES, assert_failure
from tests.support.api import Reply
from tests.support.cids import cid_v1

RAW = "application/vnd.ipld.raw"
# The spec's probe CID (identity hash, empty): served without reading anything.
PROBE = "bafkqaaa"


def retrieve(token):
    """GET /ipfs/{PROBE} raw (Chalice's client: its empty body is what the spec's probe answers)."""
    import app as app_module

    with Client(app_module.app) as client:
        response = client.http.get(f"/ipfs/{PROBE}", headers={"Authorization": f"Bearer {token.token}", "Accept": RAW})
    return Reply(response.status_code, dict(response.headers), response.body or b"")


def scoped(api, services, tenant_id, scope):
    return api.as_token(services.admin.issue_token(tenant_id, f"{scope}-token", scope).secret)


def writes(pin):
    """Every write of the Pinning Service API, on `pin`'s request id."""
    return [
        ("POST", "/pins", {"cid": cid_v1("scoped-new")}),
        ("POST", f"/pins/{pin['requestid']}", {"cid": cid_v1("scoped-replacement")}),
        ("DELETE", f"/pins/{pin['requestid']}", None),
    ]


def test_a_read_token_lists_and_gets_but_may_not_write_or_retrieve(api, services, tenant_id, pin_queue):
    # given a tenant's pin and a read-only token of the same tenant
    pin = api.pin(cid_v1("readable"))
    pin_queue.drain()
    reader = scoped(api, services, tenant_id, "read")

    # then it lists and gets the tenant's pins
    assert reader.list(status=ALL_STATUSES) == {"count": 1, "results": [pin]}
    assert reader.request("GET", f"/pins/{pin['requestid']}").json == pin

    # and every write is 403, naming the scope it needs, and changes nothing
    for method, path, body in writes(pin):
        reply = reader.request(method, path, json_body=body)
        assert_failure(reply, 403, "FORBIDDEN")
        assert "'write' scope" in reply.json["error"]["details"], (method, path)
    assert api.list(status=ALL_STATUSES) == {"count": 1, "results": [pin]}
    assert pin_queue.drain() == []

    # and retrieval is 403 too
    assert_failure(retrieve(reader), 403, "FORBIDDEN")


def test_a_retrieve_token_reads_content_only(api, services, tenant_id):
    # given a pin and a retrieval-only token
    pin = api.pin(cid_v1("retrievable"))
    retriever = scoped(api, services, tenant_id, "retrieve")

    # then it retrieves
    reply = retrieve(retriever)
    assert (reply.status, reply.body) == (200, b"")

    # and every Pinning Service API call is 403, naming the scope needed
    reads = [("GET", "/pins", None), ("GET", f"/pins/{pin['requestid']}", None)]
    for method, path, body in reads + writes(pin):
        reply = retriever.request(method, path, json_body=body)
        assert_failure(reply, 403, "FORBIDDEN")
        needed = "'read' scope" if method == "GET" else "'write' scope"
        assert needed in reply.json["error"]["details"], (method, path)
    assert api.list(status=ALL_STATUSES) == {"count": 1, "results": [pin]}


def test_a_write_token_does_everything(api, services, tenant_id):
    writer = scoped(api, services, tenant_id, "write")
    pin = writer.pin(cid_v1("written"))
    assert writer.list(status=ALL_STATUSES)["count"] == 1
    assert writer.request("GET", f"/pins/{pin['requestid']}").status == 200
    assert retrieve(writer).status == 200
    replaced = writer.request("POST", f"/pins/{pin['requestid']}", json_body={"cid": cid_v1("rewritten")})
    assert replaced.status == 202
    assert writer.request("DELETE", f"/pins/{replaced.json['requestid']}").status == 202


def test_another_tenants_ids_stay_not_found_and_forbidden_reveals_nothing(api, services, other_tenant):
    # given alice's pin, and bob's read-only and retrieval-only tokens
    alice_pin = api.pin(cid_v1("alice-private"))
    bob_reader = scoped(api, services, other_tenant.tenant_id, "read")
    bob_retriever = scoped(api, services, other_tenant.tenant_id, "retrieve")
    unknown = str(uuid.UUID(int=uuid.UUID(alice_pin["requestid"]).int ^ 1))

    # then bob's reader is told alice's request does not exist, exactly as for an unknown id
    expected = bob_reader.request("GET", f"/pins/{unknown}")
    assert_failure(expected, 404, "NOT_FOUND")
    reply = bob_reader.request("GET", f"/pins/{alice_pin['requestid']}")
    assert (reply.status, reply.json) == (expected.status, expected.json)

    # and tokens that may not do something get the same 403 for alice's id as for an unknown one
    for token, method, body in [
        (bob_reader, "POST", {"cid": cid_v1("hijack")}),
        (bob_reader, "DELETE", None),
        (bob_retriever, "GET", None),
        (bob_retriever, "DELETE", None),
    ]:
        expected = token.request(method, f"/pins/{unknown}", json_body=body)
        assert_failure(expected, 403, "FORBIDDEN")
        reply = token.request(method, f"/pins/{alice_pin['requestid']}", json_body=body)
        assert (reply.status, reply.json) == (expected.status, expected.json), method

    # and alice's pin is untouched
    assert api.list(status=ALL_STATUSES) == {"count": 1, "results": [alice_pin]}


def test_a_token_stored_before_scopes_existed_may_write(api, services, tenant_id):
    # given a token record with no scope attribute, as tokens were stored before scopes
    secret = new_secret()
    ApiTokenRecord(hash_secret(secret), token_id="tok_old", tenant_id=tenant_id, label="old", created_ms=1).save()
    assert ApiTokenRecord.get(hash_secret(secret)).scope is None
    old = api.as_token(secret)

    # then it is a write token: it pins, and lists it
    pin = old.pin(cid_v1("old-token"))
    assert old.list(status=ALL_STATUSES)["results"] == [pin]
    assert {token.token_id: token.scope for token in services.admin.tokens(tenant_id)}["tok_old"] == "write"


def test_an_unknown_scope_is_refused_and_no_token_issued(services, tenant_id):
    with pytest.raises(UnknownScope):
        services.admin.issue_token(tenant_id, "typo", "admin")
    assert [token.label for token in services.admin.tokens(tenant_id)] == ["laptop"]
