"""openapi.yaml is valid, keeps the upstream wire format, and the response checker enforces it."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from jsonschema import Draft4Validator

import app as service
from tests.support.openapi import assert_response_conforms, json_schema, load_document

# Only the project's build workspace has the upstream document next to the repository.
UPSTREAM_PATH = Path(__file__).resolve().parents[3] / "shared" / "spec" / "ipfs-pinning-service.yaml"

REQUEST_ID = "0192f3a4-5b6c-7d8e-9f01-23456789abcd"
JSON = {"Content-Type": "application/json"}

PIN_STATUS: dict[str, Any] = {
    "requestid": REQUEST_ID,
    "status": "queued",
    "created": "2024-11-21T10:36:00.123Z",
    "pin": {
        "cid": "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
        "name": "holiday-photos",
        "origins": ["/ip4/198.51.100.7/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"],
        "meta": {"app_id": "c5b1f2a4"},
    },
    "delegates": ["/ip4/203.0.113.1/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"],
    "info": {"status_details": "fetching blocks"},
}
OLDER_PIN_STATUS: dict[str, Any] = {
    **PIN_STATUS,
    "requestid": "0192f3a4-5b6c-7d8e-9f01-23456789abce",
    "status": "pinned",
    "created": "2024-11-21T10:35:59.999Z",
}
PIN_RESULTS: dict[str, Any] = {"count": 5, "results": [PIN_STATUS, OLDER_PIN_STATUS]}
FAILURE: dict[str, Any] = {"error": {"reason": "NOT_FOUND", "details": "pin request not found"}}


def _failure(reason: str) -> str:
    return json.dumps({"error": {"reason": reason}})


def _changed(document: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of `document` with the field at `dotted` replaced, or removed when `value` is `...`."""
    changed = copy.deepcopy(document)
    *parents, last = dotted.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return changed


def _wire_format(node: Any) -> Any:
    """`node` without the prose keys, the only ones allowed to differ from upstream."""
    if isinstance(node, dict):
        return {key: _wire_format(value) for key, value in node.items() if key not in {"description", "example"}}
    if isinstance(node, list):
        return [_wire_format(item) for item in node]
    return node


def _deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _bodies(document: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The schema of each media type a response object declares."""
    return {media_type: body["schema"] for media_type, body in _deref(document, response).get("content", {}).items()}


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    if not UPSTREAM_PATH.is_file():
        pytest.skip(f"upstream document {UPSTREAM_PATH} is absent: only the build workspace has it, a clone does not")
    with UPSTREAM_PATH.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


# (1) The document is valid OpenAPI 3.0.


def _operation(label: str) -> str:
    """`GET /webhooks/{id}` -> `GET /webhooks/{}`: a path parameter's name is the document's or the route's own."""
    return re.sub(r"\{[^}]*\}", "{}", label)


def test_document_is_valid_openapi_3_0_for_schemathesis() -> None:
    # Given the project's document, and the operations the app serves (not its 405 answers nor its root's 404)
    schema = schemathesis.openapi.from_dict(load_document())
    served = {
        _operation(f"{method} {path}")
        for path, entries in service.app.routes.items()
        for method, entry in entries.items()
        if path != "/" and not entry.view_name.endswith("method_not_allowed")
    }

    # When it is checked against the OpenAPI 3.0 meta-schema and every operation is loaded
    schema.validate()
    labels = {_operation(result.ok().label) for result in schema.get_all_operations()}

    # Then it declares exactly the operations served: the Pinning Service API's and the documented extensions
    assert labels == served
    assert {"GET /pins", "POST /pins", "GET /pins/{}", "POST /pins/{}", "DELETE /pins/{}"} <= labels


def test_document_passes_openapi_spec_validator() -> None:
    # Given the stricter validator, which also resolves every $ref and checks path parameters
    validator = pytest.importorskip(
        "openapi_spec_validator", reason="openapi-spec-validator is not installed (it is not in requirements-dev.txt)"
    )

    # When / Then the document is accepted as OpenAPI 3.0
    validator.validate(load_document(), cls=validator.OpenAPIV30SpecValidator)


def test_document_declares_the_services_own_responses_and_server() -> None:
    # Given the project's document
    document = load_document()
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }

    # When / Then every operation documents the service's extra errors, all as JSON Failure bodies
    for (method, path), operation in operations.items():
        responses = operation["responses"]
        expected = {"400", "401", "404", "405", "409", "4XX", "503", "5XX"} | ({"413"} if method == "POST" else set())
        assert expected <= set(responses), f"{method} {path} lacks {expected - set(responses)}"
        for code in expected:
            content = _deref(document, responses[code])["content"]
            assert list(content) == ["application/json"], f"{method} {path} {code} is not application/json"
            assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Failure"}, (
                f"{method} {path} {code} is not a Failure"
            )
    assert "content" not in operations[("DELETE", "/pins/{requestid}")]["responses"]["202"]
    assert document["servers"][0]["url"] == "http://127.0.0.1:8000"


