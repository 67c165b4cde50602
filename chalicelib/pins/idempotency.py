"""Idempotent creates: a client that sends an `Idempotency-Key` with POST
/pins or POST /pins/{requestid} and retries (a timeout, a dropped
connection) gets the first answer again instead of a second pin.

The key is claimed in the same write as the pin it created, so two retries
racing each other make one pin. A claim holds for WINDOW_MS; the same key
with another request in that time is refused (IdempotencyKeyReused).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from chalicelib.pins.model import PinRequest
from chalicelib.pins.pin import Pin

WINDOW_MS = 24 * 3600 * 1000
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class IdempotencyClaim:
    """A key to claim with a pin's creation: what it answers, and until when."""

    key: str
    fingerprint: str
    expires_ms: int


@dataclass(frozen=True)
class Claimed:
    """A key claimed within its window: the request it was for and the first answer."""

    fingerprint: str
    pin: Pin


class IdempotencyKeyReused(Exception):
    """The key was used in the last WINDOW_MS for another request."""

    reason = "IDEMPOTENCY_KEY_REUSED"

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.details = (
            f"Idempotency-Key {key!r} was used for another request in the last "
            f"{WINDOW_MS // 3_600_000} hours; use a new key for a new request"
        )


def fingerprint(request: PinRequest, replacing: str | None) -> str:
    """What a request asks for, so a retry can be told from another request."""
    asked = [replacing, request.cid.text, request.name, list(request.origins), dict(sorted(request.meta.items()))]
    return hashlib.sha256(json.dumps(asked, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()
