"""The pins stream's consumer: each event of a tenant's pins becomes a
delivery to each of its endpoints that wants it, on the webhooks queue.

A status event's PinStatus (and for a status copy, the request) is read
from the pin (one strongly consistent read). A pin gone by then was
deleted, and its deletion follows: a creation is still sent (its keys name
the request), a status it passed through is not (they do not). A cold-tier
or Filecoin event's data is read from its own item (one strongly consistent
read), which names the request. A tenant's endpoints are read once per batch.

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

    def event_data(self, shard: str, sort_key: str) -> dict[str, str] | None: ...


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


def item_payload(event: PinEvent, request_id: str, data: dict[str, str]) -> str:
    """The JSON body of a cold-tier or Filecoin event: {type, timestamp,
    data}, data the request, its CID and the event's values."""
    body = {"requestid": request_id, "created": format_ms(event.created_ms), **data}
    return json.dumps({"type": event.event_type, "timestamp": format_ms(event.at_ms), "data": body})


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
        body = self._item_body(event) if event.item is not None else self._pin_body(event)
        if body is None:
            return []
        request_id, payload_text = body
        return [
            Delivery(
                event.tenant_id,
                endpoint.endpoint_id,
                event.message_id,
                event.event_type,
                request_id,
                event.at_ms,
                payload_text,
            )
            for endpoint in wanting
        ]

    def _item_body(self, event: PinEvent) -> tuple[str, str] | None:
        """An event item's request and body; None once the item expired."""
        assert event.item is not None and event.request_id is not None
        data = self._pins.event_data(*event.item)
        return None if data is None else (event.request_id, item_payload(event, event.request_id, data))

    def _pin_body(self, event: PinEvent) -> tuple[str, str] | None:
        """A pin event's request and body, read from the pin; None when its request is no longer known."""
        pin = None if event.event_type == "pin.deleted" else self._pins.get(event.tenant_id, event.created_ms)
        if pin is not None and event.request_id not in (None, pin.request_id):
            pin = None  # another request created in the same millisecond (its own events follow)
        request_id = event.request_id or (pin.request_id if pin is not None else None)
        if request_id is None:
            return None  # deleted since: its deletion is the event to send
        return request_id, payload(event, request_id, pin)
