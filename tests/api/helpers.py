"""Small helpers shared by the API tests: RFC 3339 spelling of times, and the
assertions every error response must pass."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.pins.model import STATUSES
from tests.support.pin_filters import NS_PER_MS

CREATED = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
ALL_STATUSES = ",".join(STATUSES)


def header(reply: Any, name: str) -> str | None:
    return next((value for key, value in reply.headers.items() if key.lower() == name.lower()), None)


def created_ms(created: str) -> int:
    """Milliseconds since the epoch of a PinStatus.created ("...T10:36:00.123Z")."""
    assert CREATED.fullmatch(created), f"created is not RFC 3339 UTC with milliseconds: {created!r}"
    seconds = calendar.timegm(datetime.strptime(created[:19], "%Y-%m-%dT%H:%M:%S").timetuple())
    return seconds * 1000 + int(created[20:23])


def rfc3339(ns: int, *, offset_minutes: int = 0, digits: int = 9, lower: bool = False) -> str:
    """`ns` nanoseconds since the epoch as RFC 3339 in the given UTC offset,
    with `digits` fraction digits (truncated), as another client would write it."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    local = datetime(1970, 1, 1) + timedelta(seconds=seconds, minutes=offset_minutes)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{fraction:09d}"[:digits]
    if offset_minutes == 0:
        text += "Z"
    else:
        sign = "+" if offset_minutes > 0 else "-"
        hours, minutes = divmod(abs(offset_minutes), 60)
        text += f"{sign}{hours:02d}:{minutes:02d}"
    return text.replace("T", "t").replace("Z", "z") if lower else text


def kubo_before(created: str) -> str:
    """What Kubo sends as `before`: the Go time it parsed, printed with nanoseconds."""
    return rfc3339(created_ms(created) * NS_PER_MS, digits=9)


def js_before(created: str) -> str:
    """What the JS client sends: `new Date(created).toISOString()`."""
    ms = created_ms(created)
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def assert_failure(reply: Any, status: int, reason: str) -> None:
    """The response is the spec's Failure with this status and reason and a
    non-empty human-readable explanation."""
    assert reply.status == status, (reply.status, reply.body)
    body = reply.json
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), reply.body
    assert body["error"].get("reason") == reason, reply.body
    details = body["error"].get("details")
    assert isinstance(details, str) and details.strip(), reply.body
