"""Cold-tier and Filecoin events: what an `info` change is, the event item the
pin store writes with it, and its delivery through the same pipeline as the
status events (the pins stream and the webhooks queue on moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.cold.archiver import COLD_KEYS, merge_info
from chalicelib.cold.tiering import cold_info
from chalicelib.filecoin.tracker import INFO_KEYS
from chalicelib.pins.pin import Pin
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.pin_keys import EVENT, entry_prefix, event_sort_key
from chalicelib.webhooks.endpoints import PIN_EVENTS
from chalicelib.webhooks.events import WEBHOOK_FILTER, pin_event
from chalicelib.webhooks.fanout import Fanout
from chalicelib.webhooks.info_events import INFO_EVENTS, info_events
from cli.webhook_receiver import Receiver
from tests.support.cids import cid_v1
from tests.webhooks.test_end_to_end import app_module, drain, move, services, stream_to_queue, tenant_id

# The stack's fixtures, shared with the status events' end-to-end tests.
__all__ = ["app_module", "services", "tenant_id"]
from tests.webhooks.test_fanout import CREATED, REQUEST, TENANT, Pins, Queue, endpoints, record

ARCHIVED = {"cold": "archived", "piece_cid": "baga6ea4sea", "car_bytes": "1234", "car_sha256": "ab"}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ({"cold": "archiving"}, ARCHIVED, [("pin.archived", {"piece_cid": "baga6ea4sea", "car_bytes": "1234"})]),
        (
            {"cold": "archiving"},
            {"cold": "failed", "cold_error": "node gone"},
            [("pin.archive_failed", {"error": "node gone"})],
        ),
        ({**ARCHIVED, "tier": "cooling"}, {**ARCHIVED, "tier": "cold"}, [("pin.cold", {})]),
        ({**ARCHIVED, "tier": "cold"}, {**ARCHIVED, "replicas": "node-a"}, [("pin.restored", {})]),
        (
            {"filecoin": "pending"},
            {"filecoin": "proving", "filecoin_copies": "1/2"},
            [("pin.filecoin", {"filecoin": "proving", "filecoin_copies": "1/2"})],
        ),
    ],
)
def test_each_info_change_is_its_event_with_its_data(before, after, expected):
    # Given a request's info before and after a background write
    # When the change is read for events
    # Then it is exactly the expected event, with the event's data
    assert info_events(before, after) == expected


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (ARCHIVED, {**ARCHIVED, "replicas": "node-a,node-b"}),  # archived already
        ({**ARCHIVED, "tier": "cold"}, {**ARCHIVED, "tier": "cold", "status_details": "x"}),  # cold already
        ({"tier": "cooling"}, {}),  # a cooling given up was never cold
        (
            {"filecoin": "proving", "filecoin_copies": "2/2"},
            {"filecoin": "proving", "filecoin_copies": "2/2", "k": "v"},
        ),
        ({}, {"replicas": "node-a", "status_details": "pinned on 1 nodes"}),  # the pinning path's writes
    ],
)
def test_a_change_that_keeps_the_cold_tier_and_filecoin_keys_is_no_event(before, after):
    assert info_events(before, after) == []


def test_the_filter_and_the_consumer_take_an_event_item_naming_its_request():
    # Given an event item's insertion and a malformed one
    good = record(event_sort_key(CREATED, REQUEST, 4, "pin.cold"), "7")
    bad = record(f"{entry_prefix(EVENT)}{CREATED}#{REQUEST}#4#pin.unknown", "8")
    prefixes = [rule["prefix"] for rule in WEBHOOK_FILTER["dynamodb"]["Keys"]["sk"]["S"]]
    # When they are read
    event = pin_event(good, now_ms=5)
    # Then the filter lets event items through, and the good one is the request's event, read from its item
    assert entry_prefix(EVENT) in prefixes
    assert event is not None and (event.event_type, event.request_id, event.created_ms) == (
        "pin.cold",
        REQUEST,
        CREATED,
    )
    assert event.item == (f"{TENANT}#0", good["dynamodb"]["Keys"]["sk"]["S"])
    assert pin_event(bad, now_ms=5) is None


class EventPins(Pins):
    def __init__(self, items: dict[tuple[str, str], dict[str, str]]) -> None:
        super().__init__()
        self.items = items

    def event_data(self, shard: str, sort_key: str) -> dict[str, str] | None:
        return self.items.get((shard, sort_key))


def test_an_event_item_goes_to_the_endpoints_wanting_it_with_its_data_and_an_expired_one_nowhere():
    # Given an endpoint wanting Filecoin events, one wanting pinned pins only, and one event item kept
    sort_key = event_sort_key(CREATED, REQUEST, 3, "pin.filecoin")
    gone = event_sort_key(CREATED, REQUEST, 5, "pin.filecoin")
    data = {"cid": "bafy", "filecoin": "proving", "filecoin_copies": "1/2"}
    queue = Queue()
    wanted = endpoints(("ep_a", ("pin.pinned",)), ("ep_b", ("pin.filecoin",)))
    fanout = Fanout(wanted, EventPins({(f"{TENANT}#0", sort_key): data}), queue, lambda: 0)
    # When the item's insertion and an expired item's are consumed
    assert fanout.consume([record(sort_key, "1"), record(gone, "2")]) == []
    # Then ep_b alone got the kept one: the request, its CID and the Filecoin values
    assert [(d.endpoint_id, d.event_type, d.request_id) for d in queue.sent] == [("ep_b", "pin.filecoin", REQUEST)]
    body = json.loads(queue.sent[0].payload)
    assert body["type"] == "pin.filecoin"
    assert body["data"] == {"requestid": REQUEST, "created": body["data"]["created"], **data}


def _register(services, receiver_for, answers, tenant_id: str, events: list[str]) -> Any:
    server = receiver_for("whsec_" + "QUJD" * 8)
    registered = services.webhooks.endpoints.register(tenant_id, server.url, events)
    server.receiver = Receiver(registered.secret, answers)
    return server


def _cool_restore_and_copy(services, pin: Pin) -> None:
    """The background writes of a request's life after pinned: archived, cold, hot again, a Filecoin copy."""
    key = (pin.tenant_id, pin.created_ms, pin.request_id)
    assert merge_info(services.store, *key, COLD_KEYS, {k: v for k, v in ARCHIVED.items() if k != "car_sha256"})
    pin = services.store.get(pin.tenant_id, pin.created_ms)
    pin = services.store.update(pin, info=cold_info(pin.info), node_ids=())
    services.store.update(pin, info={k: v for k, v in pin.info.items() if k != "tier"})
    assert merge_info(services.store, *key, INFO_KEYS, {"filecoin": "proving", "filecoin_copies": "1/1"})


