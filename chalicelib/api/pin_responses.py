"""Serializes pins to the spec's PinStatus and PinResults."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.pins.pin import Pin
from chalicelib.pins.timestamps import format_ms


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


def pin_results(pins: Sequence[Pin], count: int) -> dict[str, Any]:
    # Always an array, never null: a null once crashed Kubo's daemon.
    return {"count": count, "results": [pin_status(pin) for pin in pins]}
