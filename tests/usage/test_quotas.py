"""Quotas by plan and override: a create or replace beyond one is refused
(INSUFFICIENT_FUNDS, naming the limit and the usage) and changes nothing."""

from __future__ import annotations

import pytest

from chalicelib.pins.model import STATUSES, PinQuery, PinRequest
from chalicelib.tenants.admin import UnknownTenant
from chalicelib.tenants.repository import Tenant
from chalicelib.usage.plan_admin import PlanAdmin
from chalicelib.usage.plans import InvalidPlans, Quotas, TenantPlan, parse_plans
from chalicelib.usage.quotas import QuotaExceeded
from tests.support.memory.tenants import MemoryTenants
from tests.usage.conftest import CIDS, World

EVERY = PinQuery(statuses=frozenset(STATUSES), limit=1000)


def limit(world: World, **overrides: int) -> None:
    world.plans.put("alice", TenantPlan("unlimited", overrides))


def test_a_create_beyond_the_pins_quota_is_refused_and_changes_nothing(world: World):
    # given alice may have two pins and has two
    limit(world, pins=2)
    world.create("alice"), world.create("alice", 1)
    stored, writes = world.store.find("alice", EVERY), world.store.writes
    # when she asks for a third
    with pytest.raises(QuotaExceeded) as refused:
        world.create("alice", 2)
    # then it is refused naming the limit and her usage, and nothing was written
    assert (refused.value.reason, refused.value.limit, refused.value.quota, refused.value.usage) == (
        "INSUFFICIENT_FUNDS",
        "pins",
        2,
        2,
    )
    assert "pins quota is 2" in refused.value.details
    assert world.store.find("alice", EVERY) == stored
    assert world.store.writes == writes
    # and bob, on the default plan, is not limited
    world.create("bob"), world.create("bob", 1), world.create("bob", 2)


def test_failed_pins_count_for_no_quota_and_a_replace_takes_its_pins_place(world: World):
    # given alice at her pins quota, one of them pinned
    limit(world, pins=2)
    first, second = world.create("alice"), world.create("alice", 1)
    world.pinned(first, 10)
    # when she replaces the pinned one: it takes its place
    replaced = world.service.replace("alice", first.request_id, PinRequest(cid=CIDS[2]))
    # then the replace went through; and once a pin failed, its place is free again
    assert replaced.status == "queued"
    world.store.update(world.store.get("alice", second.created_ms), status="failed")
    world.create("alice", 1)


def test_pins_in_flight_are_limited_apart_from_pins(world: World):
    # given alice may have one request queued or pinning
    limit(world, in_flight=1)
    pin = world.create("alice")
    # when she asks for another while it is queued: refused
    with pytest.raises(QuotaExceeded) as refused:
        world.create("alice", 1)
    assert refused.value.limit == "in_flight"
    # and once it is pinned, the next goes in
    world.pinned(pin, 5)
    world.create("alice", 1)


def test_a_create_is_refused_while_the_bytes_quota_is_used_up(world: World):
    # given alice's 100 bytes are all pinned
    limit(world, bytes=100)
    world.pinned(world.create("alice"), 100)
    # when she asks for another pin: refused, naming the bytes
    with pytest.raises(QuotaExceeded) as refused:
        world.create("alice", 1)
    assert (refused.value.limit, refused.value.usage) == ("bytes", 100)
    # and a pin that would take her past them may not become pinned
    limit(world, bytes=150)
    assert world.service.create("alice", PinRequest(cid=CIDS[1]))
    assert world.service_quotas().over_bytes("alice", 51) is not None
    assert world.service_quotas().over_bytes("alice", 50) is None


def test_a_request_asking_more_filecoin_copies_than_its_plan_is_refused_and_changes_nothing(world: World):
    # given alice on the pro plan (two Filecoin copies a request)
    world.plans.put("alice", TenantPlan("pro"))
    writes = world.store.writes
    # when she asks for three in a request's meta, then it is refused naming the limit; nothing is written
    with pytest.raises(QuotaExceeded) as refused:
        world.service.create("alice", PinRequest(cid=CIDS[0], meta={"filecoin.copies": "3"}))
    assert (refused.value.limit, refused.value.quota, refused.value.usage) == ("filecoin_copies", 2, 3)
    assert "quota is 2 per request and 3 were asked" in refused.value.details
    assert world.store.writes == writes
    # and two, or none asked, are accepted; so are three for bob, on the default plan
    world.service.create("alice", PinRequest(cid=CIDS[0], meta={"filecoin.copies": "2"}))
    world.service.create("alice", PinRequest(cid=CIDS[1]))
    world.service.create("bob", PinRequest(cid=CIDS[0], meta={"filecoin.copies": "3"}))
    assert world.service_quotas().filecoin_copies_quota("bob") is None


def test_plans_and_overrides_set_by_the_operator(world: World):
    # given a tenant on the default plan
    tenants = MemoryTenants()
    tenants.add(Tenant("alice", "Alice", 1))
    admin = PlanAdmin(tenants, world.plans, world.quotas)
    assert admin.show("alice").plan == "unlimited"
    # when the operator puts her on free and raises her pins
    admin.set_plan("alice", "free")
    view = admin.set_quotas("alice", {"pins": 5000})
    # then her quotas are free's but for the pins; dropping the override gives free's back
    assert view.plan == "free" and view.quotas.pins == 5000 and view.quotas.in_flight == 100
    assert admin.set_quotas("alice", {"pins": None}).quotas.pins == 1000
    # and unknown plans, limits or tenants are refused
    with pytest.raises(InvalidPlans):
        admin.set_plan("alice", "gold")
    with pytest.raises(InvalidPlans):
        admin.set_quotas("alice", {"pins": -1})
    with pytest.raises(UnknownTenant):
        admin.set_plan("nobody", "free")


def test_stage_plans_from_json():
    plans = parse_plans('{"tiny": {"pins": 3}, "all": {}}')
    assert plans == {"tiny": Quotas(pins=3), "all": Quotas()}
    assert "free" in parse_plans("")
    for bad in ("[", '{"x": 1}', '{"x": {"pins": "3"}}', '{"x": {"seats": 3}}'):
        with pytest.raises(InvalidPlans):
            parse_plans(bad)
