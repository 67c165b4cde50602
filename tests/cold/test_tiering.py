"""Storage tiers end to end on the service's wiring: the pin worker, the
archiver and the cooling sweep on DynamoDB and S3 (moto) and fake Kubo
nodes; the sweep's clock is the test's."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import pytest

from chalicelib.cold.archive_repository import ARCHIVED, ArchiveHolder
from chalicelib.cold.archive_sweep import ArchiveSweep
from chalicelib.cold.car import write_car
from chalicelib.cold.retrieval import Format, Retrieval
from chalicelib.cold.tiering import Tiering
from chalicelib.cold.tiers import COLD_DETAILS, COLD_ONLY, DAY_MS, HOT_ONLY
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import RestoreRequested, decode, encode
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client
from tests.worker.conftest import current, fleet, holding, kubos, pin_request, queue  # noqa: F401 - fixtures

BUCKET = "pinning-test-archives"
DAYS = 7


class Clock:
    """The sweep's clock: now, plus days the test lets pass."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return now_ms() + self.offset_ms

    def days_pass(self, days: float) -> None:
        self.offset_ms += int(days * DAY_MS)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tiered(fleet, clock):  # noqa: F811
    """The fleet's services with ARCHIVE_BUCKET set; its tiering on the test's clock."""
    fleet.settings = replace(fleet.settings, archive_bucket=BUCKET, tier_cache_seconds=0)
    for built in ("worker", "archiver", "archive_sweep", "tiering", "tier_policies"):
        fleet.__dict__.pop(built, None)
    fleet.__dict__["s3"] = s3_client()
    fleet.s3.create_bucket(Bucket=BUCKET)
    fleet.sent = []
    fleet.__dict__["tiering"] = Tiering(
        DynamoArchiveRepository(fleet.dynamo),
        fleet.tier_policies,
        fleet.store,
        release=lambda *hold: fleet.worker.release_hot(*hold),
        send=fleet.sent.append,
        clock=clock,
    )
    return fleet


def a_dag(kubos, seed: int) -> str:  # noqa: F811
    """A DAG every fake node can fetch (and export)."""
    root, blocks = unixfs_file(random.Random(seed).randbytes(300_000))
    for kubo in kubos.values():
        kubo.add_car(str(root), b"".join(write_car([root], blocks)))
    return str(root)


def a_tenant(services, name: str, tier: str | None = None, days: int | None = None) -> str:
    tenant = services.admin.create_tenant(name)
    if tier is not None:
        services.admin.set_tier(tenant.tenant_id, tier, days)
    return tenant.tenant_id


def pinned_and_archived(services, queue, tenant_id: str, cid: str):  # noqa: F811
    record = services.pins.create(tenant_id, pin_request(cid))
    queue.run_until_empty()
    pin = current(services, record)
    assert pin.status == "pinned"
    return pin


def cool(services, limit: int = 100):
    return services.tiering.cool(time.monotonic() + 20, limit)


def archives(services) -> DynamoArchiveRepository:
    return DynamoArchiveRepository(services.dynamo)


def assert_cold(pin, pinned) -> None:
    """`pin` is `pinned` as a cold request: still pinned, on no node, its archive's keys kept."""
    assert pin.status == "pinned" and pin.node_ids == ()
    assert (pin.info["tier"], pin.info["replicas"], pin.info["status_details"]) == ("cold", "", COLD_DETAILS)
    assert pin.info["cold"] == "archived" and pin.info["piece_cid"] == pinned.info["piece_cid"]


