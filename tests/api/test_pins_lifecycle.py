"""A pin request's life as a client sees it: create, read, replace, delete,
what the listing shows right after each step, and the message each step
leaves for the pin workers."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from chalicelib.pins.service import PinService
from chalicelib.queue import messages
from chalicelib.storage.pin_store import PinStore
from tests.api.helpers import ALL_STATUSES, CREATED, assert_failure, created_ms, header
from tests.conftest import PEER_A, PEER_B
from tests.support.cids import canonical, cid_v0_pair, cid_v1, origin

PEER_OF_NODE = {"node-a": PEER_A, "node-b": PEER_B}
REPLICATION = 2


def assert_delegates(delegates):
    assert 1 <= len(delegates) <= 20
    assert len(set(delegates)) == len(delegates)
    for address in delegates:
        assert address.startswith("/")
        assert address.rsplit("/", 2)[-2] == "p2p", address
        assert address.rsplit("/", 1)[-1] in (PEER_A, PEER_B), address


def peers_of(delegates):
    return {address.rsplit("/p2p/", 1)[1] for address in delegates}


def count_of(api, **params):
    return api.list(**params)["count"]


# -- create ------------------------------------------------------------------


def test_create_answers_202_with_a_queued_pin_status_that_echoes_the_pin(api):
    # given a pin with every optional field
    cid = cid_v1("photos")
    origins = [origin("laptop"), origin("nas", ip="203.0.113.9")]
    meta = {"app_id": "99986338-1113-4706-8302-4420da6158aa", "kind": "photos"}
    before = time.time_ns() // 1_000_000

    # when it is added
    reply = api.request("POST", "/pins", json_body={"cid": cid, "name": "holiday", "origins": origins, "meta": meta})

    # then it is accepted as a new queued request
    after = time.time_ns() // 1_000_000
    assert reply.status == 202
    assert header(reply, "Content-Type").startswith("application/json")
    status = reply.json
    assert status["status"] == "queued"
    request_id = status["requestid"]
    assert str(uuid.UUID(request_id)) == request_id
    assert request_id != cid and cid not in request_id
    assert CREATED.fullmatch(status["created"])
    assert before - 1000 <= created_ms(status["created"]) <= after + 1000
    assert status["pin"] == {"cid": cid, "name": "holiday", "origins": origins, "meta": meta}
    assert_delegates(status["delegates"])


def test_a_bare_cid_is_echoed_without_inventing_fields(api):
    cid = cid_v1("bare")
    status = api.pin(cid)
    pin = status["pin"]
    assert pin["cid"] == cid
    assert pin.get("name") is None
    assert pin.get("origins", []) == []
    assert pin.get("meta", {}) == {}


def test_every_cid_spelling_is_accepted_and_echoed_exactly_as_sent(api):
    v0, v1 = cid_v0_pair("spellings")
    spellings = [v0, v1, cid_v1("b58", base="base58btc"), cid_v1("b36", base="base36")]
    for cid in spellings:
        assert api.pin(cid)["pin"]["cid"] == cid


def test_pins_created_in_a_burst_get_distinct_increasing_created_times(api):
    created = [created_ms(api.pin(cid_v1(f"burst-{i}"))["created"]) for i in range(15)]
    assert created == sorted(created)
    assert len(set(created)) == len(created)


def test_pins_accepted_by_two_containers_in_the_same_millisecond_get_distinct_created(api, services, pin_clock):
    # given two containers whose clocks both read the same millisecond
    containers = [
        services.pins,
        PinService(
            PinStore(services.dynamo),
            services.registry,
            services.outbox,
            services.settings.replication_factor,
            clock=pin_clock,
        ),
    ]

    # when they accept pins of the same tenant in turn
    created = []
    for i in range(6):
        services.pins = containers[i % 2]
        created.append(api.pin(cid_v1(f"race-{i}"))["created"])

    # then every pin has its own `created`, and the listing pages through all of them
    assert len(set(created)) == 6
    listed = api.list(status="queued")
    assert sorted(item["created"] for item in listed["results"]) == sorted(created)
    assert api.list(status="queued", limit=1, before=max(created))["count"] == 5


def test_pinning_the_same_cid_twice_creates_two_requests_and_lists_both(api):
    # given a CID pinned once
    cid = cid_v1("twice")
    first = api.pin(cid, name="one")

    # when it is pinned again
    second = api.pin(cid, name="two")

    # then there are two requests, both listed under that CID
    assert first["requestid"] != second["requestid"]
    listed = api.list(cid=cid)
    assert listed["count"] == 2
    assert [item["requestid"] for item in listed["results"]] == [second["requestid"], first["requestid"]]


# -- read ----------------------------------------------------------------------


def test_get_returns_the_request_asked_for(api):
    # given two requests
    first = api.pin(cid_v1("get-1"), name="first", meta={"k": "v"})
    api.pin(cid_v1("get-2"), name="second")

    # when the first is read back
    reply = api.request("GET", f"/pins/{first['requestid']}")

    # then it is the same request, unchanged
    assert reply.status == 200
    assert reply.json["requestid"] == first["requestid"]
    assert reply.json == first


def test_get_shows_the_current_status(api, set_status):
    created = api.pin(cid_v1("status"))
    set_status(created["requestid"], "pinned")
    assert api.request("GET", f"/pins/{created['requestid']}").json["status"] == "pinned"


# -- replace -------------------------------------------------------------------


@pytest.mark.parametrize("same_cid", [False, True], ids=["new-cid", "same-cid"])
def test_replace_gives_a_new_request_and_the_old_one_is_gone_at_once(api, same_cid):
    # given a pin
    old_cid = cid_v1("replace-old")
    old = api.pin(old_cid, name="v1", meta={"rev": "1"})
    new_cid = old_cid if same_cid else cid_v1("replace-new")

    # when it is replaced
    reply = api.request(
        "POST", f"/pins/{old['requestid']}", json_body={"cid": new_cid, "name": "v2", "meta": {"rev": "2"}}
    )

    # then a new request answers with the new fields
    assert reply.status == 202
    new = reply.json
    assert new["requestid"] != old["requestid"]
    assert new["status"] == "queued"
    assert new["pin"] == {"cid": new_cid, "name": "v2", "meta": {"rev": "2"}}
    assert created_ms(new["created"]) > created_ms(old["created"])
    assert_delegates(new["delegates"])
    fetched = api.request("GET", f"/pins/{new['requestid']}")
    assert fetched.status == 200 and fetched.json == new

    # and the old request is unknown for every operation
    assert_failure(api.request("GET", f"/pins/{old['requestid']}"), 404, "NOT_FOUND")
    assert_failure(api.request("POST", f"/pins/{old['requestid']}", json_body={"cid": new_cid}), 404, "NOT_FOUND")
    assert_failure(api.request("DELETE", f"/pins/{old['requestid']}"), 404, "NOT_FOUND")

    # and the listing holds the new request only
    listed = api.list(status=ALL_STATUSES)
    assert listed["count"] == 1
    assert [item["requestid"] for item in listed["results"]] == [new["requestid"]]
    assert count_of(api, name="v1") == 0
    assert count_of(api, name="v2") == 1
    assert count_of(api, cid=old_cid) == (1 if same_cid else 0)
    assert count_of(api, meta='{"rev":"1"}') == 0


def test_replace_keeps_the_same_cid_findable_under_the_new_request(api, set_status):
    # given a pinned pin
    cid = cid_v1("in-place")
    old = api.pin(cid, name="draft")
    set_status(old["requestid"], "pinned")

    # when only its name changes
    new = api.request("POST", f"/pins/{old['requestid']}", json_body={"cid": cid, "name": "final"}).json

    # then the CID is listed once, under the new request and name
    listed = api.list(cid=cid)
    assert listed["count"] == 1
    assert listed["results"][0]["requestid"] == new["requestid"]
    assert listed["results"][0]["pin"]["name"] == "final"
    # and nothing is left counted under the old status
    assert count_of(api, status="pinned") == 0


# -- delete --------------------------------------------------------------------


def test_delete_answers_202_without_a_body_and_the_request_is_gone(api):
    # given two pins
    gone = api.pin(cid_v1("delete-me"))
    kept = api.pin(cid_v1("keep-me"))

    # when one is deleted
    reply = api.request("DELETE", f"/pins/{gone['requestid']}")

    # then the answer is an empty 202
    assert reply.status == 202
    assert reply.body == b""
    # and the request is unknown from then on
    assert_failure(api.request("GET", f"/pins/{gone['requestid']}"), 404, "NOT_FOUND")
    assert_failure(api.request("DELETE", f"/pins/{gone['requestid']}"), 404, "NOT_FOUND")
    # and the other one is untouched
    assert api.request("GET", f"/pins/{kept['requestid']}").json == kept


# -- read your writes ------------------------------------------------------------


def listed(api) -> tuple[int, list[str]]:
    """The count and request ids of the listing of every status, newest first."""
    reply = api.list(status=ALL_STATUSES)
    return reply["count"], [item["requestid"] for item in reply["results"]]


def counts_in_views(api, cid: str) -> dict[str, int]:
    """The listing's count in each view the read-your-writes test follows."""
    return {
        "pinned": count_of(api),  # the default view
        "queued": count_of(api, status="queued"),
        "cid": count_of(api, cid=cid),
        "name": count_of(api, name="ryw"),
        "meta": count_of(api, meta='{"app":"ryw"}'),
    }


