"""The counter tree gives exact counts for any status set and time range."""

from __future__ import annotations

import random

import pytest

from bench.support import item_bytes
from chalicelib.busy import StorageBusy
from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import STATUSES, PinQuery, PinRequest
from chalicelib.pins.pin import Pin, queued_pin
from chalicelib.pins.repository import CreatedTaken, StaleRecord
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage import pin_store
from chalicelib.storage.connection import DynamoConnection
from chalicelib.storage.count_folder import CountFolder
from chalicelib.storage.pin_counter import FANOUT, LEVELS, READ_ROUNDS, count_name
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.pin_keys import MAX_MS, STATUS_CODES, change_sort_keys, counter_sort_key, shard_key
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.shard_plan import LEAD_MS, ShardPlans
from chalicelib.storage.tables import bind_models

CID = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
DAY_MS = 86_400_000
START_MS = 1_760_000_000_000


def new_pin(tenant: str, created_ms: int, request_id: str | None = None) -> Pin:
    request_id = request_id or f"req-{created_ms}"
    return queued_pin(tenant, created_ms, request_id, PinRequest(cid=CID), ["/p2p/x"], ["node-a"])


def announce(created_ms: int) -> OutboxMessage:
    return OutboxMessage("shard#0", f"{created_ms:013d}#m", "{}", created_ms)


def add_pin(store: PinStore, tenant: str, created_ms: int, status: str) -> Pin:
    pin = new_pin(tenant, created_ms)
    store.create(pin, announce(created_ms))
    return store.update(pin, status=status) if status != "queued" else pin


@pytest.fixture
def dynamo(settings) -> DynamoConnection:
    return bind_models(settings)


# Shards of tenant-1: one (every tenant's start), five for all its pins, or
# three from half-way through the 90 days the pins below span.
SHARD_PLANS = {"one shard": None, "five shards": (0, 5), "three from day 45": (START_MS + 45 * DAY_MS, 3)}


@pytest.fixture(params=SHARD_PLANS)
def store(request, dynamo) -> PinStore:
    step = SHARD_PLANS[request.param]
    if step is not None:
        from_ms, shards = step
        ShardPlans(now_ms=lambda: from_ms - LEAD_MS).raise_to("tenant-1", shards)
    return PinStore(dynamo)


def fold_all(store: PinStore, tenant_id: str) -> int:
    """Folds every change of the tenant's shards into their trees."""
    folder = CountFolder(store.dynamo)
    return sum(folder.fold(shard_key(tenant_id, shard)) for shard in store.plans.of(tenant_id).shards_until(MAX_MS))


def build_pins(store: PinStore) -> tuple[dict[int, str], random.Random]:
    """100 pins spread over 90 days, clustered like real use: bursts within
    the same 64 ms window, the same second and the same day. The changes of
    the first 60 are folded into the counter trees, the rest not yet."""
    rng = random.Random(7)
    times = set()
    while len(times) < 100:
        base = START_MS + rng.randrange(90) * DAY_MS + rng.randrange(DAY_MS)
        times.update(base + rng.randrange(3 * FANOUT) for _ in range(rng.choice([1, 1, 5, 20])))
    created = {}
    for n, created_ms in enumerate(sorted(times)[:100]):
        created[created_ms] = rng.choice(STATUSES)
        add_pin(store, "tenant-1", created_ms, created[created_ms])
        if n == 59:
            fold_all(store, "tenant-1")
    add_pin(store, "tenant-2", START_MS + 5, "pinned")  # another tenant's pin is never counted
    return created, rng


