"""Serializes pins to the spec's PinStatus and PinResults."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from chalicelib.pins.timestamps import format_ms
from chalicelib.storage.pin_record import PinRecord


def pin_status(record: PinRecord) -> Dict[str, Any]:
    pin: Dict[str, Any] = {"cid": record.cid}
    if record.name is not None:
        pin["name"] = record.name
    if record.origins:
        pin["origins"] = list(record.origins)
    meta = _plain(record.meta)
    if meta:
        pin["meta"] = meta
    return {
        "requestid": record.request_id,
        "status": record.status,
        "created": format_ms(record.created_ms),
        "pin": pin,
        "delegates": list(record.delegates),
        "info": _plain(record.info),
    }


def _plain(value: Any) -> Dict[str, str]:
    # A raw MapAttribute read from DynamoDB, or the dict it was built from.
    return value.as_dict() if hasattr(value, "as_dict") else dict(value or {})


def pin_results(records: Sequence[PinRecord], count: int) -> Dict[str, Any]:
    # Always an array, never null: a null once crashed Kubo's daemon.
    return {"count": count, "results": [pin_status(record) for record in records]}