def test_a_hot_only_tenants_request_is_not_archived_and_says_so(tiered, kubos, queue):  # noqa: F811
    # Given a hot-only tenant
    tenant_id = a_tenant(tiered, "hot", HOT_ONLY)
    cid = a_dag(kubos, 1)
    # When its request is pinned
    record = tiered.pins.create(tenant_id, pin_request(cid))
    batch, _ = queue.run_once()
    follow_ups = queue.receive()
    # Then no archive message was sent, nothing is held or uploaded, and info says the cold copy is off
    assert queue.kinds(batch) == ["pin"] and queue.kinds(follow_ups) == []
    pin = current(tiered, record)
    assert (pin.status, pin.info["cold"]) == ("pinned", "off")
    assert archives(tiered).state(cid) is None
    assert tiered.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_a_cold_only_request_goes_cold_after_its_days_and_only_a_last_holder_unpins(
    tiered,
    kubos,  # noqa: F811
    queue,  # noqa: F811
    clock,
):
    # Given a cold-only tenant (7 days) with two CIDs, one of them also pinned by a hot+cold tenant
    alice, bob = a_tenant(tiered, "alice", COLD_ONLY, DAYS), a_tenant(tiered, "bob")
    shared, own = a_dag(kubos, 1), a_dag(kubos, 2)
    mine = pinned_and_archived(tiered, queue, alice, shared)
    only_mine = pinned_and_archived(tiered, queue, alice, own)
    bobs = pinned_and_archived(tiered, queue, bob, shared)
    assert {pin.info["cold"] for pin in (mine, only_mine, bobs)} == {"archived"}
    nodes = holding(kubos, own)
    # When fewer than 7 days pass, then the sweep leaves them hot
    clock.days_pass(DAYS - 0.01)
    assert cool(tiered).cooled == 0
    assert holding(kubos, own) == nodes
    # When 7 days have passed
    clock.days_pass(0.02)
    report = cool(tiered)
    # Then both of alice's requests are cold, still pinned, and say where they live
    assert report.cooled == 2
    assert_cold(current(tiered, mine), mine)
    assert_cold(current(tiered, only_mine), only_mine)
    # And the CID only alice held is unpinned from its nodes; bob's copy stays, never unpinned
    assert holding(kubos, own) == []
    assert all(kubos[node_id].calls_to("pin/rm", own) for node_id in nodes)
    assert holding(kubos, shared) == sorted(bobs.node_ids)
    assert not any(kubo.calls_to("pin/rm", shared) for kubo in kubos.values())
    assert current(tiered, bobs).info.get("tier") is None
    # And the archives are still held by every request; nothing is due any more
    assert archives(tiered).state(own).holders == 1 and archives(tiered).state(shared).holders == 2
    assert archives(tiered).due_to_cool(clock() + 365 * DAY_MS, 10) == []


def test_a_retrieval_postpones_cooling_by_its_days(tiered, kubos, queue, clock):  # noqa: F811
    alice = a_tenant(tiered, "alice", COLD_ONLY, DAYS)
    cid = a_dag(kubos, 3)
    record = pinned_and_archived(tiered, queue, alice, cid)
    # Given a retrieval on day 5
    clock.days_pass(5)
    tiered.tiering.touch_retrieved(alice, cid)
    # When 7 days have passed since the pin, then it stays hot
    clock.days_pass(2.5)
    assert cool(tiered).cooled == 0
    assert current(tiered, record).info.get("tier") is None
    # And once 7 days passed since the retrieval, it goes cold
    clock.days_pass(5)
    assert cool(tiered).cooled == 1
    assert current(tiered, record).info["tier"] == "cold"
    assert tiered.sent == []


def test_a_cold_request_retrieved_is_sent_to_be_restored_and_cools_again_later(tiered, kubos, queue, clock):  # noqa: F811
    alice = a_tenant(tiered, "alice", COLD_ONLY, DAYS)
    cid = a_dag(kubos, 4)
    record = pinned_and_archived(tiered, queue, alice, cid)
    clock.days_pass(DAYS + 1)
    cool(tiered)
    # When the cold request is retrieved twice
    tiered.tiering.touch_retrieved(alice, cid)
    tiered.tiering.touch_retrieved(alice, cid)
    # Then one restore is asked for it
    assert tiered.sent == [RestoreRequested(alice, record.request_id, record.created_ms, cid, "retrieved")]
    # And its hold is due to cool again N days after the retrieval
    due = archives(tiered).hold_of(ArchiveHolder(cid, alice, record.request_id)).cools_at_ms
    assert clock() + DAYS * DAY_MS - 60_000 < due <= clock() + DAYS * DAY_MS


