"""A tenant's pins spread over more shards as it grows: a raise takes effect
only after every container's cached plan has expired, so no pin is ever
written where a list does not look; and the planner raises plans from the
tenants' creation rates, with no operator."""

from __future__ import annotations

import pytest

from chalicelib.pins.model import STATUSES, PinQuery
from chalicelib.pins.pin import Pin
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.shard_plan import CACHE_SECONDS, LEAD_MS, ShardPlan, ShardPlans
from chalicelib.storage.shard_planner import EVERY_MS, PINS_PER_SHARD_PER_S, ShardPlanner, shards_needed
from chalicelib.storage.tables import bind_models

START_MS = 1_760_000_000_000
EVERY = PinQuery(statuses=frozenset(STATUSES), limit=1000)


class Clocks:
    """A container's wall clock (ms) and monotonic clock (s), moved together."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def wall(self) -> int:
        return self.now_ms

    def monotonic(self) -> float:
        return self.now_ms / 1000


def container(dynamo, clocks: Clocks) -> PinStore:
    return PinStore(dynamo, plans=ShardPlans(clock=clocks.monotonic, now_ms=clocks.wall))


def pin_at(created_ms: int) -> Pin:
    return Pin("tenant-1", created_ms, f"req-{created_ms}", "queued", "bafy", "bafy")


def create(store: PinStore, created_ms: int) -> Pin:
    pin = pin_at(created_ms)
    store.create(pin, OutboxMessage("shard#0", f"m{created_ms}", "{}", created_ms))
    return pin


@pytest.fixture
def dynamo(settings):
    return bind_models(settings)


def test_a_plan_counts_shards_by_creation_time_and_only_grows():
    plan = ShardPlan(((100, 4), (200, 16)))
    assert [plan.shards_at(t) for t in (0, 99, 100, 199, 200, 10**12)] == [1, 1, 4, 4, 16, 16]
    assert [plan.shard_of(t) for t in (99, 103, 205)] == [0, 3, 205 % 16]
    assert plan.shards_until(150) == range(4)
    assert ShardPlan.decode(plan.encode()) == plan


def test_a_container_with_a_cached_plan_never_writes_where_others_do_not_read(dynamo):
    # given two containers; the writer cached the tenant's plan (one shard) just before a raise
    clocks = Clocks(START_MS)
    writer, reader = container(dynamo, clocks), container(dynamo, clocks)
    create(writer, START_MS - 1)
    ShardPlans(now_ms=clocks.wall).raise_to("tenant-1", 8)
    # when the writer creates pins while its cache is still valid, and after the raise takes effect
    clocks.now_ms += int(CACHE_SECONDS * 1000) - 1
    early = create(writer, clocks.now_ms)
    clocks.now_ms = START_MS + LEAD_MS + 5
    late = [create(writer, clocks.now_ms + i) for i in range(8)]
    # then the late pins went to the 8 shards, and a reader finds every pin
    assert {writer.plans.of("tenant-1").shard_of(pin.created_ms) for pin in late} == set(range(8))
    page, count = reader.find("tenant-1", EVERY)
    assert count == 10 and [pin.request_id for pin in page][-2:] == [early.request_id, f"req-{START_MS - 1}"]
    assert all(reader.get("tenant-1", pin.created_ms) == pin for pin in late)


def test_the_planner_raises_a_busy_tenants_shards_and_leaves_a_quiet_one(dynamo):
    # given a planner allowing 2 pins/s a shard over 10 s, a tenant that created 5 pins/s, and a quiet one
    clocks = Clocks(START_MS)
    store = container(dynamo, clocks)
    planner = ShardPlanner(store, clock=clocks.wall, window_ms=10_000, pins_per_shard_per_s=2)
    for i in range(50):
        create(store, START_MS - 10_000 + 1 + i * 200)
    quiet = Pin("tenant-2", START_MS - 10, "req-q", "queued", "bafy", "bafy")
    store.create(quiet, OutboxMessage("shard#0", "mq", "{}", START_MS))
    # when the planner runs
    raised = planner.plan(["tenant-1", "tenant-2"])
    # then the busy tenant's new pins go to 3 shards from LEAD_MS on, the quiet one's stay on 1
    assert [(r.tenant_id, r.shards) for r in raised] == [("tenant-1", 3)]
    assert ShardPlans.read("tenant-1") == ShardPlan(((START_MS + LEAD_MS, 3),))
    assert ShardPlans.read("tenant-2") == ShardPlan()
    # and running again a minute later, at the same rate, changes nothing
    clocks.now_ms += EVERY_MS
    create(store, clocks.now_ms - 1)
    assert planner.plan(["tenant-1", "tenant-2"]) == []


def test_the_planner_looks_at_a_writing_tenant_once_a_minute(dynamo):
    # given a planner allowing 0.5 pins/s a shard over a minute
    clocks = Clocks(START_MS)
    store = container(dynamo, clocks)
    planner = ShardPlanner(store, clock=clocks.wall, window_ms=EVERY_MS, pins_per_shard_per_s=0.5)
    # when a quiet tenant's writes are reported, then 50 pins come within 5 s and are reported at once
    assert planner.plan(["tenant-1"]) == []
    for i in range(50):
        create(store, START_MS + 1 + i * 100)
    clocks.now_ms = START_MS + 5_001
    # then the tenant is not looked at again within the minute
    assert planner.plan(["tenant-1"]) == []
    assert ShardPlans.read("tenant-1") == ShardPlan()
    # but a minute after its last look, its rate raises its plan
    clocks.now_ms = START_MS + EVERY_MS
    assert [(r.tenant_id, r.shards) for r in planner.plan(["tenant-1"])] == [("tenant-1", 2)]


def test_the_default_rule_gives_a_thousand_pins_a_second_their_shards():
    assert [shards_needed(rate) for rate in (0, 1, PINS_PER_SHARD_PER_S, 1000)] == [1, 1, 1, 40]
