"""The API as `make dev` serves it: `python -m devstack` in a subprocess, on
127.0.0.1 only, exercised over real HTTP with `requests` and schemathesis."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from jsonschema import Draft4Validator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PEER_A
from tests.support.openapi import assert_response_conforms, json_schema
from tests.support.served_stack import ServedStack, served_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
OPENAPI = REPO_ROOT / "openapi.yaml"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10
NODE_MULTIADDR = "/ip4/203.0.113.1/tcp/4001"
# Port 9 (discard) on loopback, and no worker (--no-worker): nothing is dialled.
NODE = f"node-a=http://127.0.0.1:9/,{PEER_A},{NODE_MULTIADDR}"
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
# Per operation (five of them): about 15 s in all. Raise it for a longer hunt.
EXAMPLES_PER_OPERATION = int(os.environ.get("DEVSTACK_FUZZ_EXAMPLES", "100"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedStack]:
    state_dir = tmp_path_factory.mktemp("devstack")
    with served_stack(
        state_dir,
        ["--node", NODE, "--user-node-port", "0", "--no-worker"],
        start_timeout=START_TIMEOUT_S,
        stop_timeout=STOP_TIMEOUT_S,
    ) as stack:
        yield stack


def _assert_failure(response: requests.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    body = response.json()
    failure = {"$ref": "#/components/schemas/Failure"}
    errors = [error.message for error in Draft4Validator(json_schema(failure)).iter_errors(body)]
    assert not errors, f"not a Failure: {body!r}: {errors}"
    assert body["error"]["reason"] == reason
    return body


# --- the stack itself --------------------------------------------------------------


def test_given_a_started_stack_when_reading_local_env_then_it_holds_loopback_url_and_token_owner_only(
    served: ServedStack,
) -> None:
    local_env = served.state_dir / "local.env"

    assert local_env.read_text(encoding="utf-8").splitlines() == [
        f"export PINNING_SERVICE_URL={served.url}",
        f"export PINNING_SERVICE_TOKEN={served.token}",
    ]
    assert served.url.startswith("http://127.0.0.1:")
    assert stat.S_IMODE(local_env.stat().st_mode) == 0o600
    assert any("node-a" in line for line in served.output), "the --node registration is reported"


# --- pins ------------------------------------------------------------------------


def test_given_a_token_when_posting_a_pin_then_it_is_queued_and_readable(served: ServedStack) -> None:
    created = requests.post(
        f"{served.url}/pins", json={"cid": CID, "name": "devstack"}, headers=served.auth(), timeout=10
    )

    assert created.status_code == 202, created.text
    assert_response_conforms("POST", "/pins", created.status_code, created.headers, created.content)
    status = created.json()
    assert status["pin"]["cid"] == CID
    assert status["status"] == "queued"
    assert f"{NODE_MULTIADDR}/p2p/{PEER_A}" in status["delegates"]

    path = f"/pins/{status['requestid']}"
    read = requests.get(f"{served.url}{path}", headers=served.auth(), timeout=10)

    assert read.status_code == 200, read.text
    assert_response_conforms("GET", path, read.status_code, read.headers, read.content)
    assert read.json()["requestid"] == status["requestid"]
    assert read.json()["pin"] == status["pin"]


def test_given_no_token_when_listing_pins_then_401_failure(served: ServedStack) -> None:
    response = requests.get(f"{served.url}/pins", timeout=10)

    _assert_failure(response, 401, "UNAUTHORIZED")
    assert_response_conforms("GET", "/pins", response.status_code, response.headers, response.content)


# Found by the schemathesis run below: meta keys holding "[" or "]" once became
# DynamoDB list indexes in the filter.
def test_given_a_meta_filter_key_with_a_bracket_when_listing_then_no_server_error(served: ServedStack) -> None:
    response = requests.get(
        f"{served.url}/pins", params={"meta": json.dumps({"x[": "v"})}, headers=served.auth(), timeout=10
    )

    assert response.status_code == 200, response.text


def test_given_a_pin_whose_meta_key_looks_like_an_index_when_filtering_by_it_then_found(served: ServedStack) -> None:
    meta = {"devstack[0]": "v"}
    created = requests.post(f"{served.url}/pins", json={"cid": CID, "meta": meta}, headers=served.auth(), timeout=10)
    assert created.status_code == 202, created.text

    listed = requests.get(f"{served.url}/pins", params={"meta": json.dumps(meta)}, headers=served.auth(), timeout=10)

    assert listed.status_code == 200, listed.text
    assert [pin["requestid"] for pin in listed.json()["results"]] == [created.json()["requestid"]]


# --- what API Gateway answers ----------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/pins/a/b", "/pins/a/b?x=1"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
def test_given_an_unknown_route_when_requested_then_404_failure(served: ServedStack, method: str, path: str) -> None:
    response = requests.request(method, f"{served.url}{path}", headers=served.auth(), timeout=10)

    _assert_failure(response, 404, "NOT_FOUND")


def test_given_an_unknown_route_when_requested_without_token_then_still_404(served: ServedStack) -> None:
    response = requests.get(f"{served.url}/nope", timeout=10)

    _assert_failure(response, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/pins"), ("PATCH", "/pins"), ("DELETE", "/pins"), ("PUT", "/pins/x"), ("PATCH", "/pins/x")],
)
def test_given_a_known_route_when_an_undeclared_method_is_used_then_405_failure(
    served: ServedStack, method: str, path: str
) -> None:
    response = requests.request(method, f"{served.url}{path}", json={"cid": CID}, headers=served.auth(), timeout=10)

    _assert_failure(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"]
    assert_response_conforms(method, path, response.status_code, response.headers, response.content)


@pytest.mark.parametrize("path", ["/pins", "/pins/x", "/nope"])
def test_given_any_route_when_head_is_used_then_json_error_without_body_and_connection_stays_usable(
    served: ServedStack, path: str
) -> None:
    with requests.Session() as session:
        head = session.head(f"{served.url}{path}", headers=served.auth(), timeout=10)
        # A body sent after HEAD headers would be read as the next response.
        after = session.get(f"{served.url}/pins", headers=served.auth(), timeout=10)

    assert 400 <= head.status_code < 500
    assert head.headers["Content-Type"] == "application/json"
    assert head.content == b""
    assert after.status_code == 200, after.text
    assert_response_conforms("GET", "/pins", after.status_code, after.headers, after.content)


@pytest.mark.parametrize("path", ["/pins", "/pins/x"])
def test_given_a_cors_preflight_when_options_is_sent_then_200_without_body(served: ServedStack, path: str) -> None:
    response = requests.options(
        f"{served.url}{path}",
        headers={"Origin": "http://example.test", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )

    assert response.status_code == 200
    assert response.content == b""
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize("method", ["TRACE", "FROB"])
def test_given_a_method_no_route_declares_when_sent_then_405_failure(served: ServedStack, method: str) -> None:
    response = requests.request(method, f"{served.url}/pins", headers=served.auth(), timeout=10)

    _assert_failure(response, 405, "METHOD_NOT_ALLOWED")


def test_given_a_request_http_server_rejects_when_sent_then_json_failure(served: ServedStack) -> None:
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"GET /pins HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")
        reply = connection.makefile("rb").read()

    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["reason"] == "BAD_REQUEST"


# --- schemathesis: every documented operation against the served API -------------------


# Loaded eagerly: schemathesis 4.32's lazy `schemathesis.pytest.from_fixture` fails
# under pytest 9 ("'Function' object has no attribute '_nodeid'"), so the served
# URL and token are passed per call instead of through the schema's config.
schema = schemathesis.openapi.from_path(OPENAPI)

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_given_the_openapi_document_when_fuzzed_then_no_server_error_and_every_response_conforms(
    case: Any, served: ServedStack
) -> None:
    logged = served.log.stat().st_size
    try:
        case.call_and_validate(base_url=served.url, headers=served.auth(), checks=CHECKS, timeout=10)
    except Exception:
        # Shown with the failure: the service's own log of this request (error id, traceback).
        with served.log.open(encoding="utf-8", errors="replace") as log:
            log.seek(logged)
            print("".join(line for line in log if line.startswith("{"))[-20_000:])
        raise
