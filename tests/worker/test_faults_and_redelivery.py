"""Batches, node faults and at-least-once delivery: a bad message fails alone,
messages run together, node errors are retried (never lose or fail the
request), and a message handled twice does its work once."""

from __future__ import annotations

import json
import threading
import time

import pytest

from chalicelib.worker.batch import QueuedMessage, process_batch
from tests.support.cids import cid_v1
from tests.support.fake_kubo import BLOCK_BYTES
from tests.worker.conftest import current, failed_ids, holders, holding, info_of, pin_request, placed, sqs_event


def run(fleet, batch, seconds_left=20.0):
    return process_batch(batch, fleet.worker, fleet.publisher, seconds_left)


def available(kubos, cid, blocks=2):
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=blocks)


def pin_adds(kubos, cid):
    return {node_id: len(kubo.calls_to("pin/add", cid)) for node_id, kubo in kubos.items()}


def pin_rms(kubos, cid):
    return {node_id: len(kubo.calls_to("pin/rm", cid)) for node_id, kubo in kubos.items()}


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- batches ------------------------------------------------------------------


def test_a_bad_message_fails_alone_and_the_rest_of_its_batch_is_pinned(fleet, kubos, queue):
    # given three pins, one of whose nodes answers 500 to pin/add of one CID
    good = [cid_v1("good-1"), cid_v1("good-2")]
    bad = cid_v1("bad")
    for cid in [*good, bad]:
        available(kubos, cid)
    kubos[placed(fleet, bad)[0]].fail("pin/add", "blockstore: disk I/O error", cid=bad, times=10)
    records = {cid: fleet.pins.create("alice", pin_request(cid)) for cid in [*good, bad]}

    # when the three messages come in one batch
    batch, result = queue.run_once()
    assert len(batch) == 3

    # then only the bad one is reported, by its message id
    by_cid = {json.loads(message.body)["cid"]: message.message_id for message in batch}
    assert failed_ids(result) == [by_cid[bad]]
    # and the others are pinned
    for cid in good:
        assert current(fleet, records[cid]).status == "pinned"
        assert holding(kubos, cid) == sorted(placed(fleet, cid))
    # and the bad one is not failed: it will be retried, and says so
    stored = current(fleet, records[bad])
    assert stored.status == "pinning"
    assert "retrying" in info_of(stored)["status_details"]
    assert "disk I/O error" in info_of(stored)["status_details"]


def test_the_worker_lambda_reports_batch_item_failures_by_message_id(fleet, kubos, queue, tune, app_client):
    # Chalice's test context gives the invocation 3 s; keep them for the work.
    tune(invocation_margin_seconds=0)
    good, bad = cid_v1("lambda-good"), cid_v1("lambda-bad")
    available(kubos, good)
    available(kubos, bad)
    for kubo in kubos.values():
        kubo.fail("pin/add", "internal error", cid=bad, times=10)
    fleet.pins.create("alice", pin_request(good))
    fleet.pins.create("alice", pin_request(bad))
    batch = queue.receive()
    assert len(batch) == 2

    reply = app_client.lambda_.invoke("pin_worker", sqs_event(batch)).payload

    bad_id = next(message.message_id for message in batch if f'"cid":"{bad}"' in message.body)
    assert reply == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert holding(kubos, good) == sorted(placed(fleet, good))


def test_the_messages_of_a_batch_are_pinned_concurrently(fleet, kubos, queue, tune):
    # given ten pins of one tenant whose content no node can fetch yet (waiting
    # is not a stall here), and a tenant's share of the worker as large as the batch
    tune(stall_seconds=60, tenant_share=10)
    cids = [cid_v1(f"batch-{i}") for i in range(10)]
    for cid in cids:
        for kubo in kubos.values():
            kubo.add_content(cid, blocks=3)
            kubo.stall_after(cid, 0)
        fleet.pins.create("alice", pin_request(cid))

    # when they come in one batch
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=queue.run_once()))
    worker.start()

    # then pins of at least 3 messages are in flight at once: none can finish yet
    wait_for(lambda: len({call.args[0] for kubo in kubos.values() for call in kubo.calls_to("pin/add")}) >= 3, 10)
    # and once the content comes, all are pinned
    for cid in cids:
        for kubo in kubos.values():
            kubo.stall_after(cid, 3)
    worker.join()
    batch, result = outcome["result"]
    assert len(batch) == 10 and failed_ids(result) == []
    for cid in cids:
        assert holding(kubos, cid) == sorted(placed(fleet, cid))


