"""A partial name match reads every pin of its statuses in its time range: a
range holding more than MAX_SCANNED_PINS is refused before a pin is read, a
narrower one is answered with the exact count, and indexed filters are never
refused. A meta filter reads the pins of its rarest key/value pair, and is
refused only when that and the whole range are both over the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib.config import Settings
from tests.api.helpers import NS_PER_MS, created_ms, rfc3339
from tests.support.cids import cid_v1

LIMIT = 6
PINS = 8


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, max_scanned_pins=LIMIT)


@dataclass
class PinReads:
    """Queries the API makes on the pins table: their Select and the items they return."""

    table: str
    all_queries: list[dict[str, Any]]

    @property
    def queries(self) -> list[dict[str, Any]]:
        return [query for query in self.all_queries if query["table"] == self.table]

    @property
    def items_returned(self) -> int:
        return sum(query["items"] for query in self.queries)


@pytest.fixture
def pin_reads(services) -> Iterator[PinReads]:
    client = services.dynamo.connection.client
    reads = PinReads(f"{services.settings.table_prefix}-pins", [])

    def asked(params: dict[str, Any], **_: Any) -> None:
        # The lower bound of the sort key range: what kind of item the query reads.
        start = min((v.get("S", "") for v in params.get("ExpressionAttributeValues", {}).values()), default="")
        reads.all_queries.append(
            {"table": params["TableName"], "select": params.get("Select"), "items": 0, "from": start}
        )

    def answered(parsed: dict[str, Any], **_: Any) -> None:
        reads.all_queries[-1]["items"] = len(parsed.get("Items", []))

    client.meta.events.register("provide-client-params.dynamodb.Query", asked, unique_id="test-pin-reads-asked")
    client.meta.events.register("after-call.dynamodb.Query", answered, unique_id="test-pin-reads-answered")
    yield reads
    client.meta.events.unregister("provide-client-params.dynamodb.Query", unique_id="test-pin-reads-asked")
    client.meta.events.unregister("after-call.dynamodb.Query", unique_id="test-pin-reads-answered")


@pytest.fixture
def photos(api, pin_clock) -> list[dict[str, Any]]:
    """PINS pins a second apart, oldest first, all named photo-<i>, every other one with meta app=web."""
    made = []
    for i in range(PINS):
        pin_clock.advance(1000)
        meta = {"app": "web"} if i % 2 == 0 else {}
        made.append(api.pin(cid_v1(f"photo-{i}"), name=f"photo-{i}", meta=meta))
    return made


PARTIAL = [{"name": "photo", "match": "partial"}, {"name": "PHOTO", "match": "ipartial"}]
RESIDUAL = [*PARTIAL, {"meta": json.dumps({"app": "web"})}]


@pytest.mark.parametrize("residual", PARTIAL, ids=["partial", "ipartial"])
def test_a_range_holding_more_pins_than_the_limit_is_refused_without_reading_them(api, photos, pin_reads, residual):
    # given more pins in the whole time range than one request may read
    # when a residual filter asks for the whole range
    reply = api.request("GET", "/pins", params=residual)
    # then it is refused in the Failure shape, saying how many, the limit and how to narrow it
    assert reply.status == 422
    assert reply.reason == "QUERY_TOO_BROAD"
    details = reply.json["error"]["details"]
    assert f"holds {PINS} pins" in details and f"at most {LIMIT}" in details
    assert "`before`/`after`" in details and "`cid`" in details
    # and no pin was read: the only queries were for the count changes not folded yet
    assert pin_reads.queries and all("#~" in query["from"] for query in pin_reads.queries)


@pytest.mark.parametrize("residual", RESIDUAL, ids=["partial", "ipartial", "meta"])
def test_a_range_narrowed_to_the_limit_is_answered_with_the_exact_count(api, photos, residual):
    # given the pins after the second one: PINS - 2 = LIMIT pins in range
    after = rfc3339(created_ms(photos[1]["created"]) * NS_PER_MS)
    # when the same filter asks for that range
    listed = api.list(**residual, after=after, limit=2)
    # then every match in it is counted and the newest come first
    names = [f"photo-{i}" for i in range(2, PINS) if "meta" not in residual or i % 2 == 0]
    assert listed["count"] == len(names)
    assert [pin["pin"]["name"] for pin in listed["results"]] == names[::-1][:2]


def test_fewer_statuses_narrow_what_is_read(api, photos, set_status):
    # given three of the pins pinned, the other five still queued
    for pin in photos[:3]:
        set_status(pin["requestid"], "pinned")
    # when a partial match asks for queued pins only: 5 of them in range
    listed = api.list(name="photo", match="partial", status="queued")
    # then it is answered, counting the queued matches alone
    assert listed["count"] == PINS - 3
    # and asking for every status again is refused
    assert api.request("GET", "/pins", params={"name": "photo", "match": "partial"}).reason == "QUERY_TOO_BROAD"


def test_indexed_filters_are_never_refused(api, photos, pin_clock):
    # given, besides the PINS pins, LIMIT + 1 more pins of one name and one CID
    for _ in range(LIMIT + 1):
        pin_clock.advance(1000)
        api.pin(cid_v1("shared"), name="shared", meta={"app": "web"})
    # when listing by exact or case-insensitive name, by CID, or by CID with a meta filter
    by_name = api.list(name="shared")
    by_folded_name = api.list(name="SHARED", match="iexact")
    by_cid = api.list(cid=cid_v1("shared"))
    by_cid_and_meta = api.list(cid=cid_v1("shared"), meta=json.dumps({"app": "web"}))
    # or with no filter at all over the whole range
    every_status = api.list(status="queued,pinning,pinned,failed")
    # then each is answered with its exact count, however many pins that reads
    assert [by_name["count"], by_folded_name["count"], by_cid["count"], by_cid_and_meta["count"]] == [LIMIT + 1] * 4
    assert every_status["count"] == PINS + LIMIT + 1


def test_a_meta_filter_reads_the_pins_of_its_rarest_pair_and_is_refused_only_when_every_way_reads_too_many(
    api, photos, pin_clock, set_status
):
    # given, besides the 4 photos with app=web, LIMIT + 1 pins with app=web and env=prod, 2 of them also tag=rare
    web = []
    for i in range(LIMIT + 1):
        pin_clock.advance(1000)
        meta = {"app": "web", "env": "prod", **({"tag": "rare"} if i < 2 else {})}
        web.append(api.pin(cid_v1(f"web-{i}"), name=f"web-{i}", meta=meta))
    # when a filter's rarest pair holds at most LIMIT pins, though the range and its other pairs hold more
    rare = api.list(meta=json.dumps({"app": "web", "env": "prod", "tag": "rare"}))
    # then it is answered with its exact count
    assert (rare["count"], [pin["pin"]["name"] for pin in rare["results"]]) == (2, ["web-1", "web-0"])
    # when every pair of the filter matches more than LIMIT pins and so does the range
    reply = api.request("GET", "/pins", params={"meta": json.dumps({"app": "web", "env": "prod"})})
    # then it is refused, saying both
    assert (reply.status, reply.reason) == (422, "QUERY_TOO_BROAD")
    details = reply.json["error"]["details"]
    assert f"each pair matches more than {LIMIT} pins" in details and f"holds {PINS + LIMIT + 1} pins" in details
    # and when the statuses asked for hold at most LIMIT pins, those are read instead
    set_status(web[0]["requestid"], "pinned")
    pinned = api.list(meta=json.dumps({"app": "web", "env": "prod"}), status="pinned")
    assert (pinned["count"], pinned["results"][0]["requestid"]) == (1, web[0]["requestid"])