def test_a_cold_request_retrieved_through_the_service_is_served_from_its_archive_and_restored(
    tiered,
    kubos,  # noqa: F811
    queue,  # noqa: F811
    clock,
):
    # Given a cold request whose CID no node holds any more
    alice = a_tenant(tiered, "alice", COLD_ONLY, DAYS)
    cid = a_dag(kubos, 8)
    record = pinned_and_archived(tiered, queue, alice, cid)
    clock.days_pass(DAYS + 1)
    cool(tiered)
    assert holding(kubos, cid) == []
    # When the tenant retrieves it through the service's retrieval, as wired
    answer = tiered.retrieval.retrieve(Retrieval(alice, cid, Format.CAR))
    # Then it is served from the archive, and its restore is sent
    assert answer.source == "archive"
    assert tiered.sent == [RestoreRequested(alice, record.request_id, record.created_ms, cid, "retrieved")]


def test_a_restore_message_makes_a_cold_request_hot_again_and_it_cools_again_later(tiered, kubos, queue, clock):  # noqa: F811
    # Given a cold request, retrieved: its restore sent
    alice = a_tenant(tiered, "alice", COLD_ONLY, DAYS)
    cid = a_dag(kubos, 9)
    record = pinned_and_archived(tiered, queue, alice, cid)
    clock.days_pass(DAYS + 1)
    cool(tiered)
    tiered.tiering.touch_retrieved(alice, cid)
    (restore,) = tiered.sent
    # When the worker handles it
    tiered.publisher.send(encode(restore))
    queue.run_until_empty()
    # Then the request is on its nodes again, still pinned
    pin = current(tiered, record)
    assert pin.status == "pinned" and pin.node_ids and holding(kubos, cid) == sorted(pin.node_ids)
    # And its days after the retrieval, it goes cold again
    clock.days_pass(DAYS + 0.01)
    assert cool(tiered).cooled == 1
    assert holding(kubos, cid) == [] and current(tiered, record).node_ids == ()


def test_a_cold_request_pinned_again_by_a_new_request_is_sent_to_be_restored(tiered, kubos, queue, clock):  # noqa: F811
    # Given a cold request
    alice = a_tenant(tiered, "alice", COLD_ONLY, DAYS)
    cid = a_dag(kubos, 5)
    old = pinned_and_archived(tiered, queue, alice, cid)
    clock.days_pass(DAYS + 1)
    cool(tiered)
    # When the tenant pins the same CID again
    tiered.pins.create(alice, pin_request(cid))
    batch, _ = queue.run_once()
    follow_ups = [decode(message.body) for message in queue.receive()]
    # Then the new request is pinned, and a restore of the old one follows its archive message
    assert queue.kinds(batch) == ["pin"]
    restores = [message for message in follow_ups if isinstance(message, RestoreRequested)]
    assert restores == [RestoreRequested(alice, old.request_id, old.created_ms, cid, "pinned again")]
    assert sorted(message.kind for message in follow_ups) == ["archive", "restore"]


def test_a_deleted_cold_request_lets_its_archive_go_after_the_grace(tiered, kubos, queue, clock):  # noqa: F811
    alice = a_tenant(tiered, "alice", COLD_ONLY, DAYS)
    cid = a_dag(kubos, 6)
    record = pinned_and_archived(tiered, queue, alice, cid)
    clock.days_pass(DAYS + 1)
    cool(tiered)
    assert archives(tiered).state(cid).state == ARCHIVED
    # When the cold request is deleted
    tiered.pins.delete(alice, record.request_id)
    queue.run_until_empty()
    # Then its archive is orphaned and the sweep deletes it after the grace, not before
    state = archives(tiered).state(cid)
    assert state.holders == 0 and state.orphaned_ms is not None
    grace = tiered.settings.archive_grace_seconds

    def sweep(at_ms: int) -> int:
        return ArchiveSweep(archives(tiered), tiered.s3, BUCKET, "archives/", grace, 10, lambda: at_ms).run()

    assert sweep(state.orphaned_ms + grace * 1000 - 1) == 0
    assert sweep(state.orphaned_ms + grace * 1000 + 1) == 1
    assert tiered.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_cars_are_tagged_for_the_lifecycle_rules_and_indexes_are_not(tiered, kubos, queue):  # noqa: F811
    cid = a_dag(kubos, 7)
    pinned_and_archived(tiered, queue, a_tenant(tiered, "alice"), cid)
    tags = {
        key: tiered.s3.get_object_tagging(Bucket=BUCKET, Key=f"archives/{cid}.{key}")["TagSet"]
        for key in ("car", "idx")
    }
    assert tags == {"car": [{"Key": "archive", "Value": "car"}], "idx": []}
