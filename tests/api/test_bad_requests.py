"""Every request the service must refuse, in one table: the status, the
machine-readable reason, a human-readable explanation, and proof that nothing
changed (the tenant's pins and counts in every status, and the pin queue)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from chalice.test import Client

from tests.api.helpers import ALL_STATUSES, assert_failure, header
from tests.support.api import Reply
from tests.support.cids import cid_v0_pair, cid_v1, cid_with_hash, origin

CID = cid_v1("valid")
V0, _ = cid_v0_pair("valid-v0")
GOOD = {"cid": CID}
KIB = 1024


@dataclass
class Bad:
    method: str
    path: str
    status: int
    reason: str
    json: Any = None  # sent as application/json
    body: bytes | None = None  # sent as is
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # Not a documented path: sent past the OpenAPI check of the api client.
    undocumented: bool = False
    # False: no Authorization header at all (unless `headers` has one).
    with_token: bool = True


def post(json_body: Any = None, **kwargs: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/pins", "json": json_body, **kwargs}


def query(**params: Any) -> dict[str, Any]:
    return {"method": "GET", "path": "/pins", "params": params}


def row(id_: str, request: dict[str, Any], status: int, reason: str):
    return pytest.param(Bad(status=status, reason=reason, **request), id=id_)


def bad_body(id_: str, json_body: Any, reason: str):
    return row(id_, post(json_body), 400, reason)


def bad_query(id_: str, **params: Any):
    return row(id_, query(**params), 400, "INVALID_QUERY")


JSON = {"Content-Type": "application/json"}
GOOD_RAW = json.dumps(GOOD).encode()
# Deeper than Python's recursion limit, still under the 64 KiB body limit.
DEEP = 30_000
DEEP_ARRAY = b"[" * DEEP + b"]" * DEEP


def nested(levels: int) -> list[Any]:
    """An array `levels` deep: [[[]]] is 3."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


# JSON's \ud800-style escapes decode to lone surrogates: not Unicode text, so
# neither storable nor encodable (json.dumps writes them as such escapes).
LONE_SURROGATES = {"high": "\ud800", "low": "x\udfff", "reversed-pair": "\udc00\ud800"}


def raw_post(body: bytes, path: str = "/pins") -> dict[str, Any]:
    return {"method": "POST", "path": path, "body": body, "headers": JSON}


def replace(json_body: Any) -> dict[str, Any]:
    return {"method": "POST", "path": "/pins/{pin}", "json": json_body}