def test_cold_tier_and_filecoin_events_follow_the_requests_status_events_to_the_endpoints_wanting_them(
    api, services, app_module, answers, receiver_for, tenant_id
):
    # Given an endpoint wanting every event and one wanting the status events only
    everything = _register(services, receiver_for, answers, tenant_id, [*PIN_EVENTS, *INFO_EVENTS])
    statuses = _register(services, receiver_for, answers, tenant_id, list(PIN_EVENTS))
    # and a request pinned, archived, cooled, restored and copied to Filecoin; another whose archive failed
    kept = api.pin(cid_v1("kept"))
    failed = api.pin(cid_v1("failed"))
    for created in (kept, failed):
        move(services, services.pins.get(tenant_id, created["requestid"]), "pinning", "pinned")
    _cool_restore_and_copy(services, services.pins.get(tenant_id, kept["requestid"]))
    pin = services.pins.get(tenant_id, failed["requestid"])
    assert merge_info(
        services.store, tenant_id, pin.created_ms, pin.request_id, COLD_KEYS, {"cold": "failed", "cold_error": "boom"}
    )
    # When the stream's records go to the webhooks queue and the queue is drained
    assert stream_to_queue(app_module, set()) == 11
    drain(services, app_module)
    # Then each request's events reached the first endpoint in the order they happened, with their data
    got = {
        created["requestid"]: [
            (e["type"], e["data"]) for e in everything.receiver.events if e["data"]["requestid"] == created["requestid"]
        ]
        for created in (kept, failed)
    }
    assert [kind for kind, _ in got[kept["requestid"]]] == [
        "pin.queued",
        "pin.pinning",
        "pin.pinned",
        "pin.archived",
        "pin.cold",
        "pin.restored",
        "pin.filecoin",
    ]
    assert (
        got[kept["requestid"]][3][1]["piece_cid"] == "baga6ea4sea"
        and got[kept["requestid"]][3][1]["car_bytes"] == "1234"
    )
    assert got[kept["requestid"]][6][1]["filecoin_copies"] == "1/1"
    assert got[failed["requestid"]][-1] == ("pin.archive_failed", {**got[failed["requestid"]][-1][1], "error": "boom"})
    assert [kind for kind, _ in got[failed["requestid"]]] == [
        "pin.queued",
        "pin.pinning",
        "pin.pinned",
        "pin.archive_failed",
    ]
    # and the second endpoint got the status events alone
    assert sorted(e["type"] for e in statuses.receiver.events) == sorted(
        ["pin.queued", "pin.pinning", "pin.pinned"] * 2
    )


def test_event_items_are_neither_listed_nor_counted(api, services, tenant_id):
    # Given two pinned requests, one archived, cooled, restored and copied to Filecoin
    made = [api.pin(cid_v1(f"listed-{n}")) for n in range(2)]
    for created in made:
        move(services, services.pins.get(tenant_id, created["requestid"]), "pinning", "pinned")
    _cool_restore_and_copy(services, services.pins.get(tenant_id, made[0]["requestid"]))
    # When the event items are there (with a TTL) and the pins are listed and counted
    items = [item for item in PinItem.scan() if item.sk.startswith(entry_prefix(EVENT))]
    every = api.list(status="queued,pinning,pinned,failed")
    pinned = api.list(status="pinned")
    # Then four events were written, and the listings and counts are the two pins alone
    assert len(items) == 4 and all(item.expires is not None for item in items)
    assert every["count"] == pinned["count"] == 2
    assert sorted(p["requestid"] for p in every["results"]) == sorted(p["requestid"] for p in made)
    assert [p["requestid"] for p in pinned["results"]] == [p["requestid"] for p in every["results"]]
