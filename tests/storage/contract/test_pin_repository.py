"""PinRepository contract: the same behaviour in memory and on DynamoDB."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace

import pytest

from chalicelib.pins.idempotency import Claimed, IdempotencyClaim
from chalicelib.pins.model import STATUSES, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import ClaimTaken, CreatedTaken, PinRepository, StaleRecord
from chalicelib.pins.scan_limit import MAX_INDEXED_META_PAIRS, QueryTooBroad
from chalicelib.queue.outbox_repository import OutboxMessage, OutboxRepository
from chalicelib.storage.outbox_repository import DynamoOutboxRepository
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.shard_plan import LEAD_MS, ShardPlans
from tests.storage.contract.backends import BACKENDS, dynamo_connection
from tests.support.memory.outbox import MemoryOutbox
from tests.support.memory.pins import MemoryPinRepository
from tests.support.pin_filters import NS_PER_MS, selects

START_MS = 1_760_000_000_000
EVERY_STATUS = frozenset(STATUSES)


@dataclass
class Backend:
    pins: PinRepository
    outbox: OutboxRepository

    def announced(self) -> list[OutboxMessage]:
        return list(self.outbox.older_than("shard#0", 10**13 - 1))


# DynamoDB again with both tenants' pins spread over 3 shards.
PIN_BACKENDS = [*BACKENDS, "dynamo-3-shards"]


def sharded(store: PinStore, *tenants: str) -> PinStore:
    for tenant_id in tenants:
        ShardPlans(now_ms=lambda: -LEAD_MS).raise_to(tenant_id, 3)
    return store


@pytest.fixture(params=PIN_BACKENDS)
def backend(request) -> Backend:
    if request.param == "memory":
        outbox = MemoryOutbox()
        return Backend(MemoryPinRepository(outbox), outbox)
    store = PinStore(dynamo_connection(request))
    if request.param == "dynamo-3-shards":
        sharded(store, "tenant-1", "tenant-2")
    return Backend(store, DynamoOutboxRepository())


def announce(created_ms: int, what: str) -> OutboxMessage:
    return OutboxMessage("shard#0", f"{created_ms:013d}#{what}", f'{{"m":"{what}"}}', created_ms)


def new_pin(created_ms: int, tenant_id: str = "tenant-1", **fields) -> Pin:
    values = {
        "request_id": f"req-{tenant_id}-{created_ms}",
        "status": "queued",
        "cid": "bafy-content",
        "cid_key": "bafy-content",
        "delegates": ("/ip4/203.0.113.1/tcp/4001/p2p/peer-a",),
        "node_ids": ("node-a",),
    }
    return Pin(tenant_id=tenant_id, created_ms=created_ms, **{**values, **fields})


def created(backend: Backend, pin: Pin) -> Pin:
    backend.pins.create(pin, announce(pin.created_ms, "pin"))
    return pin


# -- writes -----------------------------------------------------------------


def test_a_created_pin_reads_back_whole_and_its_message_is_written_with_it(backend):
    # given a pin with every field set
    pin = new_pin(
        START_MS,
        name="Ärger.txt",
        origins=("/ip4/198.51.100.7/tcp/4001/p2p/peer-o",),
        meta={"app": "web", "a.b[1]": "x"},
        info={"status_details": "queued"},
        node_ids=("node-a", "node-b"),
    )
    # when it is created
    backend.pins.create(pin, announce(START_MS, "pin"))
    # then it reads back equal, at version 0, and its announcement is kept
    assert backend.pins.get("tenant-1", START_MS) == pin
    assert backend.pins.get("tenant-1", START_MS).version == 0
    assert backend.announced() == [announce(START_MS, "pin")]
    # and no other tenant or millisecond has it
    assert backend.pins.get("tenant-2", START_MS) is None
    assert backend.pins.get("tenant-1", START_MS + 1) is None


def test_a_taken_millisecond_is_refused_and_nothing_of_the_second_pin_is_written(backend):
    first = created(backend, new_pin(START_MS))
    with pytest.raises(CreatedTaken):
        backend.pins.create(new_pin(START_MS, request_id="req-other"), announce(START_MS, "other"))
    assert backend.pins.get("tenant-1", START_MS) == first
    assert backend.announced() == [announce(START_MS, "pin")]
    # another tenant's pin may have the same millisecond
    created(backend, new_pin(START_MS, tenant_id="tenant-2"))
    assert backend.pins.get("tenant-2", START_MS).request_id == "req-tenant-2-1760000000000"


def test_an_update_writes_what_is_given_keeps_the_rest_and_moves_the_version_on(backend):
    pin = created(backend, new_pin(START_MS, info={"status_details": "queued"}))
    pinning = backend.pins.update(pin, status="pinning", node_ids=["node-a", "node-c"])
    assert (pinning.status, pinning.node_ids, pinning.info, pinning.version) == (
        "pinning",
        ("node-a", "node-c"),
        {"status_details": "queued"},
        1,
    )
    progressed = backend.pins.update(pinning, info={"status_details": "fetched 3 blocks"})
    assert (progressed.status, progressed.node_ids, progressed.version) == ("pinning", ("node-a", "node-c"), 2)
    assert backend.pins.get("tenant-1", START_MS) == progressed


def test_two_writers_of_one_pin_never_lose_each_others_update(backend):
    # given a pin read by two writers: a drain recording a new node, a worker reporting progress
    pin = created(backend, new_pin(START_MS, status="pinning", node_ids=("node-a",)))
    read_by_drain = backend.pins.get("tenant-1", START_MS)
    read_by_worker = backend.pins.get("tenant-1", START_MS)
    # when the drain adds node-c (keeping the status) first
    backend.pins.update(read_by_drain, node_ids=["node-a", "node-c"])
    # then the worker's progress update from its older read is refused, status unchanged or not
    with pytest.raises(StaleRecord):
        backend.pins.update(read_by_worker, info={"status_details": "fetched 3 blocks"})
    with pytest.raises(StaleRecord):
        backend.pins.update(read_by_worker, status="pinned", node_ids=["node-a"])
    # and node-c, whose hold an unpin must release, is still recorded
    assert backend.pins.get("tenant-1", START_MS).node_ids == ("node-a", "node-c")
    # while a writer that reads again succeeds
    fresh = backend.pins.get("tenant-1", START_MS)
    assert backend.pins.update(fresh, info={"status_details": "fetched 3 blocks"}).node_ids == pin.node_ids + (
        "node-c",
    )


def test_a_deleted_pin_is_never_brought_back_by_a_late_update(backend):
    read_by_worker = created(backend, new_pin(START_MS))
    backend.pins.delete(backend.pins.get("tenant-1", START_MS), announce(START_MS + 1, "unpin"))
    with pytest.raises(StaleRecord):
        backend.pins.update(read_by_worker, status="pinned")
    assert backend.pins.get("tenant-1", START_MS) is None
    assert backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS)) == ([], 0)
    assert backend.announced() == [announce(START_MS, "pin"), announce(START_MS + 1, "unpin")]


def test_a_delete_from_an_older_read_is_refused_and_writes_nothing(backend):
    stale = created(backend, new_pin(START_MS))
    moved = backend.pins.update(backend.pins.get("tenant-1", START_MS), status="pinning", node_ids=["node-b"])
    with pytest.raises(StaleRecord):
        backend.pins.delete(stale, announce(START_MS + 1, "unpin"))
    assert backend.pins.get("tenant-1", START_MS) == moved
    assert backend.announced() == [announce(START_MS, "pin")]
    assert backend.pins.find("tenant-1", PinQuery(statuses=frozenset({"pinning"}))) == ([moved], 1)


def test_a_replace_swaps_the_pins_at_once_or_not_at_all(backend):
    # given a pin, read, then written by a worker
    old = created(backend, new_pin(START_MS))
    moved = backend.pins.update(old, status="pinned")
    successor = new_pin(START_MS + 5, request_id="req-successor", name="v2")
    # when replacing it from the older read, then nothing changes
    with pytest.raises(StaleRecord):
        backend.pins.create(successor, announce(START_MS + 5, "successor"), replacing=old)
    assert backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS)) == ([moved], 1)
    # when replacing it from a fresh read, then the successor alone is left
    backend.pins.create(successor, announce(START_MS + 5, "successor"), replacing=moved)
    assert backend.pins.get("tenant-1", START_MS) is None
    assert backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS)) == ([successor], 1)
    assert backend.announced()[-1] == announce(START_MS + 5, "successor")


# -- finding ------------------------------------------------------------------

# Gaps land pins next to each other and on both sides of the count tree's bucket edges.
GAPS_MS = [1, 2, 63, 64, 65, 4095, 4097, 262_143, 3_600_000, 16_777_217, 86_400_001]
NAMES = ["photos-2021", "Photos-2021", "PHOTOS backup", "backup", "", None, "Ärger im Büro", "ärger"]
METAS = [{}, {"app": "web"}, {"app": "web", "env": "prod"}, {"app": "cli", "env": "prod"}, {"x y": "z"}]
CIDS = ["bafy-a", "bafy-b", "bafy-c", "bafy-d", "bafy-e"]


def dataset(backend: Backend) -> list[Pin]:
    """30 pins of tenant-1 of every status, name, meta and CID, and pins of
    tenant-2 at the same times, which tenant-1 never sees."""
    rng = random.Random(5)
    pins, created_ms = [], START_MS
    for i in range(30):
        fields = {"cid_key": CIDS[i % 5], "cid": CIDS[i % 5], "name": NAMES[i % 8], "meta": METAS[i % 5]}
        pin = created(backend, new_pin(created_ms, **fields))
        status = rng.choice(STATUSES)
        pins.append(pin if status == "queued" else backend.pins.update(pin, status=status))
        created(backend, new_pin(created_ms, tenant_id="tenant-2", **fields))
        created_ms += GAPS_MS[i % len(GAPS_MS)]
    return pins


def expected(pins: list[Pin], query: PinQuery) -> tuple[list[Pin], int]:
    found = [pin for pin in sorted(pins, key=lambda pin: pin.created_ms, reverse=True) if selects(query, pin)]
    return found[: query.limit], len(found)


def queries(pins: list[Pin]) -> list[PinQuery]:
    """Every filter in every time window, and every pair of filter, window,
    status set and limit: status set and limit step on with each filter and
    window (a pairwise covering; DynamoDB answers each in tens of ms)."""
    times = sorted(pin.created_ms * NS_PER_MS for pin in pins)
    windows = [(None, None), (times[20], None), (None, times[5]), (times[25] + 1, times[3] - 1), (times[0], None)]
    filters = [
        {},
        {"cid_keys": ("bafy-a",)},
        {"cid_keys": ("bafy-b", "bafy-e", "bafy-none")},
        {"name": "photos-2021", "match": "exact"},
        {"name": "photos-2021", "match": "iexact"},
        {"name": "photos", "match": "partial"},
        {"name": "ÄRGER", "match": "ipartial"},
        {"name": "", "match": "partial"},
        {"meta": {"app": "web"}},
        {"meta": {"app": "web", "env": "prod"}, "cid_keys": ("bafy-c",)},
    ]
    statuses = [EVERY_STATUS, frozenset({"pinned"}), frozenset({"queued", "failed"})]
    limits = [10, 1, 3, 1000]
    found = []
    for (w, (before, after)), (f, fields) in itertools.product(enumerate(windows), enumerate(filters)):
        status, limit = statuses[(w + f) % len(statuses)], limits[(w + f) % len(limits)]
        found.append(PinQuery(statuses=status, before_ns=before, after_ns=after, limit=limit, **fields))
    return found


def test_the_queries_cover_every_pair_of_filter_window_status_set_and_limit():
    # given the queries the filter test asks of its pins
    outbox = MemoryOutbox()
    found = queries(dataset(Backend(MemoryPinRepository(outbox), outbox)))
    # when each is reduced to its filter, window, status set and limit
    shapes = [
        (
            (q.cid_keys, q.name, q.match, tuple(q.meta.items())),
            (q.before_ns, q.after_ns),
            q.statuses,
            q.limit,
        )
        for q in found
    ]
    # then every value of each meets every value of each other
    for a, b in itertools.combinations(range(4), 2):
        values_a, values_b = {s[a] for s in shapes}, {s[b] for s in shapes}
        assert {(s[a], s[b]) for s in shapes} == set(itertools.product(values_a, values_b))
    assert [len({s[i] for s in shapes}) for i in range(4)] == [10, 5, 3, 4]


def test_every_filter_pages_newest_first_and_counts_exactly(backend):
    # given pins of every kind for two tenants
    pins = dataset(backend)
    for query in queries(pins):
        # when tenant-1 lists with any filter, time window and limit
        page, count = backend.pins.find("tenant-1", query)
        # then the page is the newest matches and the count every match
        want_page, want_count = expected(pins, query)
        assert ([pin.request_id for pin in page], count) == ([pin.request_id for pin in want_page], want_count), query
        assert page == want_page


# -- the scan limit -------------------------------------------------------------


@pytest.fixture(params=PIN_BACKENDS)
def limited(request) -> PinRepository:
    """A repository that reads at most 3 pins for a residual filter."""
    if request.param == "memory":
        return MemoryPinRepository(max_scanned_pins=3)
    store = PinStore(dynamo_connection(request), max_scanned_pins=3)
    return sharded(store, "tenant-1") if request.param == "dynamo-3-shards" else store


def test_a_residual_filter_over_more_pins_than_the_limit_is_refused_and_an_indexed_one_answered(limited):
    # given 4 pins of one CID, named photo-<i>, 2 of them pinned, 80 ms apart
    for i in range(4):
        pin = new_pin(START_MS + 80 * i, name=f"photo-{i}", meta={"app": "web"})
        limited.create(pin, announce(pin.created_ms, "pin"))
        if i < 2:
            limited.update(pin, status="pinned")
    every, since_second = EVERY_STATUS, (START_MS + 80) * NS_PER_MS
    # when a partial name or a meta filter asks for a range of 4 pins, then it is refused
    for residual in (
        {"name": "photo", "match": "partial"},
        {"name": "PHOTO", "match": "ipartial"},
        {"meta": {"app": "web"}},
    ):
        with pytest.raises(QueryTooBroad, match="holds 4 pins"):
            limited.find("tenant-1", PinQuery(statuses=every, **residual))
        # and a range of the 2 newest pins, or of the 2 queued ones, is answered with its exact count
        assert limited.find("tenant-1", PinQuery(statuses=every, after_ns=since_second, **residual))[1] == 2
        assert limited.find("tenant-1", PinQuery(statuses=frozenset({"queued"}), **residual))[1] == 2
    # and the indexed filters are answered whatever they read
    assert limited.find("tenant-1", PinQuery(statuses=every, cid_keys=("bafy-content",), meta={"app": "web"}))[1] == 4
    assert limited.find("tenant-1", PinQuery(statuses=every, name="photo-1"))[1] == 1


def test_pins_with_more_meta_pairs_than_are_indexed_are_found_by_any_of_them(backend):
    # given pins with 1, 32 (the most indexed) and 33 meta pairs, all with app=web
    many = {f"k{i:02d}": "v" for i in range(MAX_INDEXED_META_PAIRS + 1)}
    shapes = [{"app": "web"}, {**dict(list(many.items())[:31]), "app": "web"}, {**many, "app": "web"}]
    pins = [created(backend, new_pin(START_MS + i, meta=meta)) for i, meta in enumerate(shapes)]
    # when filtering by a pair the two larger share, by app=web, or by a pair of the largest alone
    by_k00 = backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS, meta={"k00": "v"}))
    by_app = backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS, meta={"app": "web"}))
    by_k32 = backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS, meta={"k32": "v", "app": "web"}))
    # then each finds exactly the pins holding every pair asked for, newest first
    assert by_k00 == ([pins[2], pins[1]], 2)
    assert by_app == (pins[::-1], 3)
    assert by_k32 == ([pins[2]], 1)
    # and after a delete the pin is found by none of them
    backend.pins.delete(pins[2], announce(START_MS + 10, "unpin"))
    assert backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS, meta={"k32": "v"})) == ([], 0)
    assert backend.pins.find("tenant-1", PinQuery(statuses=EVERY_STATUS, meta={"k00": "v"}))[1] == 1


def test_a_pin_with_the_largest_meta_reads_back_whole_everywhere_and_leaves_nothing_when_deleted(backend):
    # given a pin with 16 KB of meta (4 values of 4,000 characters) beside a small one
    large = {f"field-{i}": chr(ord("a") + i) * 4000 for i in range(4)}
    big = created(backend, new_pin(START_MS, meta=large, name="big"))
    small = created(backend, new_pin(START_MS + 1, meta={"field-0": "a"}))
    # when its status moves and its progress is reported
    moved = backend.pins.update(big, status="pinning")
    moved = backend.pins.update(moved, info={"status_details": "fetched 3 blocks"})
    # then every read gives its whole meta: get, list by status, by every status, by name, by a meta pair
    every = PinQuery(statuses=EVERY_STATUS)
    assert backend.pins.get("tenant-1", START_MS) == moved
    assert backend.pins.find("tenant-1", PinQuery(statuses=frozenset({"pinning"}))) == ([moved], 1)
    assert backend.pins.find("tenant-1", every) == ([small, moved], 2)
    assert backend.pins.find("tenant-1", replace(every, name="big")) == ([moved], 1)
    assert backend.pins.find("tenant-1", replace(every, meta={"field-3": "d" * 4000})) == ([moved], 1)
    assert backend.pins.find("tenant-1", replace(every, name="b", match="partial")) == ([moved], 1)
    # and once deleted, nothing finds it
    backend.pins.delete(moved, announce(START_MS + 2, "unpin"))
    assert backend.pins.get("tenant-1", START_MS) is None
    assert backend.pins.find("tenant-1", replace(every, meta={"field-3": "d" * 4000})) == ([], 0)


# -- idempotency keys ------------------------------------------------------------


def test_a_claimed_key_answers_the_first_pin_until_it_expires_and_cannot_be_claimed_twice(backend):
    # given a pin created with a claim on key "k1" for an hour
    claim = IdempotencyClaim("k1", "fingerprint-a", START_MS + 3_600_000)
    first = new_pin(START_MS, meta={"big": "x" * 3000}, name="first")
    backend.pins.create(first, announce(START_MS, "pin"), claim=claim)
    # then the claim answers the pin, whole, for that tenant only, until it expires
    assert backend.pins.claimed("tenant-1", "k1", START_MS + 1) == Claimed("fingerprint-a", first)
    assert backend.pins.claimed("tenant-2", "k1", START_MS + 1) is None
    assert backend.pins.claimed("tenant-1", "k1", START_MS + 3_600_000) is None
    # and a second create claiming it within the hour writes nothing
    with pytest.raises(ClaimTaken):
        backend.pins.create(new_pin(START_MS + 5, request_id="req-2"), announce(START_MS + 5, "two"), claim=claim)
    assert backend.pins.get("tenant-1", START_MS + 5) is None
    assert backend.announced() == [announce(START_MS, "pin")]
    # while after it expired the key may be claimed again
    later = replace(claim, fingerprint="fingerprint-b", expires_ms=START_MS + 7_200_000)
    second = new_pin(START_MS + 3_600_001, request_id="req-3")
    backend.pins.create(second, announce(START_MS + 3_600_001, "three"), claim=later)
    assert backend.pins.claimed("tenant-1", "k1", START_MS + 3_600_002) == Claimed("fingerprint-b", second)
