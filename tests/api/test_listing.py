"""GET /pins as clients use it: the default view, filters, strict time bounds,
paging the way Kubo and the JS client page, and counts that are exact for
every combination of filters (checked against a model of what the test
created)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from chalicelib.pins.model import STATUSES, PinQuery
from tests.api.helpers import ALL_STATUSES, NS_PER_MS, created_ms, js_before, kubo_before, rfc3339
from tests.support.cids import canonical, cid_v0_pair, cid_v1
from tests.support.pin_filters import selects


@dataclass
class ModelPin:
    request_id: str
    created_ms: int
    cid_key: str
    name: str | None
    meta: dict[str, str]
    status: str


@dataclass
class Query:
    """A listing query as values; `params` spells it for the wire."""

    cids: Sequence[str] = ()
    name: str | None = None
    match: str | None = None
    statuses: Sequence[str] = ()
    meta: dict[str, str] = field(default_factory=dict)
    before_ns: int | None = None
    after_ns: int | None = None
    limit: int | None = None

    def params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.cids:
            params["cid"] = ",".join(self.cids)
        if self.name is not None:
            params["name"] = self.name
        if self.match is not None:
            params["match"] = self.match
        if self.statuses:
            params["status"] = ",".join(self.statuses)
        if self.meta:
            params["meta"] = json.dumps(self.meta)
        if self.before_ns is not None:
            params["before"] = rfc3339(self.before_ns)
        if self.after_ns is not None:
            params["after"] = rfc3339(self.after_ns, offset_minutes=120)
        if self.limit is not None:
            params["limit"] = str(self.limit)
        return params


class PinModel:
    """What the service should answer, computed from what the test created."""

    def __init__(self) -> None:
        self.pins: list[ModelPin] = []

    def add(self, status: dict, meta: dict[str, str] | None = None) -> ModelPin:
        pin = ModelPin(
            status["requestid"],
            created_ms(status["created"]),
            canonical(status["pin"]["cid"]),
            status["pin"].get("name"),
            dict(meta or {}),
            status["status"],
        )
        self.pins.append(pin)
        return pin

    def matching(self, query: Query) -> list[ModelPin]:
        wanted = _as_listed(query)
        found = [pin for pin in self.pins if selects(wanted, pin)]
        return sorted(found, key=lambda pin: pin.created_ms, reverse=True)


def _listed_statuses(query: Query) -> set[str]:
    """The statuses asked for; without any, every status when the query names
    what it wants (cid, name or meta), else only pinned."""
    if query.statuses:
        return set(query.statuses)
    return set(STATUSES) if (query.cids or query.name is not None or query.meta) else {"pinned"}


def _as_listed(query: Query) -> PinQuery:
    """The query as the service should read it: the model's own defaults, canonical cids."""
    return PinQuery(
        statuses=frozenset(_listed_statuses(query)),
        cid_keys=tuple(canonical(cid) for cid in query.cids),
        name=query.name,
        match=query.match or "exact",
        meta=query.meta,
        before_ns=query.before_ns,
        after_ns=query.after_ns,
    )


def check(api, model: PinModel, query: Query) -> str | None:
    """None when the service answers exactly what the model expects."""
    reply = api.list(**query.params())
    expected = model.matching(query)
    limit = query.limit or 10
    want_ids = [pin.request_id for pin in expected[:limit]]
    got_ids = [item["requestid"] for item in reply["results"]]
    if reply["count"] != len(expected) or got_ids != want_ids:
        return (
            f"{query.params()}: count {reply['count']} (expected {len(expected)}), "
            f"results {len(got_ids)} ids, {'same' if got_ids == want_ids else 'DIFFERENT'} from expected"
        )
    return None


# Gaps between consecutive pins' `created`, chosen to land pins on both sides
# of the count tree's bucket edges (64 ms, 4096 ms, 64**3 ms, ...) and next
# to each other (1 ms).
GAPS_MS = [1, 2, 63, 64, 65, 4095, 4097, 262_143, 3_600_000, 16_777_217, 86_400_001, 1, 70_000_000_000]