def table_items(client) -> dict[str, list[dict]]:
    """Every item of every table, as DynamoDB gives them."""
    return {
        table: [item for page in client.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
        for table in client.list_tables()["TableNames"]
    }


def put_items(client, tables: dict[str, list[dict]]) -> None:
    for table, items in tables.items():
        for at in range(0, len(items), 25):
            writes = [{"PutRequest": {"Item": item}} for item in items[at : at + 25]]
            assert not client.batch_write_item(RequestItems={table: writes})["UnprocessedItems"]


# By build and shard plan: the tables once built, the pins' statuses and the random state left.
BUILT: dict[tuple[str, str], tuple[dict[str, list[dict]], dict[int, str], tuple]] = {}


def built_once(request, store: PinStore, build) -> tuple[PinStore, dict[int, str], random.Random]:
    """`build`'s pins, built through the store once per shard plan and copied
    item by item into each later test's fresh tables (the same items and
    random state; a build takes seconds of emulated transactions)."""
    key, client = (build.__name__, request.node.callspec.params["store"]), store.dynamo.connection.client
    if key in BUILT:
        tables, created, state = BUILT[key]
        put_items(client, tables)
        rng = random.Random()
        rng.setstate(state)
    else:
        created, rng = build(store)
        BUILT[key] = (table_items(client), dict(created), rng.getstate())
    return store, dict(created), rng


@pytest.fixture
def pins(request, store):
    return built_once(request, store, build_pins)


def brute_count(created, statuses, lo, hi):
    return sum(1 for ms, status in created.items() if status in statuses and lo <= ms <= hi)


def test_counts_match_brute_force_for_random_ranges_and_status_sets(pins):
    # Given 100 pins of random statuses spread over 90 days
    store, created, rng = pins
    times = sorted(created)
    for _ in range(20):  # with this seed, 20 meet open ends, both sides of a pin and every size of status set
        # When counting a random status set over a random range (edges on and around pins, or open)
        statuses = frozenset(rng.sample(STATUSES, rng.randint(1, 4)))
        lo = rng.choice(times) + rng.choice([-1, 0, 1]) if rng.random() < 0.8 else 0
        hi = rng.choice(times) + rng.choice([-1, 0, 1]) if rng.random() < 0.8 else 10**13 - 1
        lo, hi = min(lo, hi), max(lo, hi)
        # Then the tree agrees with counting every pin
        assert store.count("tenant-1", statuses, max(lo, 0), hi) == brute_count(created, statuses, lo, hi)


def test_folding_the_changes_left_changes_no_count(pins):
    # Given the pins, 40 of them with their changes not folded yet
    store, created, rng = pins
    times = sorted(created)
    ranges = [(0, MAX_MS)] + [tuple(sorted(rng.sample(times, 2))) for _ in range(5)]
    counts = [store.count("tenant-1", frozenset(s), lo, hi) for lo, hi in ranges for s in (STATUSES, ["pinned"])]
    # When every change left is folded
    assert fold_all(store, "tenant-1") >= 100 - 60
    # Then every count is what it was, and folding again finds nothing to do
    assert [
        store.count("tenant-1", frozenset(s), lo, hi) for lo, hi in ranges for s in (STATUSES, ["pinned"])
    ] == counts
    assert fold_all(store, "tenant-1") == 0


def test_list_page_and_count_with_before_and_after(pins):
    # Given the same pins, when listing pinned ones strictly between two pin times
    store, created, _ = pins
    times = sorted(created)
    after_ms, before_ms = times[12], times[75]
    query = PinQuery(statuses=frozenset({"pinned"}), after_ns=after_ms * 10**6, before_ns=before_ms * 10**6, limit=7)
    page, count = store.find("tenant-1", query)
    expected = [ms for ms in sorted(created, reverse=True) if created[ms] == "pinned" and after_ms < ms < before_ms]
    # Then the bounds are strict, the page is the newest 7 and the count exact
    assert [record.created_ms for record in page] == expected[:7]
    assert count == len(expected)


def test_deleting_a_pin_moves_its_count(pins):
    store, created, _ = pins
    created_ms = sorted(created)[10]
    record = store.get("tenant-1", created_ms)
    before = store.count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1)
    store.delete(record, announce(created_ms))
    assert store.count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1) == before - 1