ROWS = [
    # -- the body as a whole -------------------------------------------------
    row("malformed-json", post(body=b'{"cid": ', headers=JSON), 400, "INVALID_JSON"),
    row("not-utf8", post(body=b'{"cid": "\xff\xfe"}', headers=JSON), 400, "INVALID_JSON"),
    row("empty-body", post(body=b"", headers=JSON), 400, "INVALID_JSON"),
    bad_body("body-array", [GOOD], "BAD_REQUEST"),
    bad_body("body-string", CID, "BAD_REQUEST"),
    row("body-null", post(body=b"null", headers=JSON), 400, "BAD_REQUEST"),
    row(
        "text-plain",
        post(body=json.dumps(GOOD).encode(), headers={"Content-Type": "text/plain"}),
        400,
        "UNSUPPORTED_CONTENT_TYPE",
    ),
    row(
        "multipart",
        post(
            body=b'--x\r\nContent-Disposition: form-data; name="cid"\r\n\r\n' + CID.encode() + b"\r\n--x--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        ),
        400,
        "UNSUPPORTED_CONTENT_TYPE",
    ),
    row(
        "form-urlencoded",
        post(body=f"cid={CID}".encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}),
        400,
        "UNSUPPORTED_CONTENT_TYPE",
    ),
    row("over-64KiB", post({"cid": CID, "name": "n", "pad": "x" * (64 * KIB)}), 413, "PAYLOAD_TOO_LARGE"),
    # -- hostile and lenient JSON: refused, never a 500 ------------------------
    row("nested-30000-deep", raw_post(DEEP_ARRAY), 400, "INVALID_JSON"),
    row(
        "nested-30000-deep-in-a-field",
        raw_post(b'{"cid":"' + CID.encode() + b'","x":' + DEEP_ARRAY + b"}"),
        400,
        "INVALID_JSON",
    ),
    row("nested-30000-deep-objects", raw_post(b'{"a":' * 10_000 + b"1" + b"}" * 10_000), 400, "INVALID_JSON"),
    # the documented bound: a Pin nests 2 deep, anything at all at most 32
    bad_body("nested-33-deep", {"cid": CID, "x": nested(32)}, "INVALID_JSON"),
    row("nan-literal", raw_post(b'{"cid":"' + CID.encode() + b'","x":NaN}'), 400, "INVALID_JSON"),
    row("infinity-literal", raw_post(b'{"cid":"' + CID.encode() + b'","x":Infinity}'), 400, "INVALID_JSON"),
    row("minus-infinity-literal", raw_post(b'{"cid":"' + CID.encode() + b'","x":-Infinity}'), 400, "INVALID_JSON"),
    row("utf8-bom", raw_post(b"\xef\xbb\xbf" + GOOD_RAW), 400, "INVALID_JSON"),
    row("utf16-le-bom", raw_post(json.dumps(GOOD).encode("utf-16")), 400, "INVALID_JSON"),
    row("utf16-be", raw_post(json.dumps(GOOD).encode("utf-16-be")), 400, "INVALID_JSON"),
    row("utf16-le", raw_post(json.dumps(GOOD).encode("utf-16-le")), 400, "INVALID_JSON"),
    row("utf32", raw_post(json.dumps(GOOD).encode("utf-32")), 400, "INVALID_JSON"),
    row(
        "utf16-le-charset",
        {
            **raw_post(json.dumps(GOOD).encode("utf-16-le")),
            "headers": {"Content-Type": "application/json; charset=utf-16"},
        },
        400,
        "INVALID_JSON",
    ),
    # -- cid -------------------------------------------------------------------
    bad_body("missing-cid", {"name": "no cid"}, "INVALID_CID"),
    bad_body("cid-number", {"cid": 42}, "INVALID_CID"),
    bad_body("cid-null", {"cid": None}, "INVALID_CID"),
    bad_body("cid-object", {"cid": {"/": CID}}, "INVALID_CID"),
    bad_body("cid-empty", {"cid": ""}, "INVALID_CID"),
    bad_body("cid-garbage", {"cid": "not-a-cid"}, "INVALID_CID"),
    bad_body("cid-truncated-digest", {"cid": CID[:-6]}, "INVALID_CID"),
    bad_body("cid-v0-truncated", {"cid": V0[:-3]}, "INVALID_CID"),
    bad_body("cid-md5", {"cid": cid_with_hash("md5", "md5", 16)}, "INVALID_CID"),
    bad_body("cid-blake2b-128", {"cid": cid_with_hash("b2", "blake2b-128", 16)}, "INVALID_CID"),
    bad_body("cid-padded-with-space", {"cid": f" {CID} "}, "INVALID_CID"),
    bad_body("cid-lone-surrogate", {"cid": CID[:-1] + "\ud800"}, "INVALID_CID"),
    # -- name ------------------------------------------------------------------
    bad_body("name-number", {"cid": CID, "name": 7}, "INVALID_NAME"),
    bad_body("name-256-chars", {"cid": CID, "name": "n" * 256}, "INVALID_NAME"),
    *(
        bad_body(f"name-{kind}-surrogate", {"cid": CID, "name": text}, "INVALID_NAME")
        for kind, text in LONE_SURROGATES.items()
    ),
    # -- origins ---------------------------------------------------------------
    bad_body("origins-string", {"cid": CID, "origins": origin("a")}, "INVALID_ORIGINS"),
    bad_body("origins-21", {"cid": CID, "origins": [origin(i) for i in range(21)]}, "INVALID_ORIGINS"),
    bad_body("origins-duplicate", {"cid": CID, "origins": [origin("a"), origin("b"), origin("a")]}, "INVALID_ORIGINS"),
    bad_body("origin-without-p2p", {"cid": CID, "origins": ["/ip4/198.51.100.7/tcp/4001"]}, "INVALID_ORIGINS"),
    bad_body(
        "origin-bad-peer-id", {"cid": CID, "origins": ["/ip4/198.51.100.7/tcp/4001/p2p/QmNotAPeer"]}, "INVALID_ORIGINS"
    ),
    bad_body("origin-not-multiaddr", {"cid": CID, "origins": ["https://example.com"]}, "INVALID_ORIGINS"),
    bad_body("origin-number", {"cid": CID, "origins": [4001]}, "INVALID_ORIGINS"),
    # Falsy values that are not arrays are refused, not read as "no origins".
    bad_body("origins-empty-object", {"cid": CID, "origins": {}}, "INVALID_ORIGINS"),
    bad_body("origins-zero", {"cid": CID, "origins": 0}, "INVALID_ORIGINS"),
    bad_body("origins-false", {"cid": CID, "origins": False}, "INVALID_ORIGINS"),
    bad_body("origins-empty-string", {"cid": CID, "origins": ""}, "INVALID_ORIGINS"),
    bad_body("origin-lone-surrogate", {"cid": CID, "origins": [origin("a")[:-1] + "\ud800"]}, "INVALID_ORIGINS"),
    bad_body(
        "origin-dns-lone-surrogate",
        {"cid": CID, "origins": [f"/dns4/\ud800.example/tcp/4001/p2p/{origin('a').rsplit('/', 1)[1]}"]},
        "INVALID_ORIGINS",
    ),
    # -- meta ------------------------------------------------------------------
    bad_body("meta-array", {"cid": CID, "meta": [["k", "v"]]}, "INVALID_META"),
    bad_body("meta-string", {"cid": CID, "meta": '{"k":"v"}'}, "INVALID_META"),
    bad_body("meta-number-value", {"cid": CID, "meta": {"k": 1}}, "INVALID_META"),
    bad_body("meta-nested-value", {"cid": CID, "meta": {"k": {"a": "b"}}}, "INVALID_META"),
    bad_body("meta-over-16KiB", {"cid": CID, "meta": {f"k{i}": "v" * 4000 for i in range(5)}}, "INVALID_META"),
    bad_body("meta-1001-keys", {"cid": CID, "meta": {f"k{i}": "" for i in range(1001)}}, "INVALID_META"),
    bad_body("meta-empty-key", {"cid": CID, "meta": {"": "v"}}, "INVALID_META"),
    bad_body("meta-value-4097", {"cid": CID, "meta": {"k": "v" * 4097}}, "INVALID_META"),
    *(
        bad_body(f"meta-value-{kind}-surrogate", {"cid": CID, "meta": {"k": text}}, "INVALID_META")
        for kind, text in LONE_SURROGATES.items()
    ),
    bad_body("meta-key-surrogate", {"cid": CID, "meta": {"k\ud800": "v"}}, "INVALID_META"),
    bad_body("meta-false", {"cid": CID, "meta": False}, "INVALID_META"),
    # -- list query ------------------------------------------------------------
    bad_query("limit-0", limit="0"),
    bad_query("limit-1001", limit="1001"),
    bad_query("limit-negative", limit="-1"),
    bad_query("limit-abc", limit="abc"),
    bad_query("limit-1.5", limit="1.5"),
    bad_query("limit-empty", limit=""),
    bad_query("limit-repeated", limit=["5", "6"]),
    bad_query("status-done", status="done"),
    bad_query("status-empty-item", status="queued,"),
    bad_query("status-uppercase", status="PINNED"),
    bad_query("match-fuzzy", name="x", match="fuzzy"),
    bad_query("before-month-13", before="2020-13-01T00:00:00Z"),
    bad_query("before-yesterday", before="yesterday"),
    bad_query("before-no-timezone", before="2020-01-01T00:00:00"),
    bad_query("before-date-only", before="2020-01-01"),
    bad_query("before-repeated", before=["2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z"]),
    bad_query("after-hour-25", after="2020-01-01T25:00:00Z"),
    bad_query("after-unix-seconds", after="1600000000"),
    bad_query("query-meta-not-json", meta="{app_id: x}"),
    bad_query("query-meta-array", meta='["app_id"]'),
    bad_query("query-meta-number-value", meta='{"app_id": 1}'),
    bad_query("query-cid-11", cid=",".join(cid_v1(f"q{i}") for i in range(11))),
    bad_query("query-cid-invalid", cid=f"{CID},not-a-cid"),
    bad_query("query-cid-md5", cid=cid_with_hash("md5", "md5", 16)),
    bad_query("query-cid-empty-item", cid=f"{CID},"),
    bad_query("query-name-256", name="n" * 256),
    bad_query("query-meta-value-surrogate", meta='{"k":"\\ud800"}'),
    bad_query("query-meta-key-surrogate", meta='{"\\udfff":"v"}'),
    bad_query("query-meta-nested-30000-deep", meta="[" * DEEP + "]" * DEEP),
    bad_query("query-meta-nan", meta='{"k":NaN}'),
    bad_query("query-meta-nested-33-deep", meta=json.dumps({"k": nested(32)})),
    bad_query("query-meta-empty-key", meta='{"":"v"}'),
    # -- replace with a bad body: the existing pin stays as it was ------------
    row(
        "replace-malformed-json",
        {"method": "POST", "path": "/pins/{pin}", "body": b"{", "headers": JSON},
        400,
        "INVALID_JSON",
    ),
    row(
        "replace-invalid-cid", {"method": "POST", "path": "/pins/{pin}", "json": {"cid": "garbage"}}, 400, "INVALID_CID"
    ),
    row(
        "replace-missing-cid",
        {"method": "POST", "path": "/pins/{pin}", "json": {"name": "renamed"}},
        400,
        "INVALID_CID",
    ),
    row(
        "replace-bad-meta",
        {"method": "POST", "path": "/pins/{pin}", "json": {"cid": CID, "meta": {"k": 1}}},
        400,
        "INVALID_META",
    ),
    row("replace-nested-30000-deep", raw_post(DEEP_ARRAY, "/pins/{pin}"), 400, "INVALID_JSON"),
    row("replace-utf8-bom", raw_post(b"\xef\xbb\xbf" + GOOD_RAW, "/pins/{pin}"), 400, "INVALID_JSON"),
    row(
        "replace-nan-literal", raw_post(b'{"cid":"' + CID.encode() + b'","x":NaN}', "/pins/{pin}"), 400, "INVALID_JSON"
    ),
    row("replace-name-surrogate", replace({"cid": CID, "name": "\ud800"}), 400, "INVALID_NAME"),
    row("replace-meta-value-surrogate", replace({"cid": CID, "meta": {"k": "\udfff"}}), 400, "INVALID_META"),
    row("replace-meta-key-surrogate", replace({"cid": CID, "meta": {"\ud800": "v"}}), 400, "INVALID_META"),
    row("replace-origins-false", replace({"cid": CID, "origins": False}), 400, "INVALID_ORIGINS"),
    row(
        "replace-text-plain",
        {
            "method": "POST",
            "path": "/pins/{pin}",
            "body": json.dumps(GOOD).encode(),
            "headers": {"Content-Type": "text/plain"},
        },
        400,
        "UNSUPPORTED_CONTENT_TYPE",
    ),
    row(
        "replace-over-64KiB",
        {"method": "POST", "path": "/pins/{pin}", "json": {"cid": CID, "pad": "x" * (65 * KIB)}},
        413,
        "PAYLOAD_TOO_LARGE",
    ),
    # -- methods ---------------------------------------------------------------
    row("PUT-pins", {"method": "PUT", "path": "/pins", "json": GOOD}, 405, "METHOD_NOT_ALLOWED"),
    row("PATCH-pins", {"method": "PATCH", "path": "/pins", "json": GOOD}, 405, "METHOD_NOT_ALLOWED"),
    row("DELETE-pins", {"method": "DELETE", "path": "/pins"}, 405, "METHOD_NOT_ALLOWED"),
    row("PUT-pin", {"method": "PUT", "path": "/pins/{pin}", "json": GOOD}, 405, "METHOD_NOT_ALLOWED"),
    row("PATCH-pin", {"method": "PATCH", "path": "/pins/{pin}", "json": GOOD}, 405, "METHOD_NOT_ALLOWED"),
    # -- unknown request ids ---------------------------------------------------
    row("GET-unknown-v7-same-ms", {"method": "GET", "path": "/pins/{twin}"}, 404, "NOT_FOUND"),
    row("GET-unknown-v7", {"method": "GET", "path": "/pins/{v7}"}, 404, "NOT_FOUND"),
    row("GET-not-a-uuid", {"method": "GET", "path": "/pins/not-a-uuid"}, 404, "NOT_FOUND"),
    row("GET-uppercased-id", {"method": "GET", "path": "/pins/{PIN}"}, 404, "NOT_FOUND"),
    row("GET-braced-id", {"method": "GET", "path": "/pins/{{pin}}"}, 404, "NOT_FOUND"),
    row("GET-the-cid", {"method": "GET", "path": "/pins/{cid}"}, 404, "NOT_FOUND"),
    row("DELETE-unknown-v7-same-ms", {"method": "DELETE", "path": "/pins/{twin}"}, 404, "NOT_FOUND"),
    row("DELETE-not-a-uuid", {"method": "DELETE", "path": "/pins/not-a-uuid"}, 404, "NOT_FOUND"),
    row("DELETE-uppercased-id", {"method": "DELETE", "path": "/pins/{PIN}"}, 404, "NOT_FOUND"),
    row("DELETE-the-cid", {"method": "DELETE", "path": "/pins/{cid}"}, 404, "NOT_FOUND"),
    row("POST-unknown-v7-same-ms", {"method": "POST", "path": "/pins/{twin}", "json": GOOD}, 404, "NOT_FOUND"),
    row("POST-unknown-v7", {"method": "POST", "path": "/pins/{v7}", "json": GOOD}, 404, "NOT_FOUND"),
    row("POST-not-a-uuid", {"method": "POST", "path": "/pins/not-a-uuid", "json": GOOD}, 404, "NOT_FOUND"),
    row("POST-uppercased-id", {"method": "POST", "path": "/pins/{PIN}", "json": GOOD}, 404, "NOT_FOUND"),
    row("GET-root", {"method": "GET", "path": "/", "undocumented": True}, 404, "NOT_FOUND"),
    # -- authentication ----------------------------------------------------------
    row("GET-pins-no-token", {"method": "GET", "path": "/pins", "with_token": False}, 401, "UNAUTHORIZED"),
    row("POST-pins-no-token", {**post(GOOD), "with_token": False}, 401, "UNAUTHORIZED"),
    row("GET-pin-no-token", {"method": "GET", "path": "/pins/{pin}", "with_token": False}, 401, "UNAUTHORIZED"),
    row("POST-pins-empty-authorization", {**post(GOOD), "headers": {"Authorization": ""}}, 401, "UNAUTHORIZED"),
    row("POST-pins-basic-auth", {**post(GOOD), "headers": {"Authorization": "Basic YTpi"}}, 401, "UNAUTHORIZED"),
    row(
        "POST-replace-unknown-token",
        {"method": "POST", "path": "/pins/{pin}", "json": GOOD, "headers": {"Authorization": "Bearer pst_unknown"}},
        401,
        "UNAUTHORIZED",
    ),
    row(
        "DELETE-pin-unknown-token",
        {"method": "DELETE", "path": "/pins/{pin}", "headers": {"Authorization": "Bearer pst_unknown"}},
        401,
        "UNAUTHORIZED",
    ),
    row(
        "GET-pin-empty-bearer",
        {"method": "GET", "path": "/pins/{pin}", "headers": {"Authorization": "Bearer "}},
        401,
        "UNAUTHORIZED",
    ),
]


