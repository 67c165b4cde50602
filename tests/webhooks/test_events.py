"""Events from the pins stream's keys (KEYS_ONLY): which records are events,
and that Lambda's filter lets exactly those through."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.storage.pin_keys import (
    change_id,
    change_sort_keys,
    entry_key,
    pin_sort_key,
    status_prefix,
)
from chalicelib.webhooks.events import WEBHOOK_FILTER, pin_event

SHARD = "alice#3"
CREATED = 1_764_000_000_123
REQUEST = "0192f0a0-0000-7000-8000-000000000001"


def record(sort_key: str, event: str = "INSERT", sequence: str = "100", at: Any = 1_764_000_001) -> dict[str, Any]:
    return {
        "eventName": event,
        "dynamodb": {
            "Keys": {"pk": {"S": SHARD}, "sk": {"S": sort_key}},
            "SequenceNumber": sequence,
            "ApproximateCreationDateTime": at,
        },
    }


def passes_filter(record: dict[str, Any]) -> bool:
    """Lambda's evaluation of WEBHOOK_FILTER (an event name and key prefixes)."""
    prefixes = [rule["prefix"] for rule in WEBHOOK_FILTER["dynamodb"]["Keys"]["sk"]["S"]]
    sort_key = record["dynamodb"]["Keys"]["sk"]["S"]
    return record["eventName"] in WEBHOOK_FILTER["eventName"] and any(sort_key.startswith(p) for p in prefixes)


def test_a_status_copy_inserted_is_the_pin_entering_that_status():
    # Given the insertion of a pin's `pinned` copy
    inserted = record(entry_key(status_prefix("pinned"), CREATED))
    # When it is read as an event
    event = pin_event(inserted, now_ms=0)
    # Then the pin entered `pinned` then; its request is read later
    assert event is not None
    assert (event.event_type, event.tenant_id, event.created_ms, event.request_id) == (
        "pin.pinned",
        "alice",
        CREATED,
        None,
    )
    assert event.at_ms == 1_764_000_001_000


def test_a_pins_creation_and_deletion_are_its_pin_changes_naming_the_request():
    # Given the pin changes of a creation (version 0) and a deletion (version 3)
    created, deleted = (
        change_sort_keys(change_id(CREATED, REQUEST, version), was, now)[-1]
        for version, was, now in ((0, None, "q"), (3, "p", None))
    )
    # When each is read as an event
    events = [pin_event(record(key), now_ms=0) for key in (created, deleted)]
    # Then the creation is the pin queued, the deletion its deletion, both naming the request
    assert [(e.event_type, e.created_ms, e.request_id) for e in events] == [
        ("pin.queued", CREATED, REQUEST),
        ("pin.deleted", CREATED, REQUEST),
    ]
    # and the queued status copy inserted with the creation is no second event
    assert pin_event(record(entry_key(status_prefix("queued"), CREATED)), now_ms=0) is None


def test_a_records_message_id_is_the_same_on_every_delivery_and_differs_between_records():
    # Given one record delivered twice, and another
    copy = record(entry_key(status_prefix("pinning"), CREATED), sequence="7")
    again = record(entry_key(status_prefix("pinning"), CREATED), sequence="7", at=datetime.now(UTC))
    other = record(entry_key(status_prefix("pinning"), CREATED), sequence="8")
    # Then the copies share their message id (the receiver's key against duplicates)
    ids = [pin_event(r, now_ms=0).message_id for r in (copy, again, other)]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(
    ("sort_key", "event_name"),
    [
        (entry_key(status_prefix("pinning"), CREATED), "MODIFY"),  # a write keeping the status
        (entry_key(status_prefix("pinning"), CREATED), "REMOVE"),  # the pin leaving it
        (pin_sort_key(CREATED), "INSERT"),  # the pin itself
        (change_sort_keys(change_id(CREATED, REQUEST, 2), "q", "g")[0], "INSERT"),  # a status's count change
        ("c#bafy#" + f"{CREATED:013d}", "INSERT"),  # a CID copy
        ("k#0#0", "INSERT"),  # a counter bucket
        ("s#q#12", "INSERT"),  # not a created millisecond
        ("p#~123#" + REQUEST, "INSERT"),  # a malformed change
    ],
)
def test_other_records_are_no_event(sort_key, event_name):
    # Given a record of another item or kind of write
    other = record(sort_key, event_name)
    # Then it is no event
    assert pin_event(other, now_ms=0) is None


def test_the_filter_lets_through_every_event_and_drops_most_other_records():
    # Given a pin's whole life in records: created, moved twice, deleted
    changes = [(0, None, "q"), (1, "q", "g"), (2, "g", "p"), (3, "p", None)]
    records = [record(entry_key(status_prefix(s), CREATED)) for s in ("queued", "pinning", "pinned")]
    records += [
        record(key) for v, was, now in changes for key in change_sort_keys(change_id(CREATED, REQUEST, v), was, now)
    ]
    records += [record(entry_key(status_prefix("queued"), CREATED), "REMOVE"), record(pin_sort_key(CREATED), "MODIFY")]
    # When Lambda's filter and the consumer read them
    events = [r for r in records if pin_event(r, now_ms=0) is not None]
    passed = [r for r in records if passes_filter(r)]
    # Then exactly the events pass the filter, one per status change
    assert passed == events
    assert sorted(pin_event(r, now_ms=0).event_type for r in events) == [
        "pin.deleted",
        "pin.pinned",
        "pin.pinning",
        "pin.queued",
    ]
