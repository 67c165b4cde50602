"""The webhooks extension of the API: registration, listing, removal and the
delivery log, every bad input a Failure-shaped 4xx (responses checked
against openapi.yaml by the client)."""

from __future__ import annotations

import pytest

from chalicelib.webhooks.endpoints import MAX_ENDPOINTS, Attempt

GLOBAL_URL = "https://93.184.215.14/hooks"


def register(api, url: str = GLOBAL_URL, events: list[str] | None = None):
    return api.request("POST", "/webhooks", json_body={"url": url, "events": events or ["pin.pinned"]})


def test_an_endpoint_is_registered_with_its_secret_shown_once(api):
    # Given a tenant
    # When it registers an endpoint
    reply = register(api, events=["pin.failed", "pin.pinned"])
    # Then the answer holds its secret, and its events in their documented order
    assert reply.status == 201
    created = reply.json
    assert created["secret"].startswith("whsec_") and created["events"] == ["pin.pinned", "pin.failed"]
    # and listing or reading it again never shows the secret
    listed = api.request("GET", "/webhooks").json["results"]
    assert [endpoint["id"] for endpoint in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.request("GET", f"/webhooks/{created['id']}").json


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"url": "http://93.184.215.14/", "events": ["pin.pinned"]}, 400, "INVALID_WEBHOOK"),
        ({"url": "https://10.0.0.1/", "events": ["pin.pinned"]}, 400, "INVALID_WEBHOOK"),
        ({"url": "https://127.0.0.1:8787/", "events": ["pin.pinned"]}, 400, "INVALID_WEBHOOK"),
        ({"url": "https://[fd00::1]/", "events": ["pin.pinned"]}, 400, "INVALID_WEBHOOK"),
        ({"url": GLOBAL_URL, "events": ["pin.exploded"]}, 400, "INVALID_WEBHOOK"),
        ({"url": GLOBAL_URL, "events": []}, 400, "INVALID_WEBHOOK"),
        ({"url": GLOBAL_URL, "events": "pin.pinned"}, 400, "BAD_REQUEST"),
        ({"url": 7, "events": ["pin.pinned"]}, 400, "INVALID_WEBHOOK"),
        ({"url": "https://" + "a" * 2100, "events": ["pin.pinned"]}, 400, "INVALID_WEBHOOK"),
        (["not", "an", "object"], 400, "BAD_REQUEST"),
    ],
)
def test_a_refused_registration_is_a_failure_and_registers_nothing(api, body, status, reason):
    # Given a body the service refuses
    # When it is posted
    reply = api.request("POST", "/webhooks", json_body=body)
    # Then the answer is a Failure with its reason, and no endpoint exists
    assert (reply.status, reply.reason) == (status, reason)
    assert api.request("GET", "/webhooks").json["results"] == []


def test_bodies_that_are_not_json_are_failures(api):
    # Given bodies that are not a JSON object
    # When they are posted
    # Then each is a 4xx in the Failure shape
    cases = [
        ({"Content-Type": "text/plain"}, b"{}", 400, "UNSUPPORTED_CONTENT_TYPE"),
        ({"Content-Type": "application/json"}, b"{nope", 400, "INVALID_JSON"),
        ({"Content-Type": "application/json"}, b"", 400, "INVALID_JSON"),
        ({"Content-Type": "application/json"}, b" " * 9000, 413, "PAYLOAD_TOO_LARGE"),
    ]
    for headers, body, status, reason in cases:
        reply = api.request("POST", "/webhooks", body=body, headers=headers)
        assert (reply.status, reply.reason) == (status, reason)


def test_a_tenant_has_at_most_so_many_endpoints(api):
    # Given a tenant with the most endpoints it may have
    for _ in range(MAX_ENDPOINTS):
        assert register(api).status == 201
    # When it registers one more
    reply = register(api)
    # Then it is refused with 409
    assert (reply.status, reply.reason) == (409, "TOO_MANY_WEBHOOKS")


def test_removing_an_endpoint_and_another_tenants_ids_are_not_found(api, services):
    # Given an endpoint of this tenant, and another tenant's token
    created = register(api).json
    other = services.admin.issue_token(services.admin.create_tenant("bob").tenant_id, "bob's").secret
    bob = api.as_token(other)
    # When the other tenant reads, lists the log of, or removes it
    # Then it is not found for them
    assert bob.request("GET", f"/webhooks/{created['id']}").status == 404
    assert bob.request("GET", f"/webhooks/{created['id']}/deliveries").status == 404
    assert bob.request("DELETE", f"/webhooks/{created['id']}").reason == "NOT_FOUND"
    # When its tenant removes it, twice
    assert api.request("DELETE", f"/webhooks/{created['id']}").status == 204
    assert api.request("DELETE", f"/webhooks/{created['id']}").status == 404
    # Then it is gone
    assert api.request("GET", "/webhooks").json["results"] == []


def test_the_delivery_log_shows_the_last_attempts(api, services):
    # Given an endpoint with two attempts logged
    created = register(api).json
    repository = services.webhooks.endpoints._repository
    for at_ms, status in ((1_000, 500), (2_000, 204)):
        error = None if status == 204 else "answered 500"
        repository.log(Attempt(created["id"], at_ms, "msg_1", "pin.pinned", at_ms // 1000, status, error, 3), 10**13)
    # When its log is read, whole and limited
    whole = api.request("GET", f"/webhooks/{created['id']}/deliveries").json["results"]
    last = api.request("GET", f"/webhooks/{created['id']}/deliveries", params={"limit": 1}).json["results"]
    # Then the attempts come newest first
    assert [(a["status_code"], a["delivered"], a["error"]) for a in whole] == [
        (204, True, None),
        (500, False, "answered 500"),
    ]
    assert len(last) == 1
    # and a bad limit is a Failure
    bad = api.request("GET", f"/webhooks/{created['id']}/deliveries", params={"limit": 0})
    assert (bad.status, bad.reason) == (400, "BAD_REQUEST")


def test_other_methods_are_not_allowed(api):
    # Given the webhooks paths
    # When methods they do not take are used
    # Then each answers 405 with the methods allowed
    assert api.request("PUT", "/webhooks").headers["Allow"] == "GET, POST"
    assert api.request("PATCH", "/webhooks/ep_x").headers["Allow"] == "GET, DELETE"