def test_the_listing_and_its_count_follow_every_write_at_once(api, set_status):
    cid = cid_v1("ryw")

    # create: listed at once, newest first, in every view that matches it
    first = api.pin(cid, name="ryw", meta={"app": "ryw"})
    second = api.pin(cid_v1("ryw-2"), name="ryw")
    assert listed(api) == (2, [second["requestid"], first["requestid"]])
    assert counts_in_views(api, cid) == {"pinned": 0, "queued": 2, "cid": 1, "name": 2, "meta": 1}

    # a status change moves the pin between the counts at once
    set_status(first["requestid"], "pinned")
    assert counts_in_views(api, cid) == {"pinned": 1, "queued": 1, "cid": 1, "name": 2, "meta": 1}

    # replace: the new request takes the old one's place in the same call's wake
    third = api.request("POST", f"/pins/{first['requestid']}", json_body={"cid": cid, "name": "ryw-3"}).json
    assert listed(api) == (2, [third["requestid"], second["requestid"]])
    assert counts_in_views(api, cid) == {"pinned": 0, "queued": 2, "cid": 1, "name": 1, "meta": 0}

    # delete: gone from the list and the counts at once
    assert api.request("DELETE", f"/pins/{second['requestid']}").status == 202
    assert listed(api) == (1, [third["requestid"]])
    assert counts_in_views(api, cid) == {"pinned": 0, "queued": 1, "cid": 1, "name": 0, "meta": 0}
    assert api.request("DELETE", f"/pins/{third['requestid']}").status == 202
    assert api.list(status=ALL_STATUSES) == {"count": 0, "results": []}