def test_a_status_change_from_a_stale_read_is_refused(store):
    # Given a pin deleted after a worker read it
    read_by_worker = add_pin(store, "tenant-1", START_MS, "queued")
    store.delete(store.get("tenant-1", START_MS), announce(START_MS))
    # When the worker reports progress, then it is refused and nothing comes back
    with pytest.raises(StaleRecord):
        store.update(read_by_worker, status="pinned")
    assert store.get("tenant-1", START_MS) is None
    assert store.count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1) == 0


def test_a_taken_millisecond_is_refused_and_nothing_is_counted(store):
    add_pin(store, "tenant-1", START_MS, "queued")
    with pytest.raises(CreatedTaken):
        store.create(new_pin("tenant-1", START_MS, "req-other"), announce(START_MS))
    assert store.count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1) == 1
    assert store.get("tenant-1", START_MS).request_id == f"req-{START_MS}"


def test_deleting_a_pin_whose_status_moved_is_refused(store):
    # Given a pin read as queued, then moved to pinning by a worker
    stale = add_pin(store, "tenant-1", START_MS, "queued")
    store.update(store.get("tenant-1", START_MS), status="pinning")
    # When deleting from the stale read, then it is refused and counts stay right
    with pytest.raises(StaleRecord):
        store.delete(stale, announce(START_MS))
    assert store.count("tenant-1", frozenset({"pinning"}), 0, 10**13 - 1) == 1
    assert store.count("tenant-1", frozenset({"queued"}), 0, 10**13 - 1) == 0


