"""The cooling sweep and the retrieval touch on memory repositories: bounded
and resumable runs, the writes a retrieval costs, and the races the sweep
must lose or finish (a pin written meanwhile, a node failing to unpin, a run
cut short, a retrieval while it cools)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from chalicelib.busy import StorageBusy
from chalicelib.cold.archive_repository import ArchivedCar, ArchiveHolder, ArchiveLease
from chalicelib.cold.tiering import RETRY_MS, Tiering
from chalicelib.cold.tiers import COLD_ONLY, DAY_MS, HOT_COLD, TierPolicies
from chalicelib.pins.pin import Pin
from chalicelib.pins.request_ids import new_request_id
from chalicelib.queue.messages import QueueMessage, RestoreRequested
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.tenants.repository import Tenant
from tests.support.memory.archives import MemoryArchives
from tests.support.memory.pins import MemoryPinRepository
from tests.support.memory.tenants import MemoryTenants

DAYS = 7
START = 1_700_000_000_000
NODES = ("node-0", "node-1")


class Clock:
    def __init__(self) -> None:
        self.ms = START

    def __call__(self) -> int:
        return self.ms


@dataclass
class Release:
    """The worker's release as the sweep sees it: the calls, and faults to inject."""

    calls: list[tuple[str, tuple[str, ...], str, str, str]] = field(default_factory=list)
    failing: bool = False
    crash: bool = False
    # What happens elsewhere while the nodes unpin.
    meanwhile: Callable[[], None] = lambda: None

    def __call__(self, cid: str, node_ids: Sequence[str], tenant_id: str, request_id: str, token: str) -> bool:
        self.calls.append((cid, tuple(node_ids), tenant_id, request_id, token))
        self.meanwhile()
        if self.crash:
            raise StorageBusy("the invocation died here")
        return not self.failing


@dataclass
class Cold:
    tiering: Tiering
    archives: MemoryArchives
    pins: MemoryPinRepository
    tenants: MemoryTenants
    release: Release
    clock: Clock
    sent: list[QueueMessage]

    def request(self, cid: str, created_ms: int, tenant_id: str = "alice", archived: bool = True) -> Pin:
        """A pinned request of `tenant_id` whose CID is archived, its hold taken as the archiver takes it."""
        request_id = new_request_id(created_ms)
        pin = Pin(tenant_id, created_ms, request_id, "queued", cid, cid, node_ids=NODES)
        self.pins.create(pin, OutboxMessage("shard#0", f"{created_ms}#e", "{}", created_ms))
        info = {"replicas": ",".join(NODES), "status_details": "pinned on 2 nodes", "cold": "archived"}
        pinned = self.pins.update(self.pins.get(tenant_id, created_ms), status="pinned", info=info)
        self.archives.hold(ArchiveHolder(cid, tenant_id, request_id), self.tiering.cools_at(tenant_id))
        if archived and self.archives.take_lease(cid, ArchiveLease("m", self.clock.ms + 1000), self.clock.ms):
            car = ArchivedCar(f"{cid}.car", f"{cid}.idx", 10, "ab", "baga", "bafkzcib", 128, self.clock.ms)
            self.archives.record_archived(cid, "m", car)
        return pinned

    def cool(self, limit: int = 100, seconds: float = 20.0):
        return self.tiering.cool(time.monotonic() + seconds, limit)

    def pin(self, record: Pin) -> Pin:
        stored = self.pins.get(record.tenant_id, record.created_ms)
        assert stored is not None
        return stored


@pytest.fixture
def cold() -> Cold:
    tenants, clock, release, sent = MemoryTenants(), Clock(), Release(), []
    tenants.add(Tenant("alice", "alice", 1, COLD_ONLY, DAYS))
    tenants.add(Tenant("bob", "bob", 1))
    archives, pins = MemoryArchives(), MemoryPinRepository()
    policies = TierPolicies(tenants, HOT_COLD, 30, cache_seconds=0, clock=clock)
    tiering = Tiering(archives, policies, pins, release=release, send=sent.append, clock=clock, page=2)
    return Cold(tiering, archives, pins, tenants, release, clock, sent)


def test_a_run_looks_at_no_more_than_its_limit_and_the_next_goes_on(cold):
    # Given five cold-only requests due
    records = [cold.request(f"bafy{i}", START + i) for i in range(5)]
    cold.clock.ms += DAYS * DAY_MS + 1
    # When the sweep runs with a limit of 2, three times
    reports = [cold.cool(limit=2) for _ in range(3)]
    # Then each run cools at most 2, the soonest due first, and together all five
    assert [report.cooled for report in reports] == [2, 2, 1]
    assert [call[3] for call in cold.release.calls] == [record.request_id for record in records]
    assert {cold.pin(record).info["tier"] for record in records} == {"cold"}


def test_a_run_past_its_deadline_does_nothing(cold):
    cold.request("bafy1", START)
    cold.clock.ms += DAYS * DAY_MS + 1
    assert cold.cool(seconds=-1).as_dict() == {"cooled": 0, "later": 0, "dropped": 0}
    assert cold.release.calls == []


def test_a_hot_cold_tenants_holds_are_never_due_and_its_retrievals_cost_nothing(cold):
    steps: list[str] = []
    record = cold.request("bafy1", START, tenant_id="bob")
    cold.archives.step = steps.append
    cold.clock.ms += 365 * DAY_MS
    cold.tiering.touch_retrieved("bob", "bafy1")
    assert steps == []
    assert cold.cool().cooled == 0 and cold.pin(record).info.get("tier") is None


