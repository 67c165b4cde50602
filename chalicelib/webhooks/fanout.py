"""The pins stream's consumer: each event of a tenant's pins becomes a
delivery to each of its endpoints that wants it, on the webhooks queue.

A status event's PinStatus (and for a status copy, the request) is read
from the pin (one strongly consistent read). A pin gone by then was
deleted, and its deletion follows: a creation is still sent (its keys name
the request), a status it passed through is not (they do not). A tenant's endpoints are read once per batch.

A record whose reads or sends fail is reported: the stream delivers it
and every record after it again, in order, and the queue drops the
copies it already has (Delivery.deduplication_id).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from chalicelib.api.pin_responses import pin_status
from chalicelib.pins.pin import Pin
from chalicelib.pins.timestamps import format_ms
from chalicelib.storage.change_stream import _at
from chalicelib.webhooks.endpoints import Endpoint, EndpointRepository
from chalicelib.webhooks.events import PinEvent, pin_event
from chalicelib.webhooks.messages import Delivery

logger = logging.getLogger("pinning.webhooks")


class PinReader(Protocol):
    def get(self, tenant_id: str, created_ms: int) -> Pin | None: ...


class DeliverySender(Protocol):
    def send(self, deliveries: Sequence[Delivery]) -> None: ...


def payload(event: PinEvent, request_id: str, pin: Pin | None) -> str:
    """The JSON body an endpoint receives: {type, timestamp, data}, data a
    PinStatus in the event's status; of a pin gone by then (a deletion, or a
    creation read after it), its request id, creation and status only."""
    status = event.event_type.removeprefix("pin.")
    if pin is None:
        data: dict[str, Any] = {"requestid": request_id, "created": format_ms(event.created_ms)}
        if event.event_type != "pin.deleted":
            data["status"] = status
    else:
        data = pin_status(replace(pin, status=status))
    return json.dumps({"type": event.event_type, "timestamp": format_ms(event.at_ms), "data": data})


class Fanout:
    def __init__(
        self, endpoints: EndpointRepository, pins: PinReader, queue: DeliverySender, clock: Callable[[], int]
    ) -> None:
        self._endpoints = endpoints
        self._pins = pins
        self._queue = queue
        self._clock = clock

    def consume(self, records: Iterable[Any]) -> list[str]:
        """Sends the records' deliveries; returns the sequence number the
        stream must deliver again from (the first failed record's), if any."""
        tenants: dict[str, list[Endpoint]] = {}
        for record in records:
            try:
                self._queue.send(self._deliveries(record, tenants))
            except Exception:
                logger.exception("webhook fanout failed; the stream delivers the rest again")
                return [str(_at(record, "dynamodb", "SequenceNumber"))]
        return []

    def _deliveries(self, record: Any, tenants: dict[str, list[Endpoint]]) -> list[Delivery]:
        event = pin_event(record, self._clock())
        if event is None:
            return []
        if event.tenant_id not in tenants:
            tenants[event.tenant_id] = self._endpoints.of_tenant(event.tenant_id)
        wanting = [endpoint for endpoint in tenants[event.tenant_id] if endpoint.wants(event.event_type)]
        if not wanting:
            return []
        pin = None if event.event_type == "pin.deleted" else self._pins.get(event.tenant_id, event.created_ms)
        if pin is not None and event.request_id not in (None, pin.request_id):
            pin = None  # another request created in the same millisecond (its own events follow)
        request_id = event.request_id or (pin.request_id if pin is not None else None)
        if request_id is None:
            return []  # deleted since: its deletion is the event to send
        body = payload(event, request_id, pin)
        return [
            Delivery(
                event.tenant_id,
                endpoint.endpoint_id,
                event.message_id,
                event.event_type,
                request_id,
                event.at_ms,
                body,
            )
            for endpoint in wanting
        ]
