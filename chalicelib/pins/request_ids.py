"""Request identifiers: UUID version 7.

The first 48 bits are the pin's `created` milliseconds, which locate the item
in one read; the other 74 bits are random, so ids cannot be guessed.
"""

from __future__ import annotations

import secrets
import uuid

_MS_MASK = (1 << 48) - 1


def new_request_id(created_ms: int) -> str:
    rand_a = secrets.randbits(12)
    rand_b = secrets.randbits(62)
    value = ((created_ms & _MS_MASK) << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def created_ms_of(request_id: str) -> int | None:
    """The creation time a request id carries, or None if it is not ours."""
    try:
        parsed = uuid.UUID(request_id)
    except (ValueError, TypeError, AttributeError):
        return None
    # Only the canonical spelling names a request: "{...}" or upper-case
    # variants of an id are other strings, hence unknown ids.
    if parsed.version != 7 or str(parsed) != request_id:
        return None
    return parsed.int >> 80