def boundaries() -> list:
    """Bucket edges of every level near START_MS: a multiple of 64**k starts
    slot 0 of a level-(k-1) bucket, the millisecond before ends slot 63."""
    return [-(-START_MS // FANOUT**k) * FANOUT**k for k in range(1, LEVELS + 1)]


def build_edge_pins(store: PinStore) -> tuple[dict[int, str], random.Random]:
    """Pins on and around the edges of slots and buckets of every level, then
    (their creation folded into the trees) replaced, moved and deleted at
    random, as the API does."""
    rng = random.Random(11)
    created = {}
    for edge in boundaries():
        for created_ms in (edge - FANOUT, edge - 2, edge - 1, edge, edge + 1, edge + FANOUT - 1, edge + FANOUT):
            created.setdefault(created_ms, "queued")
            if store.get("tenant-1", created_ms) is None:
                add_pin(store, "tenant-1", created_ms, "queued")
    fold_all(store, "tenant-1")
    for created_ms in rng.sample(sorted(created), len(created) // 2):
        record = store.get("tenant-1", created_ms)
        action = rng.choice(["move", "move", "delete", "replace"])
        if action == "move":
            created[created_ms] = rng.choice([s for s in STATUSES if s != record.status])
            store.update(record, status=created[created_ms])
        elif action == "delete":
            store.delete(record, announce(created_ms))
            del created[created_ms]
        else:
            # The old pin and its successor in one transaction, sharing buckets.
            new_ms = created_ms + rng.choice([1, FANOUT, FANOUT**2])
            if new_ms in created:
                continue
            store.create(new_pin("tenant-1", new_ms), announce(new_ms), replacing=record)
            del created[created_ms]
            created[new_ms] = "queued"
    return created, rng


@pytest.fixture
def edge_pins(request, store):
    return built_once(request, store, build_edge_pins)


def test_counts_are_exact_on_slot_and_bucket_edges(edge_pins):
    # Given pins in slot 0 and slot 63 of buckets of every level, moved, replaced and deleted
    store, created, rng = edge_pins
    edges = boundaries()
    for _ in range(40):
        # When counting a random status set between bucket edges, exact or off by one
        statuses = frozenset(rng.sample(STATUSES, rng.randint(1, 4)))
        lo, hi = (rng.choice(edges) + rng.choice([-FANOUT, -1, 0, 1]) for _ in range(2))
        # Then the tree agrees with counting every pin (and an empty range counts none)
        assert store.count("tenant-1", statuses, lo, hi) == brute_count(created, statuses, lo, hi)


def test_before_an_exact_bucket_edge_counts_only_what_came_before(edge_pins):
    # Given pins on both sides of bucket edges of every level
    store, created, _ = edge_pins
    everything = frozenset(STATUSES)
    for edge in boundaries():
        # When listing every status strictly before the edge's millisecond
        query = PinQuery(statuses=everything, before_ns=edge * 10**6, limit=3)
        page, count = store.find("tenant-1", query)
        # Then the pin at the edge is excluded and the one just before it included
        expected = sorted((ms for ms in created if ms < edge), reverse=True)
        assert count == len(expected)
        assert [record.created_ms for record in page] == expected[:3]


def test_after_later_than_before_finds_nothing(edge_pins):
    store, created, _ = edge_pins
    edge = boundaries()[2]
    query = PinQuery(statuses=frozenset(STATUSES), after_ns=(edge + 1) * 10**6, before_ns=(edge - 1) * 10**6)
    assert store.find("tenant-1", query) == ([], 0)


def recorded_calls(dynamo):
    """Every DynamoDB call the store's client makes while in the block: (operation, params)."""
    calls = []
    client = dynamo.connection.client
    client.meta.events.register(
        "before-parameter-build.dynamodb",
        lambda model, params, **_: calls.append((model.name, params)),
        unique_id="counter-calls",
    )
    return calls, lambda: client.meta.events.unregister("before-parameter-build.dynamodb", unique_id="counter-calls")


def test_a_range_count_reads_at_most_thirteen_counter_items_a_shard_in_one_request(pins, dynamo):
    # Given 100 pins (40 of their changes not folded), and every DynamoDB call recorded
    store, created, _ = pins
    calls, stop = recorded_calls(dynamo)
    times = sorted(created)
    try:
        # When counting pinned pins between two of them
        count = store.count("tenant-1", frozenset({"pinned"}), times[20] + 1, times[88] - 1)
    finally:
        stop()
    # Then the counter trees are read by one BatchGetItem of at most 13 buckets a shard
    keys = [
        [key["sk"]["S"] for key in next(iter(params["RequestItems"].values()))["Keys"]]
        for name, params in calls
        if name == "BatchGetItem"
    ]
    shards = len(store.plans.of("tenant-1").shards_until(times[88]))
    assert len(keys) == 1 and len(keys[0]) <= 13 * shards
    assert all(key.startswith("k#") for key in keys[0])
    assert count == brute_count(created, {"pinned"}, times[20] + 1, times[88] - 1)


@pytest.mark.parametrize("statuses", [frozenset({"pinned"}), frozenset(STATUSES)], ids=["pinned", "all"])
def test_a_list_page_of_a_folded_shard_reads_its_pins_and_count_in_two_requests(dynamo, statuses):
    # Given a one-shard tenant of 30 pins whose changes are all folded
    store = PinStore(dynamo)
    created = {START_MS + 1000 * i: "pinned" if i % 3 else "queued" for i in range(30)}
    for created_ms, status in created.items():
        add_pin(store, "tenant-1", created_ms, status)
    fold_all(store, "tenant-1")
    calls, stop = recorded_calls(dynamo)
    try:
        # When a page of 10 is listed (no `before`)
        page, count = store.find("tenant-1", PinQuery(statuses=statuses, limit=10))
    finally:
        stop()
    # Then it is exact, and read by one Query (the page) and one BatchGetItem (the count)
    assert count == brute_count(created, statuses, 0, MAX_MS)
    assert [pin.created_ms for pin in page] == sorted(
        (ms for ms, status in created.items() if status in statuses), reverse=True
    )[:10]
    assert sorted(name for name, _ in calls) == ["BatchGetItem", "Query"]


@pytest.mark.parametrize("crowded", [False, True], ids=["spread", "a page in the last 64 ms"])
def test_a_page_before_a_time_counts_its_last_64_ms_from_the_page_when_it_reaches_below(dynamo, crowded):
    # Given a one-shard tenant of 40 folded pins, a second apart or (crowded) the last 12 within one 64 ms window
    store = PinStore(dynamo)
    base = START_MS // FANOUT * FANOUT
    created = [base - 1000 * (40 - i) for i in range(28)]
    created += [base + i for i in range(12)] if crowded else [base + 1000 * i for i in range(12)]
    for created_ms in created:
        add_pin(store, "tenant-1", created_ms, "pinned")
    fold_all(store, "tenant-1")
    hi = max(created)
    calls, stop = recorded_calls(dynamo)
    try:
        # When a page of 10 is listed before the newest pin
        page, count = store.find("tenant-1", PinQuery(statuses=frozenset({"pinned"}), limit=10, before_ns=hi * 10**6))
    finally:
        stop()
    # Then page and count are exact
    older = sorted((ms for ms in created if ms < hi), reverse=True)
    assert count == len(older) and [pin.created_ms for pin in page] == older[:10]
    # and the tree's bucket of the last 64 ms is read only when the page did not reach below them
    buckets = [
        key["sk"]["S"]
        for name, params in calls
        if name == "BatchGetItem"
        for key in next(iter(params["RequestItems"].values()))["Keys"]
    ]
    assert any(key.startswith("k#0#") for key in buckets) == crowded
    assert [name for name, _ in calls].count("Query") == 2  # the page, the changes


def test_a_list_page_reads_the_changes_not_folded_with_its_pins_and_once_more_after_the_tree(dynamo):
    # Given a one-shard tenant of 30 pins, the changes of the last 5 not folded
    store = PinStore(dynamo)
    for i in range(30):
        add_pin(store, "tenant-1", START_MS + 1000 * i, "pinned")
        if i == 24:
            fold_all(store, "tenant-1")
    calls, stop = recorded_calls(dynamo)
    try:
        # When a page of 10 is listed
        page, count = store.find("tenant-1", PinQuery(statuses=frozenset({"pinned"}), limit=10))
    finally:
        stop()
    # Then the count is exact: the page's Query met the changes atop the stream,
    # and they were read once more after the tree, to know the tree did not hold them
    assert count == 30 and len(page) == 10
    assert [name for name, _ in calls].count("BatchGetItem") == 1
    assert [name for name, _ in calls].count("Query") == 3  # the stream: 5 changes + 10 pins, then 5 more; again


def test_counter_buckets_left_unprocessed_are_read_again(pins, dynamo, monkeypatch):
    # Given DynamoDB that, throttled, leaves all but one key unprocessed on the first round
    _, created, _ = pins
    connection = dynamo.connection
    batch_get = connection.batch_get_item
    rounds = []

    def throttled(table, keys, **kwargs):
        done = keys[:1] if not rounds else keys
        rounds.append(len(keys))
        response = batch_get(table, done, **kwargs)
        response["UnprocessedKeys"] = (
            {PinItem.Meta.table_name: {"Keys": keys[len(done) :]}} if keys[len(done) :] else {}
        )
        return response

    monkeypatch.setattr(connection, "batch_get_item", throttled)
    pauses = []
    store = PinStore(dynamo, sleep=pauses.append)
    times = sorted(created)
    # When counting, then the count is exact: the rest is read after a pause
    assert store.count("tenant-1", frozenset(STATUSES), times[5], times[95]) == brute_count(
        created, STATUSES, times[5], times[95]
    )
    assert rounds == [rounds[0], rounds[0] - 1] and rounds[0] > 1
    assert len(pauses) == 1


def test_a_count_gives_up_when_dynamodb_keeps_every_key_unprocessed(pins, dynamo, monkeypatch):
    # Given DynamoDB that keeps leaving every counter key unprocessed
    connection = dynamo.connection
    rounds = []

    def throttled(table, keys, **_):
        rounds.append(len(keys))
        return {"Responses": {}, "UnprocessedKeys": {PinItem.Meta.table_name: {"Keys": list(keys)}}}

    monkeypatch.setattr(connection, "batch_get_item", throttled)
    # When counting, then it gives up after a bounded number of rounds: busy, retry later
    with pytest.raises(StorageBusy):
        PinStore(dynamo, sleep=lambda seconds: None).count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1)
    assert len(rounds) == READ_ROUNDS


def test_the_fullest_possible_bucket_fits_one_strongly_consistent_read_unit():
    # Given a top-level bucket with every slot and status at the most pins
    # a slot can hold (one per millisecond of its 64**6 ms)
    item = {"pk": {"S": shard_key("tn_" + "f" * 16, 1023)}, "sk": {"S": counter_sort_key(LEVELS, 0)}}
    item.update(
        {count_name(status, slot): {"N": str(FANOUT**LEVELS)} for status in STATUS_CODES for slot in range(FANOUT)}
    )
    # Then DynamoDB sizes it under 4 KB (one read unit), as the module promises
    assert len(item) == 2 + 4 * FANOUT
    assert item_bytes(item) < 2700


@pytest.mark.parametrize("when", ["before the tree", "after the tree"])
def test_a_fold_while_a_count_reads_is_seen_and_the_count_read_again(store, monkeypatch, when):
    # given pins whose changes are not folded yet
    for i, status in enumerate(["queued", "pinned", "pinned", "failed"]):
        add_pin(store, "tenant-1", START_MS + i, status)
    read_buckets = pin_store.read_buckets
    folds = []

    def folding(*args, **kwargs):
        # when another process folds every change right before (or after) the tree is read, once
        if when == "before the tree" and not folds:
            folds.append(fold_all(store, "tenant-1"))
        trees = read_buckets(*args, **kwargs)
        if when == "after the tree" and not folds:
            folds.append(fold_all(store, "tenant-1"))
        return trees

    monkeypatch.setattr(pin_store, "read_buckets", folding)
    # then the count neither misses the folded changes nor counts them twice
    assert store.count("tenant-1", frozenset({"pinned"}), START_MS, START_MS + 10) == 2
    assert store.count("tenant-1", frozenset(STATUSES), 0, MAX_MS) == 4
    assert folds and folds[0] > 0
    # and neither does a list page, which read the changes with its pins
    folds.clear()
    for i, status in enumerate(["queued", "pinned"]):
        add_pin(store, "tenant-1", START_MS + 10 + i, status)
    page, count = store.find("tenant-1", PinQuery(statuses=frozenset({"pinned"}), limit=2))
    assert count == 3 and [pin.created_ms for pin in page] == [START_MS + 11, START_MS + 2]
    assert folds and folds[0] > 0


def test_a_count_whose_changes_are_folded_during_every_read_gives_up_busy(store, monkeypatch):
    # given a pin whose status moves, and whose change is folded, between every two reads of a count
    pin = add_pin(store, "tenant-1", START_MS, "queued")
    read_buckets = pin_store.read_buckets

    def moving(*args, **kwargs):
        nonlocal pin
        trees = read_buckets(*args, **kwargs)
        fold_all(store, "tenant-1")
        pin = store.update(pin, status="pinned" if pin.status == "queued" else "queued")
        return trees

    monkeypatch.setattr(pin_store, "read_buckets", moving)
    # when counting, then it stops after a bounded number of reads: busy, retry later
    with pytest.raises(StorageBusy):
        PinStore(store.dynamo, sleep=lambda seconds: None).count("tenant-1", frozenset({"queued"}), 0, MAX_MS)


@pytest.mark.parametrize(
    ("was", "now", "streams"),
    [(None, "q", ["s#q#~", "p#~"]), ("q", "g", ["s#q#~", "s#g#~"]), ("p", None, ["s#p#~", "p#~"])],
    ids=["create", "move", "delete"],
)
def test_every_count_change_is_two_items_atop_the_streams_it_changes(was, now, streams):
    # Given a create, a move or a delete; when its items are named
    keys = change_sort_keys(f"{START_MS}#req-1#1", was, now)
    # Then they are two (the folder sizes its transactions on it), atop the streams it changes
    assert [key.split("~")[0] + "~" for key in keys] == streams
