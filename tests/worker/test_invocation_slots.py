"""One tenant cannot hold more than its slots of the worker invocations: a
batch takes a slot per tenant in it, and defers at once the messages of a
tenant whose slots are all held elsewhere, so the others' run."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Mapping

from chalicelib.busy import StorageBusy
from chalicelib.queue import messages
from chalicelib.queue.messages import DrainNode
from chalicelib.worker.batch import QueuedMessage, TenantShare, process_batch
from chalicelib.worker.invocation_slots import ERRORS_METRIC, InvocationSlots, Refused, Slot
from tests.support.memory.slots import MemorySlots
from tests.worker.test_tenant_share import RecordingPublisher, StubWorker, pin

NOW = 1_000_000
BUSY, STUCK = 1, 300


def slots_of(repository: object, limit: int, clock: list[int] | None = None, **extra: object) -> InvocationSlots:
    """Slots whose first try is slot 0, on a clock standing at NOW unless given."""
    now = clock if clock is not None else [NOW]
    return InvocationSlots(
        repository,  # type: ignore[arg-type]
        limit,
        margin_seconds=15,
        busy_delay_seconds=BUSY,
        stuck_delay_seconds=STUCK,
        clock=lambda: now[0],
        first_slot=lambda limit: 0,
        **extra,  # type: ignore[arg-type]
    )


def worker() -> StubWorker:
    return StubWorker(TenantShare(10, stuck_delay_seconds=STUCK, wait_seconds=0.05))


def test_a_tenant_holding_all_its_slots_is_deferred_at_once_and_another_tenant_runs() -> None:
    # given: alice holds both her slots (two other invocations work on her messages)
    repository = MemorySlots({("alice", 0): NOW + 20_000, ("alice", 1): NOW + 25_000})
    slots, stub, requeue = slots_of(repository, 2), worker(), RecordingPublisher()
    alice = [pin("alice", n) for n in range(3)]
    drain = QueuedMessage("drain", messages.encode(DrainNode("node-1", 5)))

    # when: a batch holds alice's messages, bob's and a drain (no tenant)
    result = process_batch([*alice, pin("bob", 0), drain], stub, requeue, 15.0, slots)  # type: ignore[arg-type]

    # then: alice's were sent again after the short delay, none ran; bob's and the drain ran
    assert sorted(requeue.sent) == sorted((message.body, BUSY) for message in alice)
    assert sorted(stub.handled) == ["bob-0", "drain"]
    # and: nothing failed (a deferral spends no receive toward the dead-letter queue)
    assert result == {"batchItemFailures": []}
    # and: bob's slot was given back, alice's leases are untouched
    assert repository.held == {("alice", 0): NOW + 20_000, ("alice", 1): NOW + 25_000}


def test_a_batch_holds_one_slot_per_tenant_until_the_lambda_ends_and_gives_it_back() -> None:
    # given: one slot a tenant, and bob's message kept working
    repository = MemorySlots()
    slots, stub = slots_of(repository, 1), StubWorker(TenantShare(10, stuck_delay_seconds=STUCK), held=("bob",))
    batch = threading.Thread(
        target=process_batch, args=([pin("bob", 0), pin("bob", 1)], stub, RecordingPublisher(), 15.0, slots)
    )

    # when: the batch works on bob's two messages
    batch.start()
    assert stub.started.acquire(timeout=10) and stub.started.acquire(timeout=10)

    # then: bob holds one slot for both, until the batch's deadline plus the margin (the Lambda's end)
    assert repository.held == {("bob", 0): NOW + 15_000 + 15_000}
    # and: another batch's message of bob's is refused meanwhile
    assert isinstance(slots.take("bob", 15.0), Refused)
    # when: bob's messages are done, then the slot is free again
    stub.release.set()
    batch.join(timeout=10)
    assert repository.held == {}


def test_a_tenant_gives_its_slot_back_as_soon_as_its_last_message_in_the_batch_is_done() -> None:
    # given: a batch with alice's quick message and bob's, which keeps working
    repository = MemorySlots()
    slots, stub = slots_of(repository, 1), StubWorker(TenantShare(10, stuck_delay_seconds=STUCK), held=("bob",))
    batch = threading.Thread(
        target=process_batch, args=([pin("alice", 0), pin("bob", 0)], stub, RecordingPublisher(), 15.0, slots)
    )

    # when: the batch runs, and alice's message is done
    batch.start()
    for _ in range(1000):
        if "alice-0" in stub.handled and ("alice", 0) not in repository.held:
            break
        time.sleep(0.01)

    # then: alice's slot is free while bob's is still held
    assert "alice-0" in stub.handled and ("alice", 0) not in repository.held
    assert ("bob", 0) in repository.held
    assert isinstance(slots.take("alice", 15.0), Slot)
    stub.release.set()
    batch.join(timeout=10)


def test_a_slot_whose_lease_ended_is_taken_over() -> None:
    # given: alice's only slot left behind by an invocation that died (its lease ended)
    repository = MemorySlots({("alice", 0): NOW - 1})
    slots, stub, requeue = slots_of(repository, 1), worker(), RecordingPublisher()

    # when: a batch brings alice's message
    result = process_batch([pin("alice", 0)], stub, requeue, 15.0, slots)  # type: ignore[arg-type]

    # then: it ran, nothing was deferred, and the slot was given back
    assert stub.handled == ["alice-0"] and requeue.sent == []
    assert result == {"batchItemFailures": []}
    assert repository.held == {}


def test_a_take_that_meets_a_held_slot_reads_the_leases_and_takes_a_free_one() -> None:
    # given: alice's slot 0 held, slot 1 left behind with an ended lease, slot 2 free
    repository = MemorySlots({("alice", 0): NOW + 20_000, ("alice", 1): NOW - 5})

    # when: a batch tries slot 0 first
    taken = slots_of(repository, 3).take("alice", 10.0)

    # then: it took the first slot the read showed free or expired
    assert taken == Slot("alice", 1, NOW + 25_000)


def test_two_batches_racing_for_the_last_slot_one_wins() -> None:
    # given: alice has 2 slots, slot 0 held, and two batches reaching the take of slot 1 together
    class Together(MemorySlots):
        barrier = threading.Barrier(2)

        def take(self, tenant_id: str, slot: int, until_ms: int, now_ms: int) -> bool:
            if slot == 1:
                self.barrier.wait(timeout=10)
            return super().take(tenant_id, slot, until_ms, now_ms)

    repository = Together({("alice", 0): NOW + 20_000})
    slots = slots_of(repository, 2)
    got: list[Slot | Refused] = []
    lock = threading.Lock()

    def take() -> None:
        outcome = slots.take("alice", 10.0)
        with lock:
            got.append(outcome)

    # when: both take
    racers = [threading.Thread(target=take) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=10)

    # then: exactly one holds slot 1; the other read both slots held and was refused
    assert sorted(type(outcome).__name__ for outcome in got) == ["Refused", "Slot"]
    assert Slot("alice", 1, NOW + 25_000) in got
    assert repository.held == {("alice", 0): NOW + 20_000, ("alice", 1): NOW + 25_000}


def test_a_tenant_whose_slots_stay_held_has_a_few_batches_back_at_the_lease_end_and_a_backlog_kept_away() -> None:
    # given: alice's one slot held by the same invocation until NOW + 25 s, read at NOW
    now = [NOW]
    repository = MemorySlots({("alice", 0): NOW + 25_000})
    slots = slots_of(repository, 1, clock=now, few_refusals=2)
    assert slots.take("alice", 10.0) == Refused(BUSY)

    # when: 5 s later the same lease still holds it (a large DAG, or content that does not come)
    now[0] = NOW + 5_000

    # then: her next two batches come back when that lease ends (20 s on), where the slot is free at the latest
    assert slots.take("alice", 10.0) == Refused(20)
    now[0] = NOW + 5_500
    assert slots.take("alice", 10.0) == Refused(20)
    # and: more are a backlog, kept away for long
    assert slots.take("alice", 10.0) == Refused(STUCK)
    # when: the slot turns over (another batch of hers took it), then back to the short delay
    repository.held[("alice", 0)] = NOW + 40_000
    assert slots.take("alice", 10.0) == Refused(BUSY)


def test_a_lease_ending_after_the_long_delay_defers_no_longer_than_it() -> None:
    # given: alice's one slot held, unchanged for 5 s, by a lease ending far later than the long delay
    now = [NOW]
    repository = MemorySlots({("alice", 0): NOW + 3_600_000})
    slots = slots_of(repository, 1, clock=now)
    assert slots.take("alice", 10.0) == Refused(BUSY)
    now[0] = NOW + 5_000

    # then: her next batch is deferred by the long delay, not until the lease ends
    assert slots.take("alice", 10.0) == Refused(STUCK)


def test_a_lease_store_that_fails_never_fails_a_pin() -> None:
    # given: a lease store that is throttled on every take and give-back
    class Throttled(MemorySlots):
        def take(self, tenant_id: str, slot: int, until_ms: int, now_ms: int) -> bool:
            raise StorageBusy("throttled")

        def leases(self, tenant_id: str) -> Mapping[int, int]:
            raise StorageBusy("throttled")

        def give_back(self, tenant_id: str, slot: int, until_ms: int) -> None:
            raise StorageBusy("throttled")

    metrics = io.StringIO()
    slots = slots_of(Throttled(), 1, metrics=metrics, stage="dev")
    stub, requeue = worker(), RecordingPublisher()

    # when: a batch brings alice's and bob's messages
    result = process_batch([pin("alice", 0), pin("bob", 0)], stub, requeue, 15.0, slots)  # type: ignore[arg-type]

    # then: both ran as if their slots were taken, nothing deferred or failed
    assert sorted(stub.handled) == ["alice-0", "bob-0"]
    assert requeue.sent == [] and result == {"batchItemFailures": []}
    # and: each failed take was counted (a slot taken on trust has nothing to give back)
    lines = [json.loads(line) for line in metrics.getvalue().splitlines()]
    assert [line[ERRORS_METRIC] for line in lines] == [1, 1]


def test_a_lease_that_cannot_be_given_back_is_counted_and_ends_by_itself() -> None:
    # given: a lease store whose give-backs fail
    class NoGiveBack(MemorySlots):
        def give_back(self, tenant_id: str, slot: int, until_ms: int) -> None:
            raise StorageBusy("throttled")

    metrics, repository = io.StringIO(), NoGiveBack()
    slots = slots_of(repository, 1, metrics=metrics, stage="dev")

    # when: a batch of alice's ends
    result = process_batch([pin("alice", 0)], worker(), RecordingPublisher(), 15.0, slots)  # type: ignore[arg-type]

    # then: its message succeeded, the failure was counted, and the lease stays until the Lambda's end
    assert result == {"batchItemFailures": []}
    assert json.loads(metrics.getvalue())[ERRORS_METRIC] == 1
    assert repository.held == {("alice", 0): NOW + 30_000}