NAMES = [
    "photos-2021",
    "Photos-2021",
    "PHOTOS backup",
    "backup",
    "holiday photos",
    "",
    None,
    "Ärger im Büro",
    "ärger",
    "notes",
]
METAS = [
    {},
    {"app": "web"},
    {"app": "web", "env": "prod"},
    {"app": "cli", "env": "prod"},
    {"app": "cli", "env": "dev", "a.b": "1"},
    {"x y": "z", "app": "web"},
    {"status": "pinned", "name": "meta-name"},
]


def build_dataset(api, pin_clock, set_status):
    """32 pins: CIDs pinned several times and in v0 and v1 spellings, assorted
    names and metas, all four statuses, `created` spread over years."""
    model = PinModel()
    contents = [cid_v0_pair(f"content-{n}") if n % 3 == 0 else (cid_v1(f"content-{n}"),) for n in range(8)]
    for i in range(32):
        spellings = contents[i % len(contents)]
        cid = spellings[(i // len(contents)) % len(spellings)]
        fields = {"meta": METAS[i % len(METAS)]}
        if NAMES[i % len(NAMES)] is not None:
            fields["name"] = NAMES[i % len(NAMES)]
        pin = model.add(api.pin(cid, **fields), fields["meta"])
        # every content gets each status once; some names and metas repeat a status
        status = STATUSES[(i // len(contents) + i) % 4]
        if status != "queued":
            set_status(pin.request_id, status)
            pin.status = status
        pin_clock.advance(GAPS_MS[i % len(GAPS_MS)])
    return model, contents


YEAR_2100_NS = 4_102_444_800 * 1_000_000_000
STATUS_SETS = [(), ("pinned",), ("queued",), ("pinning",), ("failed",), ("queued", "pinning"), tuple(STATUSES)]


def test_count_and_page_are_exact_for_every_filter_combination(api, pin_clock, set_status):
    # given pins of every kind, and a model of them
    model, contents = build_dataset(api, pin_clock, set_status)
    oldest_first = sorted(model.pins, key=lambda pin: pin.created_ms)
    queries = []

    # statuses crossed with time windows: the counts come from the count tree
    pivot_old = oldest_first[7].created_ms * NS_PER_MS
    pivot_new = oldest_first[24].created_ms * NS_PER_MS
    windows = [
        (None, None),
        (pivot_new, None),  # before a pin's own created: that pin is excluded
        (None, pivot_old),  # after a pin's own created: excluded too
        (pivot_new + 1, pivot_old - 1),  # a nanosecond either side: both included
        (oldest_first[16].created_ms * NS_PER_MS + NS_PER_MS // 2, None),  # mid-millisecond
        (YEAR_2100_NS, -YEAR_2100_NS),  # bounds beyond every pin
        (oldest_first[0].created_ms * NS_PER_MS, None),  # before the oldest: nothing
    ]
    for n, (statuses, (before, after)) in enumerate(itertools.product(STATUS_SETS, windows)):
        queries.append(Query(statuses=statuses, before_ns=before, after_ns=after, limit=[None, 1, 3, 1000][n % 4]))

    # cid, name and meta filters, alone and combined, with and without status and time
    v0, v1 = contents[0]
    ten = [v0, v1] + [spellings[-1] for spellings in contents[1:]] + [cid_v1("never pinned")]
    filters = [
        Query(cids=[v1]),
        Query(cids=[v0]),
        Query(cids=[contents[3][0]]),
        Query(cids=ten),
        Query(cids=[cid_v1("never pinned")]),
        Query(name="photos-2021"),
        Query(name="photos-2021", match="exact"),
        Query(name="PHOTOS-2021", match="iexact"),
        Query(name="photos", match="partial"),
        Query(name="PhOtOs", match="ipartial"),
        Query(name="ÄRGER", match="ipartial"),
        Query(name="", match="exact"),
        Query(name="", match="partial"),
        Query(name="nobody", match="ipartial"),
        Query(meta={"app": "web"}),
        Query(meta={"app": "web", "env": "prod"}),
        Query(meta={"env": "prod", "app": "cli"}),
        Query(meta={"a.b": "1"}),
        Query(meta={"x y": "z"}),
        Query(meta={"status": "pinned"}),
        Query(meta={"app": "web", "missing": "key"}),
        Query(cids=ten, name="photos", match="ipartial", meta={"app": "web"}),
    ]
    window = (oldest_first[24].created_ms * NS_PER_MS, oldest_first[4].created_ms * NS_PER_MS)
    for n, base in enumerate(filters):
        for statuses, (before, after) in [((), (None, None)), (("pinned", "failed"), window)]:
            query = Query(**{**base.__dict__, "statuses": statuses, "before_ns": before, "after_ns": after})
            query.limit = [None, 1000, 2][n % 3]
            queries.append(query)

    # when each query is asked, then count and page are exactly the model's
    problems = [check(api, model, query) for query in queries]
    assert [problem for problem in problems if problem] == []
    # and the model is not vacuous
    assert {pin.status for pin in model.matching(Query(cids=ten))} == set(STATUSES)
    assert all(len(model.matching(query)) >= 2 for query in filters[:4] + filters[5:13] + filters[14:20])


def test_default_lists_only_pinned_pins_newest_first(api, set_status):
    # given pins in every status
    created = {status: [] for status in STATUSES}
    for i in range(8):
        status = STATUSES[i % 4]
        pin = api.pin(cid_v1(f"default-{i}"))
        set_status(pin["requestid"], status)
        created[status].append(pin["requestid"])

    # when listing with no filter at all
    listed = api.list()

    # then only the pinned ones come back, newest first, and only they are counted
    assert listed["count"] == 2
    assert [item["requestid"] for item in listed["results"]] == created["pinned"][::-1]
    assert all(item["status"] == "pinned" for item in listed["results"])


@pytest.mark.parametrize(
    "params",
    [{"cid": "{cid}"}, {"name": "everything"}, {"meta": '{"k":"v"}'}],
    ids=["cid", "name", "meta"],
)
def test_a_cid_name_or_meta_filter_without_status_lists_every_status(api, set_status, params):
    # given one pin per status, all alike
    cid = cid_v1("every-status")
    ids = []
    for status in STATUSES:
        pin = api.pin(cid, name="everything", meta={"k": "v"})
        set_status(pin["requestid"], status)
        ids.append(pin["requestid"])

    # when filtering by cid, name or meta alone
    listed = api.list(**{key: value.replace("{cid}", cid) for key, value in params.items()})

    # then no status is hidden
    assert listed["count"] == 4
    assert [item["requestid"] for item in listed["results"]] == ids[::-1]
    # while an explicit status still narrows it
    narrowed = api.list(status="queued", **{key: value.replace("{cid}", cid) for key, value in params.items()})
    assert narrowed["count"] == 1 and narrowed["results"][0]["requestid"] == ids[0]


def test_limit_defaults_to_10_and_spans_1_to_1000(api):
    ids = [api.pin(cid_v1(f"limit-{i}"))["requestid"] for i in range(12)][::-1]
    assert [item["requestid"] for item in api.list(status="queued")["results"]] == ids[:10]
    for limit, expected in [(1, ids[:1]), (11, ids[:11]), (1000, ids)]:
        listed = api.list(status="queued", limit=limit)
        assert listed["count"] == 12
        assert [item["requestid"] for item in listed["results"]] == expected


def test_the_four_status_counts_of_pin_remote_service_ls_stat(api, set_status):
    # given 1 queued, 2 pinning, 3 pinned and 4 failed pins
    wanted = {"queued": 1, "pinning": 2, "pinned": 3, "failed": 4}
    for status, number in wanted.items():
        for i in range(number):
            set_status(api.pin(cid_v1(f"stat-{status}-{i}"))["requestid"], status)

    # when asking as `ipfs pin remote service ls --stat` does
    for status, number in wanted.items():
        listed = api.list(limit=1, status=status)
        # then each count is exact, with one example of that status
        assert listed["count"] == number
        assert len(listed["results"]) == 1 and listed["results"][0]["status"] == status


def test_a_cid_finds_its_pins_whichever_version_they_were_pinned_with(api):
    # given the same content pinned as CIDv0 and as CIDv1
    v0, v1 = cid_v0_pair("versions")
    by_v0 = api.pin(v0)
    by_v1 = api.pin(v1)
    api.pin(cid_v1("unrelated"))

    # then both spellings find both pins, each echoed as it was sent
    for spelling in (v0, v1, f"{v0},{v1}"):
        listed = api.list(cid=spelling)
        assert listed["count"] == 2, spelling
        assert [item["requestid"] for item in listed["results"]] == [by_v1["requestid"], by_v0["requestid"]]
        assert [item["pin"]["cid"] for item in listed["results"]] == [v1, v0]


def test_before_and_after_are_strict_in_every_rfc3339_spelling(api, pin_clock):
    # given pins one millisecond apart
    pins = []
    for i in range(5):
        pins.append(api.pin(cid_v1(f"bounds-{i}")))
        pin_clock.advance(1)
    ids = [pin["requestid"] for pin in pins][::-1]  # newest first
    middle_ns = created_ms(pins[2]["created"]) * NS_PER_MS
    older = ids[3:]  # created before the middle pin
    newer = ids[:2]

    def listed(**params):
        return [item["requestid"] for item in api.list(status="queued", **params)["results"]]

    # `before` equal to a pin's created excludes it, however the time is written
    for spelling in [
        pins[2]["created"],
        rfc3339(middle_ns),
        rfc3339(middle_ns, offset_minutes=120),
        rfc3339(middle_ns, offset_minutes=-330),
        rfc3339(middle_ns, lower=True),
        rfc3339(middle_ns, digits=6),
    ]:
        assert listed(before=spelling) == older, spelling
    # and a nanosecond later includes it
    assert listed(before=rfc3339(middle_ns + 1)) == ids[2:]
    assert listed(before=rfc3339(middle_ns + 1, offset_minutes=60, lower=True)) == ids[2:]

    # `after` equal to a pin's created excludes it; a nanosecond earlier includes it
    for spelling in [pins[2]["created"], rfc3339(middle_ns, offset_minutes=-300), rfc3339(middle_ns, lower=True)]:
        assert listed(after=spelling) == newer, spelling
    assert listed(after=rfc3339(middle_ns - 1, offset_minutes=90)) == ids[:3]

    # both bounds together leave the pins strictly between them
    assert listed(after=pins[0]["created"], before=pins[4]["created"]) == ids[1:4]
    assert api.list(status="queued", after=pins[1]["created"], before=pins[2]["created"]) == {"count": 0, "results": []}


def test_paging_like_kubo_and_the_js_client_visits_every_pin_once(api, pin_clock, set_status):
    # given 123 pins, some a millisecond apart, some far apart, a third pinned
    ids = []
    for i in range(123):
        pin = api.pin(cid_v1(f"page-{i}"))
        ids.append(pin["requestid"])
        if i % 4 == 0:
            set_status(pin["requestid"], "pinned")
        pin_clock.advance(GAPS_MS[i % 7])
    newest_first = ids[::-1]
    pinned_newest_first = [request_id for i, request_id in enumerate(ids) if i % 4 == 0][::-1]

    def page_through(cursor, **params):
        """A client's loop: stop when count == len(results), else go on from
        the last result's created."""
        seen, pages = [], 0
        listed = api.list(**params)
        while True:
            pages += 1
            assert listed["results"], "an empty page while count != 0 is an error for Kubo"
            seen += [item["requestid"] for item in listed["results"]]
            if listed["count"] == len(listed["results"]):
                return seen, pages
            assert pages < 200
            listed = api.list(**params, before=cursor(listed["results"][-1]["created"]))

    # Kubo: `ipfs pin remote ls` (pinned only, 10 per page, nanosecond cursor)
    seen, pages = page_through(kubo_before, status="pinned", limit=10)
    assert seen == pinned_newest_first and pages == 4
    # Kubo with every status
    seen, pages = page_through(kubo_before, status=ALL_STATUSES, limit=20)
    assert seen == newest_first and pages == 7
    # the JS client: a Date's millisecond cursor, an odd page size
    seen, pages = page_through(js_before, status=ALL_STATUSES, limit=27)
    assert seen == newest_first and pages == 5
