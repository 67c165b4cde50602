"""Parses and validates what clients send: Pin bodies and list queries."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chalicelib.api.errors import ApiError, bad_request
from chalicelib.pins.cids import ContentId, InvalidCid, parse_cid
from chalicelib.pins.idempotency import MAX_KEY_CHARS
from chalicelib.pins.model import (
    DEFAULT_LIMIT,
    MATCHES,
    MAX_LIMIT,
    MAX_ORIGINS,
    MAX_QUERY_CIDS,
    STATUSES,
    InvalidRequest,
    PinQuery,
    PinRequest,
    check_meta,
    check_name,
    check_text,
)
from chalicelib.pins.multiaddrs import InvalidMultiaddr, parse_peer_multiaddr
from chalicelib.pins.timestamps import parse_rfc3339

_JSON_TYPES = ("application/json",)
# A Pin nests 2 deep; unknown fields are ignored but read, so they are bounded too.
MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _invalid(error: InvalidRequest) -> ApiError:
    return bad_request(error.reason, error.details)


def json_object_body(
    raw: str | bytes | None, content_type: str | None, max_bytes: int, required: str, shape: str
) -> dict[str, Any]:
    """A request body that must be one JSON object: 413, 415-like 400, empty,
    invalid or another JSON value each answered in the Failure shape.
    `required` names what is missing ("a Pin object"), `shape` what it must be."""
    if raw is not None and len(raw) > max_bytes:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request body is larger than {max_bytes} bytes")
    media_type = (content_type or "application/json").split(";")[0].strip().lower()
    if media_type not in _JSON_TYPES:
        raise bad_request("UNSUPPORTED_CONTENT_TYPE", f"Content-Type must be application/json, not {content_type!r}")
    if not raw:
        raise bad_request("INVALID_JSON", f"request body is empty; {required} is required")
    try:
        body = load_json(raw)
    except ValueError as error:
        raise bad_request("INVALID_JSON", f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise bad_request("BAD_REQUEST", f"request body must be a JSON object {shape}")
    return body


def parse_pin_body(raw: str | bytes | None, content_type: str | None, max_bytes: int) -> PinRequest:
    body = json_object_body(raw, content_type, max_bytes, "a Pin object", "(a Pin)")
    try:
        return _pin(body)
    except InvalidRequest as error:
        raise _invalid(error) from None


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's `Idempotency-Key` (an extension: pins.idempotency), or None."""
    key = headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable() or not key.isascii():
        raise bad_request(
            "INVALID_IDEMPOTENCY_KEY", f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable ASCII characters"
        )
    return key


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _depth(text: str) -> int:
    """How deep arrays and objects nest in valid JSON `text`."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # too few brackets to nest too deep: the usual body, read once
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def load_json(raw: str | bytes) -> Any:
    """Strict RFC 8259 JSON: UTF-8 only (json.loads would guess UTF-16 or
    UTF-32 from bytes and skip a BOM), no NaN/Infinity literals, and at most
    MAX_JSON_DEPTH levels of nesting (the parser's own bound is the stack's,
    and it raises RecursionError); every refusal is a ValueError."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as error:
        raise ValueError(f"JSON must be UTF-8 ({error})") from None
    if text.startswith("\ufeff"):
        raise ValueError("JSON must not start with a byte order mark")
    try:
        value = json.loads(text, parse_constant=_constant)
        too_deep = _depth(text) > MAX_JSON_DEPTH
    except RecursionError:
        too_deep = True
    if too_deep:
        raise ValueError(f"JSON may nest arrays and objects at most {MAX_JSON_DEPTH} deep")
    return value


def _pin(body: dict[str, Any]) -> PinRequest:
    if "cid" not in body:
        raise InvalidRequest("INVALID_CID", "cid is required")
    cid = _cid(body["cid"])
    # JSON null is read as "absent" for the optional fields (openapi.yaml says
    # so); any other value must have the field's type, falsy ones too.
    name = None if body.get("name") is None else check_name(body["name"])
    origins = () if body.get("origins") is None else _origins(body["origins"])
    meta = {} if body.get("meta") is None else check_meta(body["meta"])
    return PinRequest(cid=cid, name=name, origins=origins, meta=meta)