# -- at least once ------------------------------------------------------------


def test_a_pin_message_delivered_twice_pins_once(fleet, kubos, queue):
    cid = cid_v1("twice")
    available(kubos, cid)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()

    assert failed_ids(run(fleet, [message])) == []
    assert failed_ids(run(fleet, [message])) == []

    stored = current(fleet, record)
    assert stored.status == "pinned"
    replicas = sorted(placed(fleet, cid))
    assert sorted(info_of(stored)["replicas"].split(",")) == replicas
    assert holding(kubos, cid) == replicas
    assert all(holders(node_id, cid) == 1 for node_id in replicas)
    # the second delivery found the work done
    assert pin_adds(kubos, cid) == {node_id: int(node_id in replicas) for node_id in kubos}
    assert queue.receive() == []


def test_two_copies_of_a_pin_message_in_one_batch_pin_once(fleet, kubos, queue):
    # given the same message twice (the outbox sweeper re-sent it), in one batch
    cid = cid_v1("twins")
    available(kubos, cid, blocks=4)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()
    copies = [message, QueuedMessage("resent-" + message.message_id, message.body)]

    failures = failed_ids(run(fleet, copies))
    # a copy may lose a race and come back: SQS delivers it again, or the
    # worker handed it back to the queue after too many stale reads
    requeued = queue.receive()
    for _ in range(3):
        if not failures and not requeued:
            break
        again = [m for m in copies if m.message_id in failures] + requeued
        failures = failed_ids(run(fleet, again))
        requeued = queue.receive()
    assert failures == [] and requeued == []

    stored = current(fleet, record)
    assert stored.status == "pinned"
    replicas = sorted(placed(fleet, cid))
    assert holding(kubos, cid) == replicas
    assert all(holders(node_id, cid) == 1 for node_id in replicas)
    assert pin_rms(kubos, cid) == {node_id: 0 for node_id in kubos}
    assert queue.receive() == []


def deliver_twice(fleet, message, how):
    """Handle `message` twice: SQS redelivering it (same id), a copy (another
    id, as the outbox sweeper sends), or both copies in one batch."""
    copy = message if how == "redelivered" else QueuedMessage("resent-" + message.message_id, message.body)
    if how == "one-batch":
        assert failed_ids(run(fleet, [message, copy])) == []
    else:
        assert failed_ids(run(fleet, [message])) == []
        assert failed_ids(run(fleet, [copy])) == []


TWICE = ["redelivered", "copied", "one-batch"]


@pytest.mark.parametrize("how", TWICE)
def test_a_duplicate_unpin_does_not_break_another_tenants_pin_of_the_same_cid(fleet, kubos, queue, how):
    # given alice and bob pinning the same content
    cid = cid_v1("shared-unpin")
    available(kubos, cid)
    alices = fleet.pins.create("alice", pin_request(cid))
    bobs = fleet.pins.create("bob", pin_request(cid))
    queue.run_until_empty()
    replicas = sorted(placed(fleet, cid))

    # when alice's unpin is delivered twice
    fleet.pins.delete("alice", alices.request_id)
    (unpin,) = queue.receive()
    deliver_twice(fleet, unpin, how)

    # then bob's pin is intact, still held for him, and no node was asked to unpin
    assert current(fleet, bobs).status == "pinned"
    assert holding(kubos, cid) == replicas
    assert all(holders(node_id, cid) == 1 for node_id in replicas)
    assert pin_rms(kubos, cid) == {node_id: 0 for node_id in kubos}

    # and when bob deletes his, the content goes
    fleet.pins.delete("bob", bobs.request_id)
    queue.run_until_empty()
    assert holding(kubos, cid) == []