# -- the pin queue ---------------------------------------------------------------


def assert_pin_message(body, tenant_id, status, origins=()):
    assert body["v"] == messages.VERSION
    assert body["kind"] == "pin"
    assert body["tenant_id"] == tenant_id
    assert body["request_id"] == status["requestid"]
    assert body["created_ms"] == created_ms(status["created"])
    assert body["cid"] == canonical(status["pin"]["cid"])
    assert len(body["node_ids"]) == REPLICATION == len(set(body["node_ids"]))
    # the nodes told to pin are those the client was told to connect to
    assert {PEER_OF_NODE[node] for node in body["node_ids"]} == peers_of(status["delegates"])
    assert list(body.get("origins", [])) == list(origins)
    decoded = messages.decode(json.dumps(body))
    assert isinstance(decoded, messages.PinRequested)


def test_create_queues_one_pin_message_and_leaves_no_outbox_entry(api, tenant_id, pin_queue, outbox_entries):
    # given a v0 CID with origins
    v0, v1 = cid_v0_pair("queued")
    origins = [origin("provider")]

    # when it is pinned
    status = api.pin(v0, origins=origins)

    # then one pin message for that request is queued, keyed by the canonical CID
    [body] = pin_queue.drain()
    assert_pin_message(body, tenant_id, status, origins)
    assert body["cid"] == v1
    assert body.get("replaces") is None
    # and the outbox has been emptied
    assert outbox_entries() == []


@pytest.mark.parametrize("same_cid", [False, True], ids=["new-cid", "same-cid"])
def test_replace_queues_a_pin_message_that_names_the_replaced_request(
    api, tenant_id, pin_queue, outbox_entries, same_cid
):
    # given a pin whose creation message a worker already took
    old = api.pin(cid_v1("to-replace"))
    [old_body] = pin_queue.drain()
    new_cid = old["pin"]["cid"] if same_cid else cid_v1("replacement")

    # when it is replaced
    new = api.request("POST", f"/pins/{old['requestid']}", json_body={"cid": new_cid}).json

    # then one pin message for the new request says which request it replaces
    [body] = pin_queue.drain()
    assert_pin_message(body, tenant_id, new)
    assert body["replaces"] == {
        "request_id": old["requestid"],
        "cid": canonical(old["pin"]["cid"]),
        "node_ids": old_body["node_ids"],
    }
    decoded = messages.decode(json.dumps(body))
    assert decoded.replaces is not None and decoded.replaces.request_id == old["requestid"]
    assert outbox_entries() == []


def test_delete_queues_one_unpin_message(api, tenant_id, pin_queue, outbox_entries):
    # given a pin whose creation message a worker already took
    status = api.pin(cid_v1("to-delete"))
    [pinned] = pin_queue.drain()

    # when it is deleted
    assert api.request("DELETE", f"/pins/{status['requestid']}").status == 202

    # then one unpin message releases it on the nodes it was placed on
    [body] = pin_queue.drain()
    assert body == {
        "v": messages.VERSION,
        "kind": "unpin",
        "tenant_id": tenant_id,
        "request_id": status["requestid"],
        "cid": canonical(status["pin"]["cid"]),
        "node_ids": pinned["node_ids"],
    }
    assert isinstance(messages.decode(json.dumps(body)), messages.UnpinRequested)
    assert outbox_entries() == []


def test_requests_that_change_nothing_queue_nothing(api, pin_queue, outbox_entries):
    # given a pin whose message was taken
    status = api.pin(cid_v1("quiet"))
    pin_queue.drain()

    # when it is only read and listed
    api.request("GET", f"/pins/{status['requestid']}")
    api.list(status=ALL_STATUSES)

    # then no message is queued
    assert pin_queue.drain() == []
    assert outbox_entries() == []