def test_retrievals_write_at_most_once_a_day(cold):
    # Given a cold-only request just pinned, retrieved every hour for three days
    record = cold.request("bafy1", START)
    holder = ArchiveHolder("bafy1", "alice", record.request_id)
    steps: list[str] = []
    cold.archives.step = steps.append
    for _ in range(72):
        cold.clock.ms += 3600 * 1000
        cold.tiering.touch_retrieved("alice", "bafy1")
    # Then each one read the holds, and only those a day after the last write
    # (the pin's own time the first day) moved its cooling forward
    assert steps.count("holds_of") == 72 and steps.count("set_cooling") == 2
    assert cold.archives.hold_of(holder).cools_at_ms == START + 50 * 3600 * 1000 + DAYS * DAY_MS


def test_a_pin_written_while_it_cools_waits_and_a_later_run_cools_it(cold):
    record = cold.request("bafy1", START)
    cold.clock.ms += DAYS * DAY_MS + 1
    # Given another writer (a drain, a replace) writing the pin just before the sweep's first write
    cold.pins.before_write = _once(lambda pin: cold.pins.write_meanwhile(pin), cold.pins)
    # When the sweep runs, then nothing is released and the hold is due again later
    report = cold.cool()
    assert (report.cooled, report.later, cold.release.calls) == (0, 1, [])
    assert cold.pin(record).info.get("tier") is None
    # And a run once that time came cools it
    cold.clock.ms += RETRY_MS
    assert cold.cool().cooled == 1 and cold.pin(record).info["tier"] == "cold"


def test_a_node_failing_to_unpin_leaves_it_cooling_and_a_later_run_finishes_with_the_same_token(cold):
    record = cold.request("bafy1", START)
    cold.clock.ms += DAYS * DAY_MS + 1
    cold.release.failing = True
    # When a node fails to unpin, then the request stays pinned, cooling, its nodes kept
    assert cold.cool().later == 1
    pin = cold.pin(record)
    assert (pin.status, pin.info["tier"], pin.node_ids) == ("pinned", "cooling", NODES)
    # When the node is back and the retry is due, then it is cold, released with the same token
    cold.release.failing = False
    cold.clock.ms += RETRY_MS
    assert cold.cool().cooled == 1
    assert cold.pin(record).info["tier"] == "cold" and cold.pin(record).node_ids == ()
    first, second = cold.release.calls
    assert first == second and first[1] == NODES


def test_a_run_cut_short_is_finished_by_the_next_even_if_the_tenant_left_cold_only(cold):
    record = cold.request("bafy1", START)
    cold.clock.ms += DAYS * DAY_MS + 1
    # Given a run that died while releasing
    cold.release.crash = True
    with pytest.raises(StorageBusy):
        cold.cool()
    assert cold.pin(record).info["tier"] == "cooling"
    # When the tenant is hot+cold now and the next run comes
    cold.tenants.set_tier("alice", HOT_COLD, None)
    cold.release.crash = False
    # Then it finishes what was begun: its holds are not left half released
    assert cold.cool().cooled == 1
    assert cold.pin(record).info["tier"] == "cold" and len(cold.release.calls) == 2


def test_a_retrieval_while_it_cools_leaves_it_for_the_next_retrieval_to_restore(cold):
    record = cold.request("bafy1", START)
    cold.clock.ms += DAYS * DAY_MS + 1
    # Given a retrieval that lands while the sweep releases its hot holds (served hot, no restore asked)
    cold.release.meanwhile = lambda: cold.tiering.touch_retrieved("alice", "bafy1")
    # When the sweep finishes, then the request is cold and not due
    assert cold.cool().cooled == 1
    assert cold.pin(record).info["tier"] == "cold" and cold.sent == []
    assert cold.archives.due_to_cool(cold.clock.ms + 365 * DAY_MS, 10) == []
    # And the next retrieval, within the day, restores it
    cold.release.meanwhile = lambda: None
    cold.clock.ms += 60_000
    cold.tiering.touch_retrieved("alice", "bafy1")
    assert cold.sent == [RestoreRequested("alice", record.request_id, record.created_ms, "bafy1", "retrieved")]


def test_holds_whose_request_is_gone_or_archive_failed_are_no_longer_due(cold):
    gone = cold.request("bafy1", START)
    unarchived = cold.request("bafy2", START + 1, archived=False)
    cold.archives.record_failure("bafy2", None, "cut", failed=True)
    cold.pins.delete(cold.pin(gone), OutboxMessage("shard#0", "x#e", "{}", 1))
    cold.clock.ms += DAYS * DAY_MS + 1
    assert cold.cool().dropped == 2
    assert cold.archives.due_to_cool(cold.clock.ms + 365 * DAY_MS, 10) == []
    assert cold.pin(unarchived).info.get("tier") is None and cold.release.calls == []


def _once(hook, pins: MemoryPinRepository):
    """`hook` before the next write only."""

    def run(pin: Pin) -> None:
        pins.before_write = lambda pin: None
        hook(pin)

    return run


def test_a_request_made_hot_again_is_not_restored_again_and_cools_again_after_its_days(cold):
    # Given a cold request retrieved (a restore asked, the hold due again in 7 days)
    record = cold.request("bafy1", START)
    cold.clock.ms += DAYS * DAY_MS + 1
    cold.cool()
    cold.tiering.touch_retrieved("alice", "bafy1")
    assert len(cold.sent) == 1
    # and the restore done: on its nodes again (whether or not it rewrote `tier`)
    cold.pins.update(cold.pin(record), node_ids=NODES)
    # When retrieved a day later, then no second restore is asked
    cold.clock.ms += DAY_MS + 1
    cold.tiering.touch_retrieved("alice", "bafy1")
    assert len(cold.sent) == 1
    # And 7 days after that retrieval, it goes cold again
    cold.clock.ms += DAYS * DAY_MS
    assert cold.cool().cooled == 1
    assert cold.pin(record).node_ids == () and len(cold.release.calls) == 2
