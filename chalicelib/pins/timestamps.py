"""RFC 3339 timestamps as the Pinning Service API writes them, and the clock.

Parsed times are integer nanoseconds since the Unix epoch so that a client's
fraction survives exactly: floats would lose it past microseconds.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta

_NS_PER_SECOND = 1_000_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)

# RFC 3339 section 5.6 date-time. [0-9] rather than \d: \d also matches
# non-ASCII digits, which int() would happily accept.
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]"
    r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def parse_rfc3339(value: str) -> int:
    """Nanoseconds since the epoch (UTC) of an RFC 3339 date-time.

    Raises ValueError with a message fit for the client on anything else.
    """
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        raise ValueError("timestamp must be RFC 3339 with a time zone, e.g. 2020-07-27T17:32:28Z")
    year, month, day, hour, minute, second = (int(field) for field in match.group(1, 2, 3, 4, 5, 6))
    fraction, sign, offset_hours, offset_minutes = match.group(7, 8, 9, 10)
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError("timestamp has no such date") from None
    # Second 60 is a leap second; counting it as the next second keeps order.
    if hour > 23 or minute > 59 or second > 60:
        raise ValueError("timestamp has an out-of-range time of day")
    offset_seconds = 0
    if sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            raise ValueError("timestamp has an out-of-range UTC offset")
        offset_seconds = int(offset_hours) * 3600 + int(offset_minutes) * 60
        if sign == "-":
            offset_seconds = -offset_seconds
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds
    # Digits past the ninth are below a nanosecond: truncated, not rounded.
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    return seconds * _NS_PER_SECOND + nanos


def format_ms(ms: int) -> str:
    """Milliseconds since the epoch as e.g. 2020-07-27T17:32:28.276Z."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
