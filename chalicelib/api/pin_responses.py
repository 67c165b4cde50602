"""Serializes pins to the spec's PinStatus and PinResults."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.pins.timestamps import format_ms
from chalicelib.storage.pin_record import PinRecord, plain_map


def pin_status(record: PinRecord) -> dict[str, Any]:
    pin: dict[str, Any] = {"cid": record.cid}
    if record.name is not None:
        pin["name"] = record.name
    if record.origins:
        pin["origins"] = list(record.origins)
    meta = plain_map(record.meta)
    if meta:
        pin["meta"] = meta
    return {
        "requestid": record.request_id,
        "status": record.status,
        "created": format_ms(record.created_ms),
        "pin": pin,
        "delegates": list(record.delegates),
        "info": plain_map(record.info),
    }


def pin_results(records: Sequence[PinRecord], count: int) -> dict[str, Any]:
    # Always an array, never null: a null once crashed Kubo's daemon.
    return {"count": count, "results": [pin_status(record) for record in records]}
