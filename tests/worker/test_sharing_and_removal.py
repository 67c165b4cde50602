"""One Kubo pin per (node, CID) shared by every request for it; removed only
when the last request lets go, exactly once; a deleted request is never
brought back; a replacement is pinned before the old content is let go."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.queue.messages import decode
from chalicelib.worker.batch import process_batch
from tests.support.cids import cid_v1
from tests.worker.conftest import current, failed_ids, holders, holding, info_of, pin_request, placed


def run(fleet, batch, seconds_left=20.0):
    return process_batch(batch, fleet.worker, fleet.publisher, seconds_left)


def pin_rms(kubos, cid):
    return {node_id: len(kubo.calls_to("pin/rm", cid)) for node_id, kubo in kubos.items()}


def pinned_everywhere(kubos, cid, *, blocks=2):
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=blocks)


def fetching(fleet, kubos, queue, cid, seconds_left=20.0):
    """The queued pin of `cid` worked on in a thread, returned once every node placement
    puts it on was asked to pin: its message, the thread, and where the batch's result goes."""
    pin_message = queue.receive()
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=run(fleet, pin_message, seconds_left)))
    worker.start()
    deadline = time.monotonic() + 5
    while not all(kubos[node_id].calls_to("pin/add", cid) for node_id in placed(fleet, cid)):
        assert time.monotonic() < deadline, "the nodes were never asked to pin"
        time.sleep(0.01)
    return pin_message, worker, outcome


def cids_on_the_same_nodes(fleet, seed):
    """Two CIDs that placement puts on the same two nodes."""
    first = cid_v1(f"{seed}-0")
    for i in range(1, 200):
        second = cid_v1(f"{seed}-{i}")
        if sorted(placed(fleet, second)) == sorted(placed(fleet, first)):
            return first, second
    raise AssertionError("no two CIDs share their nodes")


def cids_on_overlapping_nodes(fleet, seed):
    """Two CIDs whose node pairs share exactly one node."""
    first = cid_v1(f"{seed}-0")
    for i in range(1, 200):
        second = cid_v1(f"{seed}-{i}")
        if len(set(placed(fleet, second)) & set(placed(fleet, first))) == 1:
            return first, second
    raise AssertionError("no two CIDs overlap on one node")


# -- sharing ------------------------------------------------------------------


@pytest.mark.parametrize("second_tenant", ["bob", "alice"], ids=["two-tenants", "one-tenant-twice"])
def test_requests_for_one_cid_share_one_pin_per_node_until_the_last_is_deleted(fleet, kubos, queue, second_tenant):
    # given two requests for the same content
    cid = cid_v1("shared")
    pinned_everywhere(kubos, cid)
    alices = fleet.pins.create("alice", pin_request(cid))
    others = fleet.pins.create(second_tenant, pin_request(cid))
    queue.run_until_empty()
    replicas = sorted(placed(fleet, cid))

    # then both are pinned, on the same nodes, which hold it once, for two requests
    assert current(fleet, alices).status == current(fleet, others).status == "pinned"
    assert holding(kubos, cid) == replicas
    assert all(holders(node_id, cid) == 2 for node_id in replicas)

    # when one request is deleted
    fleet.pins.delete("alice", alices.request_id)
    queue.run_until_empty()

    # then the content stays pinned for the other, and no node was asked to unpin
    assert current(fleet, alices) is None
    assert current(fleet, others).status == "pinned"
    assert holding(kubos, cid) == replicas
    assert pin_rms(kubos, cid) == {node_id: 0 for node_id in kubos}

    # when the other is deleted too
    fleet.pins.delete(second_tenant, others.request_id)
    queue.run_until_empty()

    # then the pin is gone, removed exactly once from each of its nodes
    assert holding(kubos, cid) == []
    assert pin_rms(kubos, cid) == {node_id: int(node_id in replicas) for node_id in kubos}
    assert all(holders(node_id, cid) == 0 for node_id in kubos)


def test_a_second_request_for_pinned_content_is_pinned_without_fetching_it_again(fleet, kubos, queue):
    cid = cid_v1("already-there")
    pinned_everywhere(kubos, cid, blocks=4)
    fleet.pins.create("alice", pin_request(cid))
    queue.run_until_empty()

    bobs = fleet.pins.create("bob", pin_request(cid))
    queue.run_until_empty()

    stored = current(fleet, bobs)
    assert stored.status == "pinned"
    assert sorted(info_of(stored)["replicas"].split(",")) == sorted(placed(fleet, cid))
    assert holding(kubos, cid) == sorted(placed(fleet, cid))


# -- deleted before pinned ----------------------------------------------------


