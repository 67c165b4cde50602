"""Check HTTP responses against the project's own OpenAPI document (openapi.yaml)."""

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, FormatChecker

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# RFC 3339 section 5.6 (date-time); "T" and "Z" may be lower case per the RFC's note.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
)

# jsonschema ignores "format" unless told; only formats our document uses get a checker.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    try:
        date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


@_FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@cache
def load_document() -> dict[str, Any]:
    """The parsed openapi.yaml; cached and shared, so callers must not mutate it."""
    with DOCUMENT_PATH.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def json_schema(node: Any) -> Any:
    """Turn an OpenAPI 3.0 schema into a self-contained JSON Schema (Draft 4).

    `$ref`s are inlined (the document has no recursive schemas) and `nullable` becomes an
    explicit null alternative, which is all a Draft 4 validator needs beyond `format`.
    """
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return json_schema(_resolve(node["$ref"]))
    schema = {key: json_schema(value) for key, value in node.items()}
    if schema.pop("nullable", False):
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def assert_response_conforms(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes | str | None,
) -> None:
    """Assert that a response is documented by openapi.yaml and matches its schema.

    `path` is the concrete request path (a query string is ignored). PinResults bodies
    are also checked for the ordering and uniqueness the service promises.
    """
    where = f"{method.upper()} {path} -> {status}"
    response = _response_object(method, path.split("?", 1)[0], status, where)
    content = response.get("content")
    if not content:
        assert body in (None, b"", ""), f"{where}: documented without a body, got {body!r}"
        return

    content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    assert media_type in content, (
        f"{where}: Content-Type {content_type!r} is not one of the documented {sorted(content)}"
    )
    assert body, f"{where}: documented with a {media_type} body, got none"
    if not media_type.endswith("json"):
        return  # bytes (a CAR, a raw block): their schema is `format: binary`
    try:
        instance = json.loads(body)
    except ValueError as error:
        raise AssertionError(f"{where}: body is not JSON ({error}): {body!r}") from None

    schema = content[media_type]["schema"]
    validator = Draft4Validator(json_schema(schema), format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(instance), key=lambda error: error.json_path)
    assert not errors, f"{where}: body does not match {schema.get('$ref', 'the schema')}:\n" + "\n".join(
        f"  at {error.json_path}: {error.message}" for error in errors
    )
    if schema.get("$ref") == "#/components/schemas/PinResults":
        _assert_pin_results_promises(instance["results"], where)


def _resolve(ref: str) -> Any:
    assert ref.startswith("#/"), f"only local $refs are supported, got {ref!r}"
    node: Any = load_document()
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        node = _resolve(node["$ref"])
    return node


def _response_object(method: str, path: str, status: int, where: str) -> Mapping[str, Any]:
    """The response object for `status`: the exact code, else its `NXX` range, else `default`."""
    path_item = _path_item(path, where)
    operations = {name: operation for name, operation in path_item.items() if name in _HTTP_METHODS}
    operation = operations.get(method.lower())
    if operation is None:
        # A method the path lacks is only answered by 405, documented on each operation of the path.
        assert status == 405, (
            f"{where}: {method.upper()} is not documented for this path (documented: "
            f"{sorted(name.upper() for name in operations)}), so only 405 conforms"
        )
        operation = next(iter(operations.values()))

    responses = operation["responses"]
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in responses:
            return _deref(responses[key])
    raise AssertionError(f"{where}: status is not documented (documented: {sorted(responses)})")


def _path_item(path: str, where: str) -> Mapping[str, Any]:
    # Concrete templates win over templated ones, as OpenAPI requires.
    templates = sorted(load_document()["paths"].items(), key=lambda item: item[0].count("{"))
    for template, path_item in templates:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return path_item
    raise AssertionError(f"{where}: path matches none of {[template for template, _ in templates]}")


def _assert_pin_results_promises(results: list[dict[str, Any]], where: str) -> None:
    """Newest first with unique `created` (unique per tenant), and no `requestid` twice."""
    created = [datetime.fromisoformat(item["created"].upper()) for item in results]
    for index, (newer, older) in enumerate(zip(created, created[1:], strict=False)):
        assert newer > older, (
            f"{where}: results must be sorted by created, strictly descending; "
            f"results[{index}].created={results[index]['created']!r} is not after "
            f"results[{index + 1}].created={results[index + 1]['created']!r}"
        )
    requestids = [item["requestid"] for item in results]
    duplicates = sorted({requestid for requestid in requestids if requestids.count(requestid) > 1})
    assert not duplicates, f"{where}: requestid listed more than once in results: {duplicates}"
