"""The events of a tenant's pins, read from the pins table's stream (KEYS_ONLY).

No write or wait is added to the pinning path: the keys the pin store
writes already say what happened (chalicelib.storage.pin_keys):

- a pin created or deleted (or replaced) inserts its count change
  `p#~<created>#<request id>#<version>`: at version 0 (a new pin's) its
  creation, `queued`, at any later version its deletion. Both name the
  request, so they are sent even if the pin is gone by the time they are read;
- a pin entering another status inserts its status copy,
  `s#<status>#<created>` (a write that keeps the status overwrites that item:
  a MODIFY, no event). A pin is queued only when created: the status copy
  of `queued` is no event of its own.

- a write of a request's `info` that is a cold-tier or Filecoin event
  (chalicelib.webhooks.info_events) inserts the event's own item,
  `e#<created>#<request id>#<version>#<event type>`: its keys name the
  request and the event, the item holds the event's data.

Lambda's event filter (WEBHOOK_FILTER) lets only those insertions through;
a record that gets through anyway is ignored here.

A stream shard keeps the order of one partition key's writes, and one
pin's items share its shard's key: a request's events come in the order
they happened (chalicelib.webhooks.fanout keeps that order up to the
receiver).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.storage.change_stream import _at
from chalicelib.storage.pin_keys import (
    BY_STATUS,
    CHANGES,
    CREATED_DIGITS,
    EVENT,
    PIN,
    STATUS_OF_CODE,
    entry_prefix,
    status_prefix,
    tenant_of_shard,
)
from chalicelib.webhooks.info_events import INFO_EVENTS

_STATUS_COPY_PREFIXES = tuple(
    status_prefix(status) + digit for status in STATUS_OF_CODE.values() if status != "queued" for digit in "0123456789"
)
_PIN_CHANGES = entry_prefix(PIN) + CHANGES
_EVENTS = entry_prefix(EVENT)
# Lambda's event filter syntax: inserted status copies, pin changes and event items.
WEBHOOK_FILTER: Mapping[str, Any] = {
    "eventName": ["INSERT"],
    "dynamodb": {
        "Keys": {"sk": {"S": [{"prefix": prefix} for prefix in (*_STATUS_COPY_PREFIXES, _PIN_CHANGES, _EVENTS)]}}
    },
}


@dataclass(frozen=True)
class PinEvent:
    """Something that happened to one pin, as the stream told it."""

    event_type: str
    tenant_id: str
    created_ms: int
    request_id: str | None  # known from a creation's or deletion's keys; a status change's is read from the pin
    at_ms: int  # when the write happened (the stream's approximate time)
    # The same for every delivery of the same record: the receiver's key against duplicates.
    message_id: str
    # An event item's keys (shard, sort key): its data is read from it.
    item: tuple[str, str] | None = None


def _message_id(*parts: str) -> str:
    return "msg_" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _written_ms(approximate: object, now_ms: int) -> int:
    """When the stream says the write happened: epoch seconds from Lambda, a
    datetime from boto3 (the local stack's poller); `now_ms` without one."""
    if isinstance(approximate, datetime):
        return int(approximate.timestamp() * 1000)
    if isinstance(approximate, int | float):
        return int(approximate * 1000)
    return now_ms


def pin_event(record: Any, now_ms: int) -> PinEvent | None:
    """The event a stream record is; None for any other record."""
    if _at(record, "eventName") != "INSERT":
        return None
    shard = _at(record, "dynamodb", "Keys", "pk", "S")
    sort_key = _at(record, "dynamodb", "Keys", "sk", "S")
    if not (isinstance(shard, str) and "#" in shard and isinstance(sort_key, str)):
        return None
    at_ms = _written_ms(_at(record, "dynamodb", "ApproximateCreationDateTime"), now_ms)
    tenant_id = tenant_of_shard(shard)
    if sort_key.startswith(_STATUS_COPY_PREFIXES):
        code, created = sort_key[len(BY_STATUS) + 1 :].split("#", 1)
        if not (created.isdigit() and len(created) == CREATED_DIGITS):
            return None
        sequence = str(_at(record, "dynamodb", "SequenceNumber"))
        # A status may be entered again one day: the record, not the status, names the message.
        message_id = _message_id(shard, sort_key, sequence)
        return PinEvent(f"pin.{STATUS_OF_CODE[code]}", tenant_id, int(created), None, at_ms, message_id)
    if sort_key.startswith(_PIN_CHANGES):
        parts = sort_key[len(_PIN_CHANGES) :].split("#")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[2].isdigit()):
            return None
        created, request_id, version = parts
        event_type = "pin.queued" if int(version) == 0 else "pin.deleted"
        # A request is created once and deleted once: its id and the event name the message.
        message_id = _message_id(tenant_id, request_id, event_type)
        return PinEvent(event_type, tenant_id, int(created), request_id, at_ms, message_id)
    if sort_key.startswith(_EVENTS):
        return _item_event(shard, sort_key, tenant_id, at_ms)
    return None


def _item_event(shard: str, sort_key: str, tenant_id: str, at_ms: int) -> PinEvent | None:
    parts = sort_key[len(_EVENTS) :].split("#")
    if len(parts) != 4 or not (len(parts[0]) == CREATED_DIGITS and parts[0].isdigit() and parts[2].isdigit()):
        return None
    created, request_id, _, event_type = parts
    if event_type not in INFO_EVENTS:
        return None
    # One item per write and event type: its keys name the message.
    return PinEvent(
        event_type, tenant_id, int(created), request_id, at_ms, _message_id(shard, sort_key), (shard, sort_key)
    )