@pytest.mark.parametrize(
    "order", [("pin", "unpin"), ("unpin", "pin"), ("together",)], ids=["pin-first", "unpin-first", "one-batch"]
)
def test_a_request_deleted_before_it_was_pinned_is_not_brought_back_and_nothing_stays_pinned(
    fleet, kubos, queue, user_api, order
):
    # given a pin request deleted before any worker saw it
    cid = cid_v1("deleted-early")
    pinned_everywhere(kubos, cid)
    request_id = user_api.pin(cid)["requestid"]
    assert user_api.request("DELETE", f"/pins/{request_id}").status == 202
    messages = queue.receive()
    assert sorted(queue.kinds(messages)) == ["pin", "unpin"]

    # when its pin and unpin messages arrive, in either order or together
    if order == ("together",):
        assert failed_ids(run(fleet, messages)) == []
    else:
        by_kind = {decode(message.body).kind: message for message in messages}
        for kind in order:
            assert failed_ids(run(fleet, [by_kind[kind]])) == []
    queue.run_until_empty()

    # then the request stays deleted
    assert user_api.request("GET", f"/pins/{request_id}").status == 404
    assert user_api.list(status="queued,pinning,pinned,failed")["count"] == 0
    # and nothing is pinned or held for it anywhere
    assert holding(kubos, cid) == []
    assert all(holders(node_id, cid) == 0 for node_id in kubos)


def test_a_request_deleted_while_its_content_is_being_fetched_leaves_nothing_pinned(fleet, kubos, queue):
    # given a pin whose nodes are fetching its content (about 0.6 s)
    cid = cid_v1("deleted-mid-fetch")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=6)
        kubo.slow(cid, 0.1)
    record = fleet.pins.create("alice", pin_request(cid))
    pin_message, worker, outcome = fetching(fleet, kubos, queue, cid)

    # when the user deletes it and another worker handles the unpin meanwhile
    fleet.pins.delete("alice", record.request_id)
    assert failed_ids(run(fleet, queue.receive())) == []
    worker.join()

    # then, once every delivery is done, it is not back and not pinned anywhere
    if failed_ids(outcome["result"]):
        assert failed_ids(run(fleet, pin_message)) == []
    queue.run_until_empty()
    assert current(fleet, record) is None
    assert fleet.store.get("alice", record.created_ms) is None
    assert holding(kubos, cid) == []
    assert all(holders(node_id, cid) == 0 for node_id in kubos)


def test_a_request_deleted_while_its_content_cannot_be_found_stops_fetching_at_the_next_check(
    fleet, kubos, queue, tune, worker_clock
):
    # given content no provider has, which would stall only after two minutes
    tune(stall_seconds=120)
    cid = cid_v1("deleted-while-stalled")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=6)
        kubo.stall_after(cid, 0)
    record = fleet.pins.create("alice", pin_request(cid))
    _, worker, outcome = fetching(fleet, kubos, queue, cid, seconds_left=300)
    replicas = placed(fleet, cid)

    # when its owner deletes it, and the worker's next look at the request comes due
    fleet.pins.delete("alice", record.request_id)
    worker_clock.advance(11)

    # then the worker hangs up on every node then, not at the stall, and is done with the message
    assert all(kubos[node_id].wait_cancelled(cid, timeout=10) for node_id in replicas)
    worker.join(10)
    assert not worker.is_alive()
    assert failed_ids(outcome["result"]) == []
    # and only the delete's unpin is queued (no continuation), after which nothing holds the CID
    unpin = queue.receive()
    assert queue.kinds(unpin) == ["unpin"]
    assert failed_ids(run(fleet, unpin)) == []
    assert holding(kubos, cid) == []
    assert all(holders(node_id, cid) == 0 for node_id in kubos)


def test_a_request_deleted_while_being_fetched_on_nodes_other_than_first_chosen_leaves_nothing_pinned(
    fleet, kubos, queue
):
    # given a pin accepted for two nodes, one of which is unhealthy by the time
    # a worker fetches it, so a third node stands in
    cid = cid_v1("moved-then-deleted")
    first_choice = placed(fleet, cid)
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=6)
        kubo.slow(cid, 0.1)
    record = fleet.pins.create("alice", pin_request(cid))
    fleet.registry.record_health(fleet.registry.node(first_choice[1]), healthy=False, free_bytes=None)
    assert set(placed(fleet, cid)) != set(first_choice)
    pin_message, worker, outcome = fetching(fleet, kubos, queue, cid)

    # when the user deletes it meanwhile and its unpin is handled
    fleet.pins.delete("alice", record.request_id)
    assert failed_ids(run(fleet, queue.receive())) == []
    worker.join()
    if failed_ids(outcome["result"]):
        run(fleet, pin_message)
    queue.run_until_empty()

    # then nothing stays pinned for it, on any node
    assert current(fleet, record) is None
    assert holding(kubos, cid) == []
    assert all(holders(node_id, cid) == 0 for node_id in kubos)


