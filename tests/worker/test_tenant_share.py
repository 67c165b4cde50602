"""One tenant cannot hold every place of a worker: past its share, its
messages are deferred (sent again later, not failed) and other tenants' run."""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.queue import messages
from chalicelib.queue.messages import DrainNode, PinRequested
from chalicelib.worker.batch import QueuedMessage, TenantShare, process_batch
from chalicelib.worker.outcomes import Done

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


class StubWorker:
    """Records what it was asked to work on; the messages of the tenants in
    `held` keep working until `release` is set."""

    def __init__(self, share: TenantShare, held: tuple[str, ...] = ()) -> None:
        self.tenant_share = share
        self.handled: list[str] = []
        self.held = held
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()

    def handle(self, message: Any, token: str, deadline: float) -> Done:
        with self._lock:
            self.handled.append(token)
        self.started.release()
        if getattr(message, "tenant_id", None) in self.held:
            self.release.wait(10)
        return Done()


class RecordingPublisher:
    """Records sends; sets `after` once `count` were sent."""

    def __init__(self, count: int = 0, after: threading.Event | None = None) -> None:
        self.sent: list[tuple[str, int]] = []
        self._count, self._after = count, after

    def send(self, body: str, delay_seconds: int = 0) -> None:
        self.sent.append((body, delay_seconds))
        if self._after is not None and len(self.sent) >= self._count:
            self._after.set()


def pin(tenant_id: str, n: int) -> QueuedMessage:
    body = messages.encode(PinRequested(tenant_id, f"{tenant_id}-{n}", n, CID, ("node-1",)))
    return QueuedMessage(f"{tenant_id}-{n}", body)


def test_a_tenant_past_its_share_is_deferred_and_another_tenant_runs() -> None:
    # given: a worker that lets 2 messages of a tenant work at once; the rest wait briefly for
    # a place, then are deferred by 1 s (its places are not stuck: its clock stands still)
    share = TenantShare(2, stuck_delay_seconds=30, busy_delay_seconds=1, wait_seconds=0.05, clock=lambda: 0.0)
    # and: alice's messages keep working until two were deferred
    worker = StubWorker(share, held=("alice",))
    requeue = RecordingPublisher(count=2, after=worker.release)
    alice = [pin("alice", n) for n in range(4)]
    bob = pin("bob", 0)
    drain = QueuedMessage("drain", messages.encode(DrainNode("node-1", 5)))

    # when: one batch holds 4 of alice's messages, bob's and a drain (no tenant)
    result = process_batch([*alice, bob, drain], worker, requeue, 20.0)  # type: ignore[arg-type]

    # then: two of alice's ran and the other two were sent again, delayed; bob's and the drain ran
    ran = [token for token in worker.handled if token.startswith("alice")]
    assert len(ran) == 2
    assert sorted(requeue.sent) == sorted((m.body, 1) for m in alice if m.message_id not in ran)
    assert {"bob-0", "drain"} <= set(worker.handled)
    # and: nothing failed (a deferral spends no receive toward the dead-letter queue)
    assert result == {"batchItemFailures": []}


def test_a_message_past_its_share_takes_a_place_freed_while_it_waits() -> None:
    # given: a share of 1 and quick work (nothing held)
    worker, requeue = StubWorker(TenantShare(1, stuck_delay_seconds=30, wait_seconds=10)), RecordingPublisher()

    # when: a batch holds three of alice's messages
    result = process_batch([pin("alice", n) for n in range(3)], worker, requeue, 20.0)  # type: ignore[arg-type]

    # then: each ran in turn, none was deferred (a tenant alone keeps the worker busy)
    assert sorted(worker.handled) == ["alice-0", "alice-1", "alice-2"]
    assert requeue.sent == [] and result == {"batchItemFailures": []}


def test_once_every_place_was_held_for_long_the_next_message_is_deferred_at_once_for_long() -> None:
    # given: a share of 1 that would wait 1,000 s for a place, and alice's place taken at t=0
    now = [0.0]
    share = TenantShare(1, stuck_delay_seconds=30, wait_seconds=1000, stuck_seconds=5, clock=lambda: now[0])
    assert share.take("alice") == 0.0
    # and: the place has been held 5 s (a fetch that stalls)
    now[0] = 5.0

    # when: another of alice's messages asks for a place
    asked: list[float | None] = []
    asking = threading.Thread(target=lambda: asked.append(share.take("alice")))
    asking.start()
    asking.join(timeout=30)

    # then: it is refused without waiting out the 1,000 s, to come back after the long delay
    assert asked == [None]
    assert share.delay_for("alice") == 30
    # and: another tenant still gets a place
    assert share.take("bob") == 5.0
    # and: the process says a tenant holds all its places (the local pollers then take one message at a time)
    assert share.saturated()
    share.give_back("alice", 0.0)
    share.give_back("bob", 5.0)
    assert not share.saturated()


def test_the_share_counts_what_other_batches_of_the_process_have_at_work() -> None:
    # given: one worker process whose share is 1, and a batch still working on alice's message
    share = TenantShare(1, stuck_delay_seconds=30, wait_seconds=0.05)
    worker, requeue = StubWorker(share, held=("alice",)), RecordingPublisher()
    first = threading.Thread(target=process_batch, args=([pin("alice", 0)], worker, requeue, 20.0))
    first.start()
    assert worker.started.acquire(timeout=10)

    # when: another batch (another poller) brings alice's next message and bob's
    second = process_batch([pin("alice", 1), pin("bob", 0)], worker, requeue, 20.0)  # type: ignore[arg-type]
    worker.release.set()
    first.join()

    # then: alice's second message was deferred, bob's ran
    assert [body for body, _ in requeue.sent] == [pin("alice", 1).body]
    assert sorted(worker.handled) == ["alice-0", "bob-0"]
    assert second == {"batchItemFailures": []}
    # and: once all is done, alice's share is free again
    assert share.take("alice") is not None


def test_a_deferral_that_cannot_be_sent_fails_the_message_so_sqs_brings_it_back() -> None:
    # given: a share of 1 and a queue that refuses sends
    class Refusing(RecordingPublisher):
        def send(self, body: str, delay_seconds: int = 0) -> None:
            raise RuntimeError("SQS unavailable")

    worker = StubWorker(TenantShare(1, stuck_delay_seconds=30, wait_seconds=0.05))
    worker.tenant_share.take("alice")  # another batch of this process works on alice's message

    # when: a batch holds another of alice's messages
    result = process_batch([pin("alice", 1)], worker, Refusing(), 20.0)  # type: ignore[arg-type]

    # then: the one it could not defer is failed, not lost
    assert result == {"batchItemFailures": [{"itemIdentifier": "alice-1"}]}
