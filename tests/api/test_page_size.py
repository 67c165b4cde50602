"""A GET /pins page never exceeds what Lambda may return (6 MB): the results
are cut to the newest pins that fit, `count` stays exact, and clients page on
with `before` as they do for any page shorter than `count`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from chalice import Response

from chalicelib.api.http import json_response
from chalicelib.api.pin_responses import LAMBDA_RESPONSE_BYTES, PAGE_BYTES, pin_results, pin_status
from chalicelib.pins.model import MAX_LIMIT, MAX_META_JSON_BYTES, MAX_NAME_CHARS, MAX_ORIGINS
from chalicelib.pins.pin import Pin
from chalicelib.pins.request_ids import created_ms_of, new_request_id
from tests.api.helpers import ALL_STATUSES, js_before, kubo_before
from tests.support.cids import cid_v1, origin
from tests.support.memory.pins import MemoryPinRepository

# Pins at the documented limits, in the characters that cost the most once
# escaped twice (in the body, then in Lambda's response): an emoji is one
# character of a name or meta value, 4 bytes of UTF-8 and 14 bytes returned.
EMOJI = "\U0001f600"
NAME = EMOJI * MAX_NAME_CHARS
META = {"k": EMOJI * ((MAX_META_JSON_BYTES - len('{"k":""}')) // 4)}
ORIGINS = [origin(i) for i in range(MAX_ORIGINS)]
# No limit is documented for info (the workers write short values): a large one.
INFO = {f"detail{i}": '"\\' * 512 for i in range(8)}
EPOCH_MS = 1_700_000_000_000


def at_the_limits(index: int) -> Pin:
    created_ms = EPOCH_MS + index
    return Pin(
        tenant_id="t",
        created_ms=created_ms,
        request_id=new_request_id(created_ms),
        status="pinned",
        cid=cid_v1(index),
        cid_key=cid_v1(index),
        name=NAME,
        origins=ORIGINS,
        meta=META,
        info=INFO,
        delegates=[origin(f"node-{n}") for n in range(3)],
    )


def small(index: int) -> Pin:
    created_ms = EPOCH_MS + index
    return Pin("t", created_ms, new_request_id(created_ms), "pinned", cid_v1(index), cid_v1(index))


def returned_bytes(response: Response) -> int:
    """What Lambda's runtime sends for this response: Chalice's dict as JSON."""
    return len(json.dumps(response.to_dict()).encode())


def newest_first(pins: list[Pin]) -> list[Pin]:
    return sorted(pins, key=lambda pin: pin.created_ms, reverse=True)


def test_given_a_full_page_at_the_limits_when_serialised_then_it_fits_in_lambdas_response():
    # given 1000 pins at every documented limit, far more than 6 MB together
    pins = newest_first([at_the_limits(i) for i in range(MAX_LIMIT)])
    assert sum(len(json.dumps(pin_status(pin))) for pin in pins) > 3 * LAMBDA_RESPONSE_BYTES

    # when they are served as one page
    response = json_response(pin_results(pins, count=5000))

    # then what Lambda returns stays under its limit, with the margin left for headers
    assert returned_bytes(response) <= PAGE_BYTES + 1024 < LAMBDA_RESPONSE_BYTES
    page = json.loads(response.body)
    assert 0 < len(page["results"]) < MAX_LIMIT
    # and one pin more would not have fitted
    one_more = {"count": 5000, "results": [pin_status(pin) for pin in pins[: len(page["results"]) + 1]]}
    assert returned_bytes(json_response(one_more)) > PAGE_BYTES


def test_given_a_cut_page_then_it_holds_the_newest_pins_in_order_and_the_exact_count():
    # given pins at the limits, newest first, as storage returns them
    pins = newest_first([at_the_limits(i) for i in range(300)])

    # when the page is cut
    page = json.loads(pin_results(pins, count=300))

    # then it is the newest pins, in storage's order, each as the PinStatus it is
    kept = len(page["results"])
    assert 0 < kept < 300
    assert page["results"] == [pin_status(pin) for pin in pins[:kept]]
    # and count still says how many match, so clients know to read on
    assert page["count"] == 300


def test_given_a_page_that_fits_then_nothing_is_cut_and_it_is_chalices_json():
    # given a full page of small pins
    pins = newest_first([small(i) for i in range(MAX_LIMIT)])

    # when it is served
    body = pin_results(pins, count=MAX_LIMIT)

    # then every pin is there, written exactly as Chalice writes a dict
    expected = {"count": MAX_LIMIT, "results": [pin_status(pin) for pin in pins]}
    assert body == json.dumps(expected, separators=(",", ":"))


def test_given_no_pins_then_results_is_an_empty_array():
    assert json.loads(pin_results([], count=0)) == {"count": 0, "results": []}


def test_given_a_pin_larger_than_the_budget_then_it_is_still_sent_alone():
    # given a budget smaller than one pin (no real pin comes near 6 MB)
    pins = newest_first([at_the_limits(i) for i in range(3)])

    # when the page is cut
    page = json.loads(pin_results(pins, count=3, max_bytes=1000))

    # then the newest pin is sent: an empty page with a count above 0 is an error to Kubo
    assert [status["requestid"] for status in page["results"]] == [pins[0].request_id]


# -- through the API, paged as Kubo and the JS client page ---------------------


@pytest.fixture
def pins_at_the_limits(api, services, tenant_id) -> list[str]:
    """300 pins at the documented limits, created through the API into the
    in-memory pins (quick to fill), with a large info; their request ids,
    newest first."""
    store = MemoryPinRepository()
    services.pins._store = store
    request_ids = []
    for index in range(300):
        status = api.pin(cid_v1(f"big-{index}"), name=NAME, origins=ORIGINS, meta=META)
        created_ms = created_ms_of(status["requestid"])
        assert created_ms is not None
        pin = store.get(tenant_id, created_ms)
        assert pin is not None
        store.update(pin, status="pinned", info=INFO)
        request_ids.append(status["requestid"])
    return request_ids[::-1]


def lambda_bytes(reply: Any) -> int:
    """What Lambda would return for this reply, as Chalice hands it over."""
    return returned_bytes(Response(reply.body.decode(), reply.headers, reply.status))


def read_every_page(api, next_before: Callable[[str], str], total: int) -> list[list[str]]:
    """Lists everything with limit=1000 and pages on as Kubo does: until count
    equals the results' length, with `before` from the last result. Checks
    every page on the way; returns each page's request ids."""
    pages: list[list[str]] = []
    params = {"status": ALL_STATUSES, "limit": str(MAX_LIMIT)}
    while True:
        reply = api.request("GET", "/pins", params=params)
        assert reply.status == 200, reply.body[:200]
        page = reply.json
        # Every page fits in Lambda's response, is never empty, and counts
        # exactly what is left (before the last page's oldest pin).
        assert lambda_bytes(reply) <= LAMBDA_RESPONSE_BYTES
        assert page["results"]
        assert page["count"] == total - sum(map(len, pages))
        pages.append([status["requestid"] for status in page["results"]])
        if page["count"] == len(page["results"]):
            return pages
        params["before"] = next_before(page["results"][-1]["created"])


def test_given_pins_at_the_limits_when_paged_with_limit_1000_then_every_page_fits_and_every_pin_comes_once(
    api, pins_at_the_limits
):
    # given 300 pins at the documented limits (about 28 MB as one page)
    for next_before in (kubo_before, js_before):
        # when a client reads them with limit=1000, paging on as Kubo (or the JS client) does
        pages = read_every_page(api, next_before, len(pins_at_the_limits))

        # then the pages together hold every pin once, newest first, in several pages
        assert [request_id for page in pages for request_id in page] == pins_at_the_limits, next_before.__name__
        assert len(pages) >= 3