@pytest.mark.parametrize("how", ["redelivered", "copied"])
def test_a_duplicate_of_the_last_unpin_does_not_unpin_twice(fleet, kubos, queue, how):
    # given content pinned for one request only
    cid = cid_v1("last-unpin")
    available(kubos, cid)
    record = fleet.pins.create("alice", pin_request(cid))
    queue.run_until_empty()
    replicas = sorted(placed(fleet, cid))

    # when its unpin is delivered twice
    fleet.pins.delete("alice", record.request_id)
    (unpin,) = queue.receive()
    deliver_twice(fleet, unpin, how)

    # then the content is gone, unpinned once per node
    assert holding(kubos, cid) == []
    assert all(holders(node_id, cid) == 0 for node_id in kubos)
    assert pin_rms(kubos, cid) == {node_id: int(node_id in replicas) for node_id in kubos}


def test_an_old_unpin_delivered_again_does_not_remove_a_newer_requests_pin(fleet, kubos, queue):
    # given alice's pin, deleted and unpinned
    cid = cid_v1("comes-back")
    available(kubos, cid)
    alices = fleet.pins.create("alice", pin_request(cid))
    queue.run_until_empty()
    fleet.pins.delete("alice", alices.request_id)
    (unpin,) = queue.receive()
    assert failed_ids(run(fleet, [unpin])) == []
    assert holding(kubos, cid) == []
    # and bob pinning the same content afterwards
    bobs = fleet.pins.create("bob", pin_request(cid))
    queue.run_until_empty()
    assert holding(kubos, cid) == sorted(placed(fleet, cid))

    # when alice's unpin comes again (same delivery retried, or a copy)
    assert failed_ids(run(fleet, [unpin])) == []
    assert failed_ids(run(fleet, [QueuedMessage("copy", unpin.body)])) == []

    # then bob's content stays pinned
    assert current(fleet, bobs).status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))


def test_a_worker_dying_between_kubos_success_and_the_database_write_is_finished_by_the_next_delivery(
    fleet, kubos, queue, monkeypatch
):
    # given a store whose write of "pinned" fails once (the worker dies there)
    cid = cid_v1("dies")
    available(kubos, cid)
    record = fleet.pins.create("alice", pin_request(cid))
    real_update = fleet.store.update
    died = []

    def dying_update(record, **changes):
        if changes.get("status") == "pinned" and not died:
            died.append(changes["status"])
            raise RuntimeError("Lambda timed out")
        return real_update(record, **changes)

    monkeypatch.setattr(fleet.store, "update", dying_update)
    (message,) = queue.receive()

    # when the message is handled, then it fails and the pin is not yet reported
    assert failed_ids(run(fleet, [message])) == [message.message_id]
    assert current(fleet, record).status == "pinning"
    replicas = sorted(placed(fleet, cid))
    assert holding(kubos, cid) == replicas

    # when SQS delivers it again
    assert failed_ids(run(fleet, [message])) == []

    # then it is pinned, held once per node, never unpinned in between
    stored = current(fleet, record)
    assert stored.status == "pinned"
    assert sorted(info_of(stored)["replicas"].split(",")) == replicas
    assert all(holders(node_id, cid) == 1 for node_id in replicas)
    assert pin_rms(kubos, cid) == {node_id: 0 for node_id in kubos}
    assert all(pin_adds(kubos, cid)[node_id] <= 2 for node_id in replicas)


# -- node faults --------------------------------------------------------------


def test_a_node_answering_500_fails_the_message_for_a_retry_not_the_request(fleet, kubos, queue):
    cid = cid_v1("500")
    available(kubos, cid)
    kubos[placed(fleet, cid)[0]].fail("pin/add", "context deadline exceeded", cid=cid, times=1)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()

    assert failed_ids(run(fleet, [message])) == [message.message_id]
    stored = current(fleet, record)
    assert stored.status == "pinning"
    details = info_of(stored)["status_details"]
    assert "retrying" in details and "context deadline exceeded" in details

    assert failed_ids(run(fleet, [message])) == []
    assert current(fleet, record).status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))


