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
    """Records what it was asked to work on; the messages named in `held`
    keep working until `release` is set."""

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
        if token in self.held:
            self.release.wait(10)
        return Done()


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def send(self, body: str, delay_seconds: int = 0) -> None:
        self.sent.append((body, delay_seconds))


def pin(tenant_id: str, n: int) -> QueuedMessage:
    body = messages.encode(PinRequested(tenant_id, f"{tenant_id}-{n}", n, CID, ("node-1",)))
    return QueuedMessage(f"{tenant_id}-{n}", body)


def test_a_tenant_past_its_share_is_deferred_and_another_tenant_runs() -> None:
    # given: a worker that lets 2 messages of a tenant work at once, deferring the rest by 30 s
    worker, requeue = StubWorker(TenantShare(2, defer_seconds=30)), RecordingPublisher()
    alice = [pin("alice", n) for n in range(4)]
    bob = pin("bob", 0)
    drain = QueuedMessage("drain", messages.encode(DrainNode("node-1", 5)))

    # when: one batch holds 4 of alice's messages, bob's and a drain (no tenant)
    result = process_batch([*alice, bob, drain], worker, requeue, 20.0)  # type: ignore[arg-type]

    # then: alice's first two, bob's and the drain ran; alice's last two were sent again, delayed
    assert sorted(worker.handled) == ["alice-0", "alice-1", "bob-0", "drain"]
    assert requeue.sent == [(alice[2].body, 30), (alice[3].body, 30)]
    # and: nothing failed (a deferral spends no receive toward the dead-letter queue)
    assert result == {"batchItemFailures": []}


def test_the_share_counts_what_other_batches_of_the_process_have_at_work() -> None:
    # given: one worker process whose share is 1, and a batch still working on alice's message
    share = TenantShare(1, defer_seconds=30)
    worker, requeue = StubWorker(share, held=("alice-0",)), RecordingPublisher()
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
    assert share.take("alice")


def test_a_deferral_that_cannot_be_sent_fails_the_message_so_sqs_brings_it_back() -> None:
    # given: a share of 1 and a queue that refuses sends
    class Refusing(RecordingPublisher):
        def send(self, body: str, delay_seconds: int = 0) -> None:
            raise RuntimeError("SQS unavailable")

    worker = StubWorker(TenantShare(1, defer_seconds=30))

    # when: a batch holds two of alice's messages
    result = process_batch([pin("alice", 0), pin("alice", 1)], worker, Refusing(), 20.0)  # type: ignore[arg-type]

    # then: the one it could not defer is failed, not lost
    assert result == {"batchItemFailures": [{"itemIdentifier": "alice-1"}]}
