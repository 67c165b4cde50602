"""Monthly usage records for billing, as JSON lines in S3: `usage/YYYY-MM.jsonl`.

A schedule on the 1st (app.export_usage, 01:00 UTC: the month's last request
counts are flushed within a minute) writes the month just ended, one line per
tenant in the tenants' listing order. Written again (the schedule's retry, or
the function invoked by hand), the object is the same: a closed month's bytes
are final and every figure is the month's, none "now". S3 rather than EventBridge
events: a billing system reads one object a month whatever the tenants'
number, an object can be written again whole (an event bus would deliver a
retried month twice), and the archive bucket already exists with its grants
and encryption (its lifecycle rules move only `archives/`).

The operator's month (unique bytes stored, each CID once: chalicelib.usage.unique)
goes beside it, `usage/YYYY-MM.operator.json`, so that every line of the
tenants' object is a tenant's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from chalicelib.pins.timestamps import now_ms
from chalicelib.usage.meter import TenantUsage, UsageMeter
from chalicelib.usage.months import Month
from chalicelib.usage.unique import OperatorLedger, operator_usage

EXPORT_PREFIX = "usage/"


class ObjectWriter(Protocol):
    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> Any: ...


def month_record(usage: TenantUsage) -> dict[str, Any]:
    """What a bill needs of a tenant's month: its figures only, none of "now"."""
    return {
        "tenant": usage.tenant_id,
        "month": usage.month.month.text,
        "opening_bytes": usage.month.opening,
        "ending_bytes": usage.month.ending,
        "byte_hours": usage.month.byte_hours,
        "cold_ending_bytes": 0 if usage.cold_month is None else usage.cold_month.ending,
        "cold_byte_hours": 0 if usage.cold_month is None else usage.cold_month.byte_hours,
        "filecoin_ending_bytes": 0 if usage.filecoin_month is None else usage.filecoin_month.ending,
        "filecoin_byte_hours": 0 if usage.filecoin_month is None else usage.filecoin_month.byte_hours,
        "requests": {name: usage.requests.get(name, 0) for name in ("read", "write", "retrieve")},
        "egress_bytes": usage.requests.get("egress_bytes", 0),
    }


class UsageExport:
    def __init__(
        self,
        tenant_ids: Callable[[], Iterable[str]],
        meter: UsageMeter,
        objects: ObjectWriter,
        bucket: str,
        clock: Callable[[], int] = now_ms,
        operator: OperatorLedger | None = None,
    ) -> None:
        self._operator = operator
        self._tenant_ids = tenant_ids
        self._meter = meter
        self._objects = objects
        self._bucket = bucket
        self._clock = clock

    def export(self, month: Month | None = None) -> str:
        """Writes `month`'s records (default: the month before this one); returns the object's key."""
        if month is None:
            month = Month.of_ms(Month.of_ms(self._clock()).start_ms - 1)
        lines = [
            json.dumps(month_record(self._meter.usage(tenant, month)), sort_keys=True) for tenant in self._tenant_ids()
        ]
        key = f"{EXPORT_PREFIX}{month.text}.jsonl"
        body = "".join(line + "\n" for line in lines).encode()
        self._objects.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        if self._operator is not None:
            self._put_operator(self._operator, month)
        return key

    def _put_operator(self, operator: OperatorLedger, month: Month) -> None:
        figures = operator_usage(operator, month, self._clock()).month
        record = {
            "month": month.text,
            "opening_unique_bytes": figures.opening,
            "ending_unique_bytes": figures.ending,
            "unique_byte_hours": figures.byte_hours,
        }
        body = (json.dumps(record, sort_keys=True) + "\n").encode()
        key = f"{EXPORT_PREFIX}{month.text}.operator.json"
        self._objects.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
