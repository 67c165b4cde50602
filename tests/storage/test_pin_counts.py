"""The counter tree gives exact counts for any status set and time range."""
from __future__ import annotations

import random

import pytest

from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import STATUSES, PinQuery, PinRequest
from chalicelib.storage.pin_counter import FANOUT, PinCounter
from chalicelib.storage.pin_record import PinRecord
from chalicelib.storage.pin_store import CreatedTaken, PinStore, StaleRecord, new_record

CID = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
DAY_MS = 86_400_000
START_MS = 1_760_000_000_000


def add_pin(store: PinStore, tenant: str, created_ms: int, status: str) -> PinRecord:
    record = new_record(tenant, created_ms, f"req-{created_ms}", PinRequest(cid=CID), ["/p2p/x"], ["node-a"])
    store.write(tenant, put=record)
    return store.set_status(record, status) if status != "queued" else record


@pytest.fixture
def pins(settings):
    """160 pins spread over 90 days, clustered like real use: bursts within
    the same 64 ms window, the same second and the same day."""
    rng = random.Random(7)
    store = PinStore()
    times = set()
    while len(times) < 160:
        base = START_MS + rng.randrange(90) * DAY_MS + rng.randrange(DAY_MS)
        times.update(base + rng.randrange(3 * FANOUT) for _ in range(rng.choice([1, 1, 5, 20])))
    created = {}
    for created_ms in sorted(times)[:160]:
        created[created_ms] = rng.choice(STATUSES)
        add_pin(store, "tenant-1", created_ms, created[created_ms])
    add_pin(store, "tenant-2", START_MS + 5, "pinned")  # another tenant's pin is never counted
    return store, created, rng


def brute_count(created, statuses, lo, hi):
    return sum(1 for ms, status in created.items() if status in statuses and lo <= ms <= hi)


def test_counts_match_brute_force_for_random_ranges_and_status_sets(pins):
    # Given 160 pins of random statuses spread over 90 days
    store, created, rng = pins
    times = sorted(created)
    for _ in range(60):
        # When counting a random status set over a random range (edges on and around pins)
        statuses = frozenset(rng.sample(STATUSES, rng.randint(1, 4)))
        lo = rng.choice(times) + rng.choice([-1, 0, 1]) if rng.random() < 0.8 else 0
        hi = rng.choice(times) + rng.choice([-1, 0, 1]) if rng.random() < 0.8 else 10**13 - 1
        lo, hi = min(lo, hi), max(lo, hi)
        # Then the tree agrees with counting every pin
        assert store.count("tenant-1", statuses, max(lo, 0), hi) == brute_count(created, statuses, lo, hi)


def test_list_page_and_count_with_before_and_after(pins):
    # Given the same pins, when listing pinned ones strictly between two pin times
    store, created, _ = pins
    times = sorted(created)
    after_ms, before_ms = times[20], times[120]
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
    store.write("tenant-1", delete=record)
    assert store.count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1) == before - 1


def test_a_status_change_from_a_stale_read_is_refused(settings):
    # Given a pin deleted after a worker read it
    store = PinStore()
    read_by_worker = add_pin(store, "tenant-1", START_MS, "queued")
    store.write("tenant-1", delete=store.get("tenant-1", START_MS))
    # When the worker reports progress, then it is refused and nothing comes back
    with pytest.raises(StaleRecord):
        store.set_status(read_by_worker, "pinned")
    assert store.get("tenant-1", START_MS) is None
    assert store.count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1) == 0


def test_a_taken_millisecond_is_refused_and_nothing_is_counted(settings):
    store = PinStore()
    add_pin(store, "tenant-1", START_MS, "queued")
    duplicate = new_record("tenant-1", START_MS, "req-other", PinRequest(cid=CID), ["/p2p/x"], ["node-a"])
    with pytest.raises(CreatedTaken):
        store.write("tenant-1", put=duplicate)
    assert store.count("tenant-1", frozenset(STATUSES), 0, 10**13 - 1) == 1
    assert store.get("tenant-1", START_MS).request_id == f"req-{START_MS}"


def test_deleting_a_pin_whose_status_moved_is_refused(settings):
    # Given a pin read as queued, then moved to pinning by a worker
    store = PinStore()
    stale = add_pin(store, "tenant-1", START_MS, "queued")
    store.set_status(store.get("tenant-1", START_MS), "pinning")
    # When deleting from the stale read, then it is refused and counts stay right
    with pytest.raises(StaleRecord):
        store.write("tenant-1", delete=stale)
    assert store.count("tenant-1", frozenset({"pinning"}), 0, 10**13 - 1) == 1
    assert sum(counter.queued for counter in PinCounter.scan()) == 0