def test_a_node_going_down_mid_pin_fails_the_message_and_a_redelivery_pins_once_it_is_back(fleet, kubos, queue, tune):
    # given a pin of 10 blocks, of which one node gets 2, then waits (not a stall here)
    tune(stall_seconds=60)
    cid = cid_v1("node-dies")
    available(kubos, cid, blocks=10)
    victim = kubos[placed(fleet, cid)[0]]
    victim.stall_after(cid, 2)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=run(fleet, [message])))
    worker.start()

    # when that node goes down in the middle
    wait_for(lambda: victim.repo_size >= 2 * BLOCK_BYTES)
    victim.down()
    worker.join()

    # then the message failed (SQS brings it back) and the request did not
    assert failed_ids(outcome["result"]) == [message.message_id]
    stored = current(fleet, record)
    assert stored.status == "pinning"
    assert "retrying" in info_of(stored)["status_details"]

    # when the node is back and the message comes again, then it is pinned
    victim.up()
    victim.stall_after(cid, 10)
    assert failed_ids(run(fleet, [message])) == []
    assert current(fleet, record).status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))


def test_a_connection_dropped_mid_stream_is_retried_and_nothing_is_lost(fleet, kubos, queue):
    cid = cid_v1("dropped")
    available(kubos, cid, blocks=6)
    for kubo in kubos.values():
        kubo.slow(cid, 0.02)
    dropping = kubos[placed(fleet, cid)[0]]
    dropping.drop_after(cid, 3)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()

    assert failed_ids(run(fleet, [message])) == [message.message_id]
    assert current(fleet, record).status == "pinning"
    assert cid not in dropping.pinned

    dropping.drop_after(cid, 10**6)  # the network is fine again
    assert failed_ids(run(fleet, [message])) == []
    stored = current(fleet, record)
    assert stored.status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))
    assert all(holders(node_id, cid) == 1 for node_id in placed(fleet, cid))


def test_a_pin_kubo_reports_but_does_not_record_is_not_reported_pinned(fleet, kubos, queue):
    cid = cid_v1("forgotten")
    available(kubos, cid)
    forgetful = kubos[placed(fleet, cid)[0]]
    forgetful.forget_pin(cid)
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()

    for _ in range(2):
        assert failed_ids(run(fleet, [message])) == [message.message_id]
        stored = current(fleet, record)
        assert stored.status == "pinning"
        assert "retrying" in info_of(stored)["status_details"]
        assert cid not in forgetful.pinned
        # the node's own answer was checked, not trusted
        assert forgetful.calls_to("pin/ls", cid)


def test_an_unpin_the_node_fails_is_retried_on_that_node_and_unpins_once(fleet, kubos, queue):
    cid = cid_v1("unpin-500")
    available(kubos, cid)
    record = fleet.pins.create("alice", pin_request(cid))
    queue.run_until_empty()
    replicas = sorted(placed(fleet, cid))
    kubos[replicas[0]].fail("pin/rm", "repo locked", cid=cid, times=1)

    fleet.pins.delete("alice", record.request_id)
    (unpin,) = queue.receive()
    assert failed_ids(run(fleet, [unpin])) == []
    (retry,) = queue.receive()
    assert json.loads(retry.body)["node_ids"] == [replicas[0]]
    assert failed_ids(run(fleet, [retry])) == []

    assert holding(kubos, cid) == []
    # the failed call plus the one that worked; the other node only once
    assert pin_rms(kubos, cid) == {
        node_id: {replicas[0]: 2}.get(node_id, int(node_id in replicas)) for node_id in kubos
    }


def test_a_node_down_for_the_whole_run_fails_the_message_without_failing_the_request(fleet, kubos, queue):
    cid = cid_v1("node-away")
    available(kubos, cid)
    away = kubos[placed(fleet, cid)[1]]
    away.down()
    record = fleet.pins.create("alice", pin_request(cid))
    (message,) = queue.receive()

    assert failed_ids(run(fleet, [message])) == [message.message_id]
    assert current(fleet, record).status == "pinning"

    away.up()
    assert failed_ids(run(fleet, [message])) == []
    assert current(fleet, record).status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))
