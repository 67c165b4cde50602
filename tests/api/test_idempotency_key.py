"""The Idempotency-Key extension (openapi.yaml): a retried POST returns the
first answer and creates nothing; the key with another body is refused with
422; a bad key is a 400; without the header nothing changes."""

from __future__ import annotations

from tests.support.cids import cid_v1


def post(api, path: str, body: dict, key: str | None):
    return api.request("POST", path, json_body=body, headers={"Idempotency-Key": key} if key else None)


def test_a_retried_create_returns_the_first_pin_and_creates_nothing(api):
    # given a create with a key
    body = {"cid": cid_v1("idem-1"), "name": "a"}
    first = post(api, "/pins", body, "retry-me")
    # when the client retries it
    again = post(api, "/pins", body, "retry-me")
    # then the same request comes back, and there is one pin
    assert (first.status, again.status) == (202, 202)
    assert again.json["requestid"] == first.json["requestid"]
    assert api.list(status="queued,pinning,pinned,failed")["count"] == 1
    # and without a key, the same body makes a second request
    assert post(api, "/pins", body, None).json["requestid"] != first.json["requestid"]


def test_the_key_with_another_body_is_refused_and_changes_nothing(api):
    post(api, "/pins", {"cid": cid_v1("idem-2")}, "k")
    reply = post(api, "/pins", {"cid": cid_v1("idem-3")}, "k")
    assert (reply.status, reply.reason) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert api.list(status="queued,pinning,pinned,failed")["count"] == 1


def test_a_retried_replace_returns_its_successor(api):
    old = api.pin(cid_v1("idem-4"), name="v1")
    body = {"cid": cid_v1("idem-4"), "name": "v2"}
    first = post(api, f"/pins/{old['requestid']}", body, "replace-1")
    again = post(api, f"/pins/{old['requestid']}", body, "replace-1")
    assert again.status == 202 and again.json["requestid"] == first.json["requestid"]
    listed = api.list(status="queued,pinning,pinned,failed")
    assert (listed["count"], listed["results"][0]["pin"]["name"]) == (1, "v2")


def test_a_bad_key_is_a_clear_400(api):
    for key in ("x" * 256, "tab\there", "clé"):
        reply = post(api, "/pins", {"cid": cid_v1("idem-5")}, key)
        assert (reply.status, reply.reason) == (400, "INVALID_IDEMPOTENCY_KEY"), key
    assert api.list(status="queued,pinning,pinned,failed")["count"] == 0
