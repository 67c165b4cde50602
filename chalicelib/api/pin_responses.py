"""Serializes pins to the spec's PinStatus and PinResults."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chalicelib.pins.pin import Pin
from chalicelib.pins.timestamps import format_ms

# Lambda refuses to return more than 6 MB: 6,291,556 bytes of the JSON its
# runtime sends. The body travels inside it as a JSON string, where each `"`
# and `\` of the body costs one byte more. 64 KiB are left for the status
# code, the headers and the rest of that envelope.
LAMBDA_RESPONSE_BYTES = 6_291_556
PAGE_BYTES = LAMBDA_RESPONSE_BYTES - 64 * 1024


def pin_status(pin: Pin) -> dict[str, Any]:
    requested: dict[str, Any] = {"cid": pin.cid}
    if pin.name is not None:
        requested["name"] = pin.name
    if pin.origins:
        requested["origins"] = list(pin.origins)
    if pin.meta:
        requested["meta"] = dict(pin.meta)
    return {
        "requestid": pin.request_id,
        "status": pin.status,
        "created": format_ms(pin.created_ms),
        "pin": requested,
        "delegates": list(pin.delegates),
        "info": dict(pin.info),
    }


def _returned_bytes(ascii_json: str) -> int:
    """Bytes of ASCII JSON text once it is a string in Lambda's response."""
    return len(ascii_json) + ascii_json.count('"') + ascii_json.count("\\")


def pin_results(pins: Sequence[Pin], count: int, max_bytes: int = PAGE_BYTES) -> str:
    """PinResults as the JSON text sent (as Chalice writes JSON: ASCII, no
    spaces): the first pins that fit in `max_bytes` as Lambda returns them.
    `count` stays exact, so a cut page reads as one with more to come: Kubo
    and the JS client read on with `before`. The first pin is always sent
    (no pin within the limits comes near the budget alone; an empty page
    with a count above 0 is an error to Kubo)."""
    # Always an array, never null: a null once crashed Kubo's daemon.
    head, tail = f'{{"count":{count},"results":[', "]}"
    used = _returned_bytes(head) + _returned_bytes(tail)
    items: list[str] = []
    for pin in pins:
        item = json.dumps(pin_status(pin), separators=(",", ":"))
        used += _returned_bytes(item) + (1 if items else 0)
        if items and used > max_bytes:
            break
        items.append(item)
    return head + ",".join(items) + tail