def _v7(created_ms: int, random_bits: int) -> str:
    value = (created_ms << 80) | (0x7 << 76) | (0b10 << 62) | (random_bits & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


@pytest.fixture
def seeded(api, set_status):
    """A tenant with a pinned pin and a queued one (the target of the rows
    that name an existing request)."""
    pins = [api.pin(cid_v1(f"seed-{status}"), name=status, meta={"status": status}) for status in ("pinned", "queued")]
    set_status(pins[0]["requestid"], "pinned")
    return pins[1]


def send_undocumented(bad: Bad, path: str, token: str) -> Reply:
    """Chalice's test client without the OpenAPI check, for paths the
    document does not have."""
    import app as app_module

    with Client(app_module.app) as client:
        response = client.http.request(
            bad.method, path, headers={"Authorization": f"Bearer {token}", **bad.headers}, body=bad.body or b""
        )
    return Reply(response.status_code, dict(response.headers), response.body or b"")


def state(api, pin_queue, outbox_entries):
    return api.list(status=ALL_STATUSES, limit=1000), pin_queue.depth(), len(outbox_entries())


@pytest.mark.parametrize("bad", ROWS)
def test_a_bad_request_is_refused_with_its_reason_and_changes_nothing(
    api, seeded, tenant_token, pin_queue, outbox_entries, bad
):
    # given a tenant with pins, and the state of everything it could change
    pin_id = seeded["requestid"]
    created_ms = int(uuid.UUID(pin_id).int >> 80)
    path = bad.path.format(
        pin=pin_id,
        PIN=pin_id.upper(),
        twin=_v7(created_ms, uuid.UUID(pin_id).int ^ 1),
        v7=_v7(created_ms - 86_400_000, 12345),
        cid=seeded["pin"]["cid"],
    )
    before = state(api, pin_queue, outbox_entries)
    assert before[0]["count"] == 2 and before[1] > 0

    # when the bad request is sent
    if bad.undocumented:
        reply = send_undocumented(bad, path, tenant_token)
    else:
        client = api if bad.with_token else api.as_token(None)
        reply = client.request(
            bad.method, path, json_body=bad.json, body=bad.body, params=bad.params, headers=bad.headers
        )

    # then it is refused with the expected status and reason, as a Failure
    assert reply.status < 500, reply.body
    assert_failure(reply, bad.status, bad.reason)
    if bad.status == 405:
        assert header(reply, "Allow"), "a 405 must say which methods are allowed"
    if bad.status == 401:
        assert "bearer" in (header(reply, "WWW-Authenticate") or "").lower()
    # and nothing changed
    assert state(api, pin_queue, outbox_entries) == before


def test_the_table_covers_every_kind_of_refusal():
    reasons = {param.values[0].reason for param in ROWS}
    assert reasons >= {
        "INVALID_JSON",
        "BAD_REQUEST",
        "UNSUPPORTED_CONTENT_TYPE",
        "PAYLOAD_TOO_LARGE",
        "INVALID_CID",
        "INVALID_NAME",
        "INVALID_ORIGINS",
        "INVALID_META",
        "INVALID_QUERY",
        "METHOD_NOT_ALLOWED",
        "NOT_FOUND",
        "UNAUTHORIZED",
    }
    assert len(ROWS) >= 45


@pytest.mark.parametrize(
    "body",
    [
        {"cid": CID, "name": "n" * 255},
        {"cid": CID, "name": "ü" * 255},
        {"cid": CID, "origins": [origin(i) for i in range(20)]},
        {"cid": CID, "meta": {f"k{i:03d}": "" for i in range(1000)}},
        {"cid": CID, "meta": {"k" * 255: "v" * 4096}},
        {"cid": cid_with_hash("b2-160", "blake2b-160", 20)},
        {"cid": CID, "name": None, "origins": None, "meta": None},
        {"cid": CID, "origins": [], "meta": {}, "unknown": {"deep": nested(30)}},
        # 15,306 bytes as the client's UTF-8 JSON: under the documented 16 KiB
        {"cid": CID, "meta": {"description": "中" * 4096, "summary": "中" * 1000}},
    ],
    ids=[
        "name-255",
        "name-255-non-ascii",
        "origins-20",
        "meta-1000-keys",
        "meta-longest-key-and-value",
        "blake2b-160",
        "nulls",
        "empty-origins-and-meta-and-an-unknown-field-32-deep",
        "meta-15KB-of-utf8-json",
    ],
)
def test_values_at_the_limits_are_accepted(api, body):
    reply = api.request("POST", "/pins", json_body=body)
    assert reply.status == 202, reply.body
    assert api.list(status="queued")["results"] == [reply.json]


def test_a_body_of_exactly_64KiB_is_accepted(api):
    body = {"cid": CID, "meta": {"pad": ""}}
    body["meta"]["pad"] = "x" * 4096
    for i in range(3):
        body["meta"][f"pad{i}"] = "x" * 4000
    raw = json.dumps(body)
    padded = raw[:-1] + " " * (64 * KIB - len(raw)) + "}"
    assert len(padded.encode()) == 64 * KIB
    reply = api.request("POST", "/pins", body=padded.encode(), headers=JSON)
    assert reply.status == 202, reply.body


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"]
)
def test_json_content_types_are_accepted_in_any_spelling(api, content_type):
    reply = api.request("POST", "/pins", body=json.dumps(GOOD).encode(), headers={"Content-Type": content_type})
    assert reply.status == 202, reply.body


@pytest.mark.parametrize("limit", ["1", "1000", "0010"])
def test_limits_in_range_are_accepted(api, limit):
    assert api.request("GET", "/pins", params={"limit": limit}).status == 200


def test_ten_cids_are_accepted(api):
    cids = [cid_v1(f"ten-{i}") for i in range(10)]
    api.pin(cids[3])
    assert api.list(cid=",".join(cids))["count"] == 1


# The Content-Type rule is about the body (POST's must be JSON). GET and
# DELETE have none (Kubo and the JS client send neither body nor
# Content-Type there), so a Content-Type describes nothing and is ignored.
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/pins", 200), ("GET", "/pins/{pin}", 200), ("DELETE", "/pins/{pin}", 202)],
    ids=["list", "get", "delete"],
)
def test_a_bodiless_request_is_answered_whatever_its_content_type(api, seeded, method, path, status, content_type):
    # given a pin, and a request without a body but with a Content-Type
    path = path.format(pin=seeded["requestid"])

    # when it is sent
    reply = api.request(method, path, headers={"Content-Type": content_type})

    # then it is answered as without the header
    assert reply.status == status, reply.body
