"""Messages that failed every delivery end in the dead-letter queue: their
requests fail with a reason instead of staying queued or pinning forever."""

from __future__ import annotations

import pytest

from chalicelib.queue.messages import decode
from chalicelib.worker.batch import QueuedMessage, process_batch
from tests.support.cids import cid_v1
from tests.worker.conftest import current, failed_ids, holders, holding, info_of, pin_request, placed, sqs_event


@pytest.fixture
def dead_letter(app_client):
    """Hands messages to the dead-letter Lambda, as SQS would."""

    def deliver(messages: list[QueuedMessage]) -> None:
        dead = [QueuedMessage("dlq-" + message.message_id, message.body) for message in messages]
        app_client.lambda_.invoke("pin_dead_letters", sqs_event(dead, "pinning-service-pins-dlq"))

    return deliver


def test_a_dead_lettered_queued_request_fails_with_a_reason(fleet, kubos, queue, user_api, dead_letter):
    # given a request whose message never got through (still queued)
    request_id = user_api.pin(cid_v1("dead-queued"))["requestid"]
    messages = queue.receive()

    # when its message reaches the dead-letter queue
    dead_letter(messages)

    # then the user sees it failed, with a reason, not queued forever
    status = user_api.request("GET", f"/pins/{request_id}").json
    assert status["status"] == "failed"
    assert status["info"]["failed_reason"]
    assert user_api.list(status="queued")["count"] == 0


def test_a_dead_lettered_pinning_request_fails_with_its_last_error_and_leaves_nothing_pinned(fleet, kubos, queue):
    # given a request one of whose nodes keeps answering 500 (the other pinned it)
    cid = cid_v1("dead-pinning")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    broken = placed(fleet, cid)[0]
    kubos[broken].fail("pin/add", "blockstore: disk I/O error", cid=cid, times=100)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()
    for _ in range(3):  # every delivery SQS allows
        assert failed_ids(process_batch([message], fleet.worker, fleet.publisher, 20.0)) == [message.message_id]
    assert current(fleet, record).status == "pinning"
    assert holding(kubos, cid) == sorted(set(placed(fleet, cid)) - {broken})

    # when the message is dead-lettered
    fleet.worker.give_up(decode(message.body), "dlq-" + message.message_id)

    # then the request failed, saying why
    stored = current(fleet, record)
    assert stored.status == "failed"
    reason = info_of(stored)["failed_reason"]
    assert "gave up" in reason and "disk I/O error" in reason
    # and what the healthy node pinned for it was let go
    assert holding(kubos, cid) == []
    assert all(holders(node_id, cid) == 0 for node_id in kubos)


def test_a_dead_lettered_request_is_let_go_where_nodes_answer_and_what_one_keeps_is_logged(fleet, kubos, queue, caplog):
    # given a request one of whose nodes keeps refusing to pin it, and the
    # node that did pin it down by the time its message is dead-lettered
    cid = cid_v1("dead-and-down")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    broken, down = placed(fleet, cid)
    kubos[broken].fail("pin/add", "blockstore: disk I/O error", cid=cid, times=100)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()
    assert failed_ids(process_batch([message], fleet.worker, fleet.publisher, 20.0)) == [message.message_id]
    kubos[down].down()

    # when the message is dead-lettered
    fleet.worker.give_up(decode(message.body), "dlq-" + message.message_id)

    # then the request failed and holds nothing; the node that is down keeps the content, logged
    assert current(fleet, record).status == "failed"
    assert holders(broken, cid) == holders(down, cid) == 0
    assert holding(kubos, cid) == [down]
    assert any("could not unpin an abandoned pin" in line for line in caplog.messages)


def test_a_dead_letter_for_a_pinned_request_leaves_it_pinned(fleet, kubos, queue, dead_letter):
    cid = cid_v1("dead-but-pinned")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()
    assert failed_ids(process_batch([message], fleet.worker, fleet.publisher, 20.0)) == []

    dead_letter([message])

    stored = current(fleet, record)
    assert stored.status == "pinned"
    assert "failed_reason" not in info_of(stored)
    assert holding(kubos, cid) == sorted(placed(fleet, cid))
    assert all(len(kubo.calls_to("pin/rm")) == 0 for kubo in kubos.values())


def test_a_dead_letter_for_a_deleted_request_does_not_bring_it_back(fleet, kubos, queue, dead_letter):
    cid = cid_v1("dead-deleted")
    record = fleet.pins.create("alice", pin_request(cid))
    fleet.pins.delete("alice", record.request_id)
    messages = queue.receive()

    dead_letter(messages)

    assert fleet.store.get("alice", record.created_ms) is None


def test_a_dead_lettered_unpin_is_logged_and_changes_nothing(fleet, kubos, queue, dead_letter, caplog):
    cid = cid_v1("dead-unpin")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))
    queue.run_until_empty()
    fleet.pins.delete("alice", record.request_id)
    unpins = queue.receive()

    dead_letter(unpins)

    assert any("unpin abandoned" in message for message in caplog.messages)
    assert fleet.store.get("alice", record.created_ms) is None


def test_a_dead_lettered_replacement_of_a_since_deleted_request_leaves_the_old_content_unpinned(
    fleet, kubos, queue, dead_letter
):
    # given content A pinned, then replaced by B, then B deleted, while the
    # pin message for B never got through (every delivery failed)
    old_cid, new_cid = cid_v1("dlq-replaced-a"), cid_v1("dlq-replaced-b")
    for kubo in kubos.values():
        kubo.add_content(old_cid, blocks=2)
    old = fleet.pins.create("alice", pin_request(old_cid))
    queue.run_until_empty()
    assert holding(kubos, old_cid) == sorted(placed(fleet, old_cid))
    new = fleet.pins.replace("alice", old.request_id, pin_request(new_cid))
    fleet.pins.delete("alice", new.request_id)
    messages = {decode(message.body).kind: message for message in queue.receive()}

    # when B's unpin is handled and B's pin message reaches the dead letters
    assert failed_ids(process_batch([messages["unpin"]], fleet.worker, fleet.publisher, 20.0)) == []
    dead_letter([messages["pin"]])

    # then no request refers to A or B any more, and neither stays pinned
    assert current(fleet, old) is None and current(fleet, new) is None
    assert holding(kubos, new_cid) == []
    assert holding(kubos, old_cid) == []