def _cid(value: Any) -> ContentId:
    if not isinstance(value, str):
        raise InvalidRequest("INVALID_CID", "cid must be a string")
    try:
        return parse_cid(value)
    except InvalidCid as error:
        raise InvalidRequest("INVALID_CID", f"invalid cid {value[:100]!r}: {error}") from None


def _origins(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidRequest("INVALID_ORIGINS", "origins must be an array of multiaddrs")
    if len(value) > MAX_ORIGINS:
        raise InvalidRequest("INVALID_ORIGINS", f"at most {MAX_ORIGINS} origins are allowed")
    # Types first: only strings are compared (a repr of nested arrays could recurse).
    if not all(isinstance(origin, str) for origin in value):
        raise InvalidRequest("INVALID_ORIGINS", "each origin must be a multiaddr string")
    if len(set(value)) != len(value):
        raise InvalidRequest("INVALID_ORIGINS", "origins must be unique")
    for origin in value:
        check_text(origin, "INVALID_ORIGINS", "an origin")
        try:
            parse_peer_multiaddr(origin)
        except InvalidMultiaddr as error:
            raise InvalidRequest("INVALID_ORIGINS", f"origin {origin[:200]!r}: {error}") from None
    return tuple(value)


def parse_list_query(params: Mapping[str, Any] | None) -> PinQuery:
    """Query parameters of GET /pins (Chalice's MultiDict or a plain dict)."""
    params = params or {}
    try:
        return _query(params)
    except InvalidRequest as error:
        raise bad_request("INVALID_QUERY", error.details) from None


def _values(params: Mapping[str, Any], name: str) -> list[str]:
    getlist = getattr(params, "getlist", None)
    if getlist is not None:
        return list(getlist(name)) if name in params else []
    value = params.get(name)
    return [] if value is None else [value]


def _single(params: Mapping[str, Any], name: str) -> str | None:
    values = _values(params, name)
    if len(values) > 1:
        raise InvalidRequest("INVALID_QUERY", f"{name} may be given once")
    return values[0] if values else None


def _csv(params: Mapping[str, Any], name: str) -> list[str]:
    # The spec's form style is comma-separated; repeated parameters add up.
    items = [item.strip() for value in _values(params, name) for item in value.split(",")]
    if any(not item for item in items):
        raise InvalidRequest("INVALID_QUERY", f"{name} has an empty item")
    return items


def _query(params: Mapping[str, Any]) -> PinQuery:
    cids = _csv(params, "cid")
    if len(cids) > MAX_QUERY_CIDS:
        raise InvalidRequest("INVALID_QUERY", f"at most {MAX_QUERY_CIDS} CIDs may be given")
    cid_keys = tuple(dict.fromkeys(_cid(cid).key for cid in cids))

    name = _single(params, "name")
    if name is not None:
        check_name(name)
    match = _single(params, "match") or "exact"
    if match not in MATCHES:
        raise InvalidRequest("INVALID_QUERY", f"match must be one of {', '.join(MATCHES)}")

    statuses = _csv(params, "status")
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown:
        raise InvalidRequest("INVALID_QUERY", f"unknown status {unknown[0]!r}; use {', '.join(STATUSES)}")

    meta = _meta_filter(_single(params, "meta"))
    before = _time(params, "before")
    after = _time(params, "after")
    limit = _limit(_single(params, "limit"))

    if not statuses:
        # No status: only pinned, unless the client looks for something
        # specific, which must then be found whatever its state.
        statuses = list(STATUSES) if (cid_keys or name is not None or meta) else ["pinned"]
    return PinQuery(
        statuses=frozenset(statuses),
        cid_keys=cid_keys,
        name=name,
        match=match,
        meta=meta,
        before_ns=before,
        after_ns=after,
        limit=limit,
    )


def _meta_filter(raw: str | None) -> dict[str, str]:
    if raw is None:
        return {}
    try:
        value = load_json(raw)
    except ValueError as error:
        raise InvalidRequest(
            "INVALID_QUERY", f'meta must be URL-escaped JSON, e.g. {{"app_id":"x"}}: {error}'
        ) from None
    return check_meta(value)


def _time(params: Mapping[str, Any], name: str) -> int | None:
    raw = _single(params, name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError as error:
        raise InvalidRequest("INVALID_QUERY", f"{name} must be an RFC 3339 date-time: {error}") from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidRequest("INVALID_QUERY", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)
