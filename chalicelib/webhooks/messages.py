"""A delivery: one event for one endpoint, as the webhooks queue carries it.

The queue is SQS FIFO. A delivery's message group is its endpoint and
request: a request's events reach an endpoint in the order they happened,
each only after the one before was delivered (a failed one holds the
group until it is delivered or dead-lettered), while other requests and
other endpoints go on. The deduplication id (endpoint and message id)
drops the copies a stream batch retried within SQS's 5 minutes sends.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

VERSION = 1


@dataclass(frozen=True)
class Delivery:
    tenant_id: str
    endpoint_id: str
    message_id: str  # webhook-id: the same for every attempt
    event_type: str
    request_id: str
    at_ms: int  # when the change happened
    # The JSON body POSTed, fixed when the event was read: every attempt signs the same bytes.
    payload: str

    @property
    def group(self) -> str:
        return f"{self.endpoint_id}#{self.request_id}"

    @property
    def deduplication_id(self) -> str:
        return hashlib.sha256(f"{self.endpoint_id}\n{self.message_id}".encode()).hexdigest()

    def body(self) -> str:
        return json.dumps({"v": VERSION, **asdict(self)}, separators=(",", ":"))


def delivery_of(body: str) -> Delivery | None:
    """The delivery a message body holds; None for a malformed one."""
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or data.pop("v", None) != VERSION:
            return None
        return Delivery(**data)
    except (ValueError, TypeError):
        return None