# -- replace ------------------------------------------------------------------


def test_a_replacement_on_the_same_nodes_is_pinned_before_the_old_content_is_unpinned(fleet, kubos, queue):
    # given content A pinned on two nodes, and B placed on the same two
    old_cid, new_cid = cids_on_the_same_nodes(fleet, "replace")
    replicas = sorted(placed(fleet, old_cid))
    pinned_everywhere(kubos, old_cid)
    pinned_everywhere(kubos, new_cid)
    old = fleet.pins.create("alice", pin_request(old_cid))
    queue.run_until_empty()
    assert holding(kubos, old_cid) == replicas

    # when the user replaces A by B
    new = fleet.pins.replace("alice", old.request_id, pin_request(new_cid))
    queue.run_until_empty()

    # then B is pinned where A was, A is gone, the old request with it
    assert current(fleet, old) is None
    assert current(fleet, new).status == "pinned"
    assert holding(kubos, new_cid) == replicas
    assert holding(kubos, old_cid) == []
    for node_id in replicas:
        calls = [(call.path, call.args) for call in kubos[node_id].calls]
        # B was fetched as an update of A (sharing its blocks), A kept meanwhile
        update = calls.index(("pin/update", (old_cid, new_cid)))
        assert kubos[node_id].calls_to("pin/update")[0].flags.get("unpin") == "false"
        # and A was unpinned only after B was confirmed pinned
        confirmed = max(i for i, (path, args) in enumerate(calls) if path == "pin/ls" and new_cid in args)
        removed = calls.index(("pin/rm", (old_cid,)))
        assert update < confirmed < removed, calls
        assert len(kubos[node_id].calls_to("pin/rm", old_cid)) == 1
        assert holders(node_id, old_cid) == 0 and holders(node_id, new_cid) == 1


def test_a_replacement_on_other_nodes_releases_the_old_content_everywhere_once_pinned(fleet, kubos, queue):
    old_cid, new_cid = cids_on_overlapping_nodes(fleet, "move")
    pinned_everywhere(kubos, old_cid)
    pinned_everywhere(kubos, new_cid)
    old = fleet.pins.create("alice", pin_request(old_cid))
    queue.run_until_empty()

    new = fleet.pins.replace("alice", old.request_id, pin_request(new_cid))
    queue.run_until_empty()

    assert current(fleet, new).status == "pinned"
    assert holding(kubos, new_cid) == sorted(placed(fleet, new_cid))
    assert holding(kubos, old_cid) == []
    assert pin_rms(kubos, old_cid) == {node_id: int(node_id in placed(fleet, old_cid)) for node_id in kubos}


def test_replacing_a_pin_by_the_same_cid_keeps_it_pinned_throughout(fleet, kubos, queue):
    cid = cid_v1("same-again")
    pinned_everywhere(kubos, cid)
    old = fleet.pins.create("alice", pin_request(cid, name="v1"))
    queue.run_until_empty()

    new = fleet.pins.replace("alice", old.request_id, pin_request(cid, name="v2"))
    queue.run_until_empty()

    assert current(fleet, old) is None
    stored = current(fleet, new)
    assert stored.status == "pinned" and stored.name == "v2"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))
    assert pin_rms(kubos, cid) == {node_id: 0 for node_id in kubos}
    assert all(holders(node_id, cid) == 1 for node_id in placed(fleet, cid))


def test_a_replacement_that_fails_releases_the_old_content_too(fleet, kubos, queue):
    # given A pinned, replaced by B which the nodes refuse
    old_cid, new_cid = cids_on_the_same_nodes(fleet, "bad-replacement")
    pinned_everywhere(kubos, old_cid)
    old = fleet.pins.create("alice", pin_request(old_cid))
    queue.run_until_empty()
    for kubo in kubos.values():
        kubo.fail("pin/add", "invalid path: unsupported CID", code=1, cid=new_cid, times=5)
    new = fleet.pins.replace("alice", old.request_id, pin_request(new_cid))

    queue.run_until_empty()

    # then the replacement failed with a reason; the replaced request is gone
    # (the user replaced it), so nothing is left pinned for either
    stored = current(fleet, new)
    assert stored.status == "failed" and info_of(stored)["failed_reason"]
    assert holding(kubos, old_cid) == [] and holding(kubos, new_cid) == []