# (2) The response checker accepts what the document allows and rejects what it does not.


@pytest.mark.parametrize(
    ("method", "path", "status", "headers", "body"),
    [
        pytest.param("GET", "/pins", 200, JSON, json.dumps(PIN_RESULTS), id="pin-results"),
        pytest.param("GET", "/pins?limit=2", 200, JSON, json.dumps({"count": 0, "results": []}), id="no-results"),
        pytest.param(
            "POST",
            "/pins",
            202,
            {"content-type": "application/json; charset=utf-8"},
            json.dumps(PIN_STATUS).encode(),
            id="added-with-charset",
        ),
        pytest.param("GET", f"/pins/{REQUEST_ID}", 200, JSON, json.dumps(PIN_STATUS), id="pin-status"),
        pytest.param("POST", f"/pins/{REQUEST_ID}", 202, JSON, json.dumps(PIN_STATUS), id="replaced"),
        pytest.param("DELETE", f"/pins/{REQUEST_ID}", 202, {}, b"", id="deleted-empty-body"),
        pytest.param("DELETE", f"/pins/{REQUEST_ID}", 202, {}, None, id="deleted-no-body"),
        pytest.param("GET", f"/pins/{REQUEST_ID}", 404, JSON, json.dumps(FAILURE), id="not-found"),
        pytest.param("POST", "/pins", 413, JSON, _failure("PAYLOAD_TOO_LARGE"), id="too-large"),
        pytest.param("GET", "/pins", 422, JSON, _failure("BAD_REQUEST"), id="4XX-range"),
        pytest.param("GET", "/pins", 503, JSON, _failure("SERVICE_UNAVAILABLE"), id="503"),
        pytest.param("DELETE", f"/pins/{REQUEST_ID}", 500, JSON, _failure("INTERNAL_SERVER_ERROR"), id="5XX-range"),
        pytest.param("PUT", "/pins", 405, JSON, _failure("METHOD_NOT_ALLOWED"), id="undocumented-method"),
    ],
)
def test_a_documented_response_conforms(
    method: str, path: str, status: int, headers: dict[str, str], body: bytes | str | None
) -> None:
    # Given a response the service is allowed to send
    # When it is checked against the document
    # Then no assertion is raised
    assert_response_conforms(method, path, status, headers, body)


@pytest.mark.parametrize(
    ("method", "path", "status", "headers", "body", "message"),
    [
        pytest.param(
            "GET",
            f"/pins/{REQUEST_ID}",
            200,
            JSON,
            json.dumps(_changed(PIN_STATUS, "requestid", ...)),
            "'requestid' is a required property",
            id="missing-requestid",
        ),
        pytest.param(
            "POST",
            "/pins",
            202,
            JSON,
            json.dumps(_changed(PIN_STATUS, "status", "done")),
            "'done' is not one of",
            id="unknown-status",
        ),
        pytest.param(
            "GET",
            "/pins",
            200,
            JSON,
            json.dumps(_changed(PIN_RESULTS, "results.0.created", "2024-11-21T10:36:00.123")),
            r"at \$\.results\[0\]\.created: .* is not a 'date-time'",
            id="created-without-timezone",
        ),
        pytest.param(
            "GET",
            "/pins",
            200,
            JSON,
            json.dumps({"count": 2, "results": [OLDER_PIN_STATUS, PIN_STATUS]}),
            "sorted by created, strictly descending",
            id="unsorted-results",
        ),
        pytest.param(
            "GET",
            "/pins",
            200,
            JSON,
            json.dumps(_changed(PIN_RESULTS, "results.1.requestid", REQUEST_ID)),
            "requestid listed more than once",
            id="duplicate-requestid",
        ),
        pytest.param(
            "DELETE",
            f"/pins/{REQUEST_ID}",
            202,
            JSON,
            json.dumps(PIN_STATUS),
            "documented without a body",
            id="delete-with-body",
        ),
        pytest.param(
            "GET",
            "/pins",
            400,
            JSON,
            json.dumps({"error": {"details": "limit: must be between 1 and 1000"}}),
            "'reason' is a required property",
            id="failure-without-reason",
        ),
        pytest.param(
            "GET",
            f"/pins/{REQUEST_ID}",
            404,
            {"Content-Type": "text/plain"},
            "not found",
            "Content-Type 'text/plain' is not one of",
            id="error-not-json",
        ),
        pytest.param("GET", f"/pins/{REQUEST_ID}", 200, JSON, "{", "body is not JSON", id="malformed-json"),
        pytest.param("GET", f"/pins/{REQUEST_ID}", 200, JSON, b"", "got none", id="missing-body"),
        pytest.param("GET", "/pins", 302, {}, None, "status is not documented", id="undocumented-status"),
        pytest.param("PUT", "/pins", 200, JSON, "{}", "PUT is not documented for this path", id="undocumented-method"),
        pytest.param("GET", "/pins/a/b", 404, JSON, json.dumps(FAILURE), "path matches none", id="unknown-path"),
    ],
)
def test_a_response_breaking_the_contract_is_rejected(
    method: str, path: str, status: int, headers: dict[str, str], body: bytes | str | None, message: str
) -> None:
    # Given a response that breaks the document or the service's promises
    # When it is checked against the document
    # Then the assertion names the problem
    with pytest.raises(AssertionError, match=message):
        assert_response_conforms(method, path, status, headers, body)


