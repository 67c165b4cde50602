"""A pin's unfinished work comes back as one line of messages, however often
its deliveries overlap: a batch that outlives the queue's visibility timeout
is delivered again while it still runs, and both deliveries continue it; only
one continuation of each turn is worked, the others are dropped unworked."""

from __future__ import annotations

from chalicelib.queue.messages import PinRequested, decode
from chalicelib.worker.batch import process_batch
from tests.support.cids import cid_v1
from tests.worker.conftest import current, failed_ids, holding, pin_request, placed


def run(fleet, batch):
    return process_batch(batch, fleet.worker, fleet.publisher, 20.0)


def unfinished(fleet, kubos, queue, cid):
    """A pin that waits for healthy nodes (none is), so every delivery continues it."""
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))
    for node in fleet.registry.nodes(fresh=True):
        fleet.registry.record_health(node, healthy=False, free_bytes=None)
    (message,) = queue.receive()
    return record, message


def heal(fleet):
    for node in fleet.registry.nodes(fresh=True):
        fleet.registry.record_health(node, healthy=True, free_bytes=None)


def test_deliveries_that_overlap_every_time_keep_the_queued_messages_of_a_pin_bounded(fleet, kubos, queue):
    # given a pin that cannot finish yet
    cid = cid_v1("overlapping deliveries")
    record, message = unfinished(fleet, kubos, queue, cid)

    # when every message of it is delivered twice (each delivery outlives the
    # visibility timeout), round after round
    queued, sizes = [message], []
    for _ in range(4):
        for delivered in queued:
            assert failed_ids(run(fleet, [delivered])) == []
            assert failed_ids(run(fleet, [delivered])) == []
        queued = queue.receive()
        sizes.append(len(queued))

    # then the queue holds the two continuations of the one message worked, not twice as many each round
    assert sizes == [2, 2, 2, 2]
    assert {decode(message.body).turn for message in queued} == {4}  # type: ignore[union-attr]

    # and when the nodes are healthy again, the pin is pinned and its messages end
    heal(fleet)
    assert failed_ids(run(fleet, queued)) == []
    queue.run_until_empty()
    assert current(fleet, record).status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))
    assert queue.receive() == []


def test_a_continuation_of_a_turn_another_took_is_dropped_unworked(fleet, kubos, queue):
    # given a pin whose message was delivered twice, each delivery continuing it
    cid = cid_v1("stale continuation")
    record, message = unfinished(fleet, kubos, queue, cid)
    run(fleet, [message])
    run(fleet, [message])
    first, second = queue.receive()
    assert decode(first.body) == decode(second.body)

    # when one continuation is worked (and delivered again, as SQS may)
    assert failed_ids(run(fleet, [first])) == []
    assert failed_ids(run(fleet, [first])) == []
    continued = queue.receive()
    before = current(fleet, record)

    # then the other of the same turn is dropped: nothing written, nothing sent
    assert failed_ids(run(fleet, [second])) == []
    assert current(fleet, record) == before
    assert queue.receive() == []
    # and the line goes on from the continuations of the one worked
    assert all(isinstance(decode(body.body), PinRequested) for body in continued)
    heal(fleet)
    assert failed_ids(run(fleet, continued[:1])) == []
    assert current(fleet, record).status == "pinned"


def test_a_late_copy_of_the_first_message_continues_nothing_once_the_line_moved_on(fleet, kubos, queue):
    # given a pin continued once (its first message worked, its continuation taken)
    cid = cid_v1("late first message")
    record, message = unfinished(fleet, kubos, queue, cid)
    run(fleet, [message])
    (continuation,) = queue.receive()
    assert failed_ids(run(fleet, [continuation])) == []
    (line,) = queue.receive()

    # when a copy of the first message comes late (the outbox sweeper sent it again)
    assert failed_ids(run(fleet, [message])) == []
    (late,) = queue.receive()

    # then its continuation is dropped unworked; the line's own goes on
    before = current(fleet, record)
    assert failed_ids(run(fleet, [late])) == []
    assert current(fleet, record) == before
    assert queue.receive() == []
    assert failed_ids(run(fleet, [line])) == []
    assert len(queue.receive()) == 1
