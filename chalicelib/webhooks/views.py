"""The webhooks extension's wire format (openapi.yaml, "Webhooks"): request
bodies parsed into the domain's terms, endpoints and attempts serialised.
Every bad input is an ApiError in the Failure shape."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from chalicelib.api.errors import ApiError, bad_request, not_found
from chalicelib.api.pin_requests import json_object_body
from chalicelib.pins.timestamps import format_ms
from chalicelib.webhooks.endpoints import (
    DELIVERY_LOG_LIMIT,
    Attempt,
    Endpoint,
    InvalidEndpoint,
    TooManyEndpoints,
)

MAX_BODY_BYTES = 8 * 1024
T = TypeVar("T")


def parse_endpoint_body(raw: str | bytes | None, content_type: str | None) -> tuple[object, list[object]]:
    """(url, events) of a registration's body: {"url": ..., "events": [...]}."""
    body = json_object_body(raw, content_type, MAX_BODY_BYTES, "a WebhookEndpoint object", "{url, events}")
    events = body.get("events")
    if not isinstance(events, list):
        raise bad_request("BAD_REQUEST", "events must be an array of event types")
    return body.get("url"), events


def parse_limit(query: Mapping[str, str] | None) -> int:
    text = (query or {}).get("limit", str(DELIVERY_LOG_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= DELIVERY_LOG_LIMIT:
        raise bad_request("BAD_REQUEST", f"limit must be a whole number from 1 to {DELIVERY_LOG_LIMIT}")
    return int(text)


def registering(register: Callable[[], T]) -> T:
    """A registration's refusals as Failures: 400 for a bad endpoint, 409 past the limit."""
    try:
        return register()
    except InvalidEndpoint as error:
        raise bad_request("INVALID_WEBHOOK", str(error)) from None
    except TooManyEndpoints as error:
        raise ApiError(409, "TOO_MANY_WEBHOOKS", str(error)) from None


def found(value: T | None) -> T:
    if value is None:
        raise not_found("no such webhook endpoint")
    return value


def endpoint_json(endpoint: Endpoint, with_secret: bool = False) -> dict[str, Any]:
    """An endpoint; its secret only in the answer to its registration."""
    shown: dict[str, Any] = {
        "id": endpoint.endpoint_id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "created": format_ms(endpoint.created_ms),
    }
    if with_secret:
        shown["secret"] = endpoint.secret
    return shown


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "at": format_ms(attempt.at_ms),
        "messageid": attempt.message_id,
        "type": attempt.event_type,
        "attempt": attempt.attempt,
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
        "delivered": attempt.delivered,
    }