@pytest.mark.parametrize(
    ("created", "conforms"),
    [
        ("2024-11-21T10:36:00Z", True),
        ("2024-11-21t10:36:00.123456789z", True),
        ("2024-11-21T12:36:00.5+02:00", True),
        ("2016-12-31T23:59:60Z", True),
        ("2024-11-21 10:36:00Z", False),
        ("2024-11-21T10:36Z", False),
        ("2024-11-21T24:00:00Z", False),
        ("2024-02-30T10:36:00Z", False),
        ("2024-11-21T10:36:00+0200", False),
        ("2024-11-21T10:36:00.Z", False),
    ],
)
def test_created_must_be_a_strict_rfc_3339_date_time(created: str, conforms: bool) -> None:
    # Given a PinStatus whose created has this shape
    body = json.dumps(_changed(PIN_STATUS, "created", created))

    # When it is checked against the document
    try:
        assert_response_conforms("GET", f"/pins/{REQUEST_ID}", 200, JSON, body)
    except AssertionError:
        accepted = False
    else:
        accepted = True

    # Then only RFC 3339 section 5.6 date-times are accepted
    assert accepted is conforms


def test_nullable_schema_also_accepts_null() -> None:
    # Given an OpenAPI 3.0 schema marked nullable
    schema = json_schema({"type": "string", "nullable": True})

    # When it is used as JSON Schema
    validator = Draft4Validator(schema)

    # Then null is valid alongside the declared type, and other types are not
    assert validator.is_valid(None) and validator.is_valid("text")
    assert not validator.is_valid(1)


# (3) Wire-format compatibility with the upstream document (only where it is available).


def test_upstream_schemas_and_parameters_are_kept(upstream: dict[str, Any]) -> None:
    # Given our components and upstream's
    ours = load_document()["components"]

    # When the prose is set aside
    differing = [
        f"{kind}/{name}"
        for kind in ("schemas", "parameters")
        for name, theirs in upstream["components"][kind].items()
        if _wire_format(ours[kind].get(name)) != _wire_format(theirs)
    ]

    # Then every upstream schema and parameter constrains the wire exactly as ours does
    assert not differing, f"differ from upstream: {differing}"


def _extensions_only(ours: dict[str, Any], mine: list[Any], theirs: list[Any]) -> bool:
    """Every upstream parameter kept, in order, and beside them only optional
    headers (extensions a client may ignore)."""
    extensions = [_deref(ours, p) for p in mine if p not in theirs]
    kept = [p for p in mine if p in theirs] == theirs
    return kept and all(p["in"] == "header" and not p.get("required") for p in extensions)


def test_upstream_operations_and_security_are_kept(upstream: dict[str, Any]) -> None:
    # Given our document and upstream's
    ours = load_document()

    # When each upstream operation is compared with ours
    for path, upstream_item in upstream["paths"].items():
        our_item = ours["paths"][path]
        assert _wire_format(our_item.get("parameters")) == _wire_format(upstream_item.get("parameters")), path
        for method, theirs in (item for item in upstream_item.items() if item[0] != "parameters"):
            mine = our_item[method]
            where = f"{method.upper()} {path}"

            # Then it keeps its id, parameters, request body and every upstream response with the same body schema
            assert mine["operationId"] == theirs["operationId"], where
            assert _extensions_only(ours, mine.get("parameters") or [], theirs.get("parameters") or []), where
            assert _wire_format(_deref(ours, mine.get("requestBody", {}))) == _wire_format(
                _deref(upstream, theirs.get("requestBody", {}))
            ), where
            for code, response in theirs["responses"].items():
                assert code in mine["responses"], f"{where} lacks {code}"
                assert _bodies(ours, mine["responses"][code]) == _bodies(upstream, response), f"{where} {code}"

    # And the same bearer security applies everywhere
    assert ours["security"] == upstream["security"]
    assert _wire_format(ours["components"]["securitySchemes"]) == _wire_format(
        upstream["components"]["securitySchemes"]
    )
