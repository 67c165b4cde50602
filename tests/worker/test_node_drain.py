"""A node removed from the fleet does not take pins with it: its drain gives
every request that held a pin there a replica on a healthy node, the request
staying `pinned` while a replica survives; repeats, crashes, deletions and a
fleet with no room left all end honestly."""

from __future__ import annotations

import pytest

from chalicelib.queue.messages import decode
from chalicelib.worker.batch import process_batch
from tests.support.cids import cid_v1
from tests.worker.conftest import current, failed_ids, holders, holding, info_of, pin_request, placed


def pinned(fleet, kubos, queue, cid: str, tenants=("alice",), everywhere=True) -> list:
    """Requests of `tenants` for `cid`, pinned on their two nodes."""
    for node_id, kubo in kubos.items():
        if everywhere or node_id in placed(fleet, cid):
            kubo.add_content(cid, blocks=2)
    records = [fleet.pins.create(tenant, pin_request(cid)) for tenant in tenants]
    queue.run_until_empty()
    assert all(current(fleet, record).status == "pinned" for record in records)
    return records


def replicas(fleet, record) -> list[str]:
    return sorted(info_of(current(fleet, record))["replicas"].split(","))


def drain(fleet, queue, watched=(), rounds: int = 20) -> dict[str, int]:
    """Run the queue until it is empty; every round, the watched requests
    must still be `pinned`. Returns how many messages of each kind ran."""
    ran: dict[str, int] = {}
    for _ in range(rounds):
        batch, result = queue.run_once()
        if not batch:
            return ran
        assert failed_ids(result) == []
        for kind in queue.kinds(batch):
            ran[kind] = ran.get(kind, 0) + 1
        assert [current(fleet, record).status for record in watched] == ["pinned"] * len(watched)
    raise AssertionError("the drain never ended")


def take(fleet, queue, kind: str) -> list:
    """The queued messages of `kind`, the others left queued."""
    taken = []
    for message in queue.receive():
        if decode(message.body).kind == kind:
            taken.append(message)
        else:
            fleet.publisher.send(message.body)
    return taken


@pytest.fixture
def settled(worker_clock):
    """Workers whose view of the fleet predates no removal: a drain may end."""
    worker_clock.advance(120)
    return worker_clock


def test_a_removed_nodes_pins_end_on_other_healthy_nodes_and_the_records_say_so(fleet, kubos, queue, settled):
    # given two requests pinned on two nodes each, one node shared
    first, second = cid_v1("drain-1"), cid_v1("drain-2")
    records = pinned(fleet, kubos, queue, first) + pinned(fleet, kubos, queue, second)
    gone = placed(fleet, first)[0]

    # when that node is removed from the fleet
    assert fleet.removal.remove(gone)
    ran = drain(fleet, queue, watched=records)

    # then every request is pinned on two registered nodes, which hold the content
    for record, cid in zip(records, (first, second), strict=False):
        now = replicas(fleet, record)
        assert gone not in now and len(now) == 2
        assert [node_id for node_id in holding(kubos, cid) if node_id != gone] == now
        assert sorted(current(fleet, record).node_ids) == now
        assert info_of(current(fleet, record))["status_details"] == "pinned on 2 nodes"
    # and the removed node holds nothing any more, and was never asked to unpin
    assert holders(gone, first) == holders(gone, second) == 0
    assert kubos[gone].calls_to("pin/rm") == []
    # and the drain ended by itself
    assert ran["drain"] >= 1 and queue.receive() == []


def test_the_records_are_unchanged_for_pins_the_removed_node_did_not_hold(fleet, kubos, queue, settled):
    cid = cid_v1("elsewhere")
    (record,) = pinned(fleet, kubos, queue, cid)
    before = replicas(fleet, record)
    bystander = next(node_id for node_id in kubos if node_id not in before)

    assert fleet.removal.remove(bystander)
    ran = drain(fleet, queue)

    assert replicas(fleet, record) == before
    assert ran == {"drain": 1}


def test_a_duplicate_drain_message_makes_no_extra_replica(fleet, kubos, queue, settled):
    cid = cid_v1("dup-drain")
    (record,) = pinned(fleet, kubos, queue, cid)
    gone = replicas(fleet, record)[0]

    # when the drain message is delivered twice
    fleet.removal.remove(gone)
    (message,) = queue.receive()
    assert decode(message.body).kind == "drain"
    assert failed_ids(process_batch([message, message], fleet.worker, fleet.publisher, 20.0)) == []
    drain(fleet, queue, watched=[record])

    # then the request has two replicas, each holding it once
    now = replicas(fleet, record)
    assert len(now) == 2 and gone not in now
    assert [holders(node_id, cid) for node_id in now] == [1, 1]
    assert holding(kubos, cid) == sorted([*now, gone])  # the fake of the removed node keeps its copy


def test_rereplicate_messages_lost_with_a_dying_worker_are_sent_again_by_the_next_pass(fleet, kubos, queue, settled):
    # given a drain whose first page of work dies with its worker
    cid = cid_v1("lost-work")
    (record,) = pinned(fleet, kubos, queue, cid)
    gone = replicas(fleet, record)[0]
    fleet.removal.remove(gone)
    queue.run_once()  # the drain's page: rereplicate messages and the next pass
    assert take(fleet, queue, "rereplicate"), "the page handed out no work"

    # when the rest of the drain runs
    drain(fleet, queue, watched=[record])

    # then the next pass handed the work out again, and it was done
    now = replicas(fleet, record)
    assert len(now) == 2 and gone not in now
    assert holders(gone, cid) == 0


def test_a_crash_between_the_new_copy_and_the_record_loses_nothing_and_adds_nothing(
    fleet, kubos, queue, settled, monkeypatch
):
    cid = cid_v1("crash-mid")
    (record,) = pinned(fleet, kubos, queue, cid)
    gone = replicas(fleet, record)[0]
    fleet.removal.remove(gone)
    queue.run_once()  # the drain hands out the work

    # given a worker that dies right after the new node pinned the content
    real = fleet.store.update
    writes = []

    def dies_on_the_final_write(stored, **changes):
        writes.append(changes.get("info"))
        if len(writes) == 2:
            raise RuntimeError("worker killed")
        return real(stored, **changes)

    monkeypatch.setattr(fleet.store, "update", dies_on_the_final_write)
    work = take(fleet, queue, "rereplicate")
    assert failed_ids(process_batch(work, fleet.worker, fleet.publisher, 20.0)) == [m.message_id for m in work]
    monkeypatch.undo()
    assert current(fleet, record).status == "pinned"
    assert "re-replicating" in info_of(current(fleet, record))["status_details"]

    # when SQS delivers it again and the drain goes on
    assert failed_ids(process_batch(work, fleet.worker, fleet.publisher, 20.0)) == []
    drain(fleet, queue, watched=[record])

    # then the request has its two replicas, and no node holds it twice
    now = replicas(fleet, record)
    assert len(now) == 2 and gone not in now
    assert [holders(node_id, cid) for node_id in now] == [1, 1]
    assert holders(gone, cid) == 0


def test_a_cid_two_tenants_hold_on_the_removed_node_is_moved_for_both_and_pinned_once(fleet, kubos, queue, settled):
    # given alice and bob pinning the same content, one pin per node for both
    cid = cid_v1("drain-shared")
    records = pinned(fleet, kubos, queue, cid, tenants=("alice", "bob"))
    before = replicas(fleet, records[0])
    gone = before[0]

    # when one of its nodes is removed
    fleet.removal.remove(gone)
    drain(fleet, queue, watched=records)

    # then both requests name the same two nodes, which hold it for both
    now = replicas(fleet, records[0])
    assert replicas(fleet, records[1]) == now and gone not in now
    assert [holders(node_id, cid) for node_id in now] == [2, 2]
    assert holders(gone, cid) == 0
    (newcomer,) = set(now) - set(before)
    assert cid in kubos[newcomer].pinned


def test_a_request_deleted_during_the_drain_leaves_nothing_pinned_or_held(fleet, kubos, queue, settled):
    # given a drain that has handed out the work of a request
    cid = cid_v1("deleted-mid-drain")
    (record,) = pinned(fleet, kubos, queue, cid)
    gone = replicas(fleet, record)[0]
    fleet.removal.remove(gone)
    queue.run_once()

    # when the request is deleted before the work is done
    fleet.pins.delete(record.tenant_id, record.request_id)
    drain(fleet, queue)

    # then it stays deleted, and no node holds or pins the content for it
    assert current(fleet, record) is None
    assert all(holders(node_id, cid) == 0 for node_id in kubos)
    assert [node_id for node_id in holding(kubos, cid) if node_id != gone] == []


def test_with_no_healthy_node_to_take_it_a_pin_stays_pinned_on_its_survivor_until_one_comes(
    fleet, kubos, queue, settled
):
    cid = cid_v1("no-room")
    (record,) = pinned(fleet, kubos, queue, cid)
    gone, survivor = replicas(fleet, record)
    spare = next(node_id for node_id in kubos if node_id not in (gone, survivor))
    fleet.registry.record_health(fleet.registry.node(spare), healthy=False, free_bytes=None)

    # when a replica's node is removed and the only other node is unhealthy
    fleet.removal.remove(gone)
    queue.run_once()  # the page
    queue.run_once()  # the work, and the next pass
    stored = current(fleet, record)

    # then the request stays pinned on its survivor, saying what it waits for
    assert stored.status == "pinned"
    assert info_of(stored)["replicas"] == survivor
    assert (
        info_of(stored)["status_details"]
        == f"pinned on 1 of 2 nodes; waiting for a healthy storage node to replace {gone}"
    )
    assert holders(gone, cid) == 1  # the drain's to-do stays

    # when the spare node is healthy again, then the drain's next pass completes the job
    fleet.registry.record_health(fleet.registry.node(spare), healthy=True, free_bytes=None)
    drain(fleet, queue, watched=[record])
    assert replicas(fleet, record) == sorted([survivor, spare])
    assert holders(gone, cid) == 0


def test_a_pin_whose_every_node_left_and_that_cannot_be_fetched_again_fails_with_the_reason(
    fleet, kubos, queue, settled
):
    # given content that only its two replicas ever had
    cid = cid_v1("gone-for-good")
    (record,) = pinned(fleet, kubos, queue, cid, everywhere=False)
    first, second = replicas(fleet, record)

    # when both nodes are removed
    fleet.removal.remove(first)
    fleet.removal.remove(second)
    drain(fleet, queue)

    # then the request failed, saying why, and holds nothing anywhere
    stored = current(fleet, record)
    assert stored.status == "failed"
    assert info_of(stored)["failed_reason"].startswith(
        "every node holding it left the fleet and it could not be fetched again"
    )
    assert all(holders(node_id, cid) == 0 for node_id in kubos)


def test_a_pin_whose_every_node_left_is_fetched_again_when_the_content_can_be(fleet, kubos, queue, settled):
    cid = cid_v1("fetch-again")
    (record,) = pinned(fleet, kubos, queue, cid)  # every node can fetch it
    first, second = replicas(fleet, record)

    fleet.removal.remove(first)
    fleet.removal.remove(second)
    queue.run_until_empty(rounds=4)

    # then it is fetched again, on the one node left, while the drain waits for another
    (spare,) = [node_id for node_id in kubos if node_id not in (first, second)]
    assert current(fleet, record).status == "pinned"
    assert replicas(fleet, record) == [spare]
    assert cid in kubos[spare].pinned
    assert info_of(current(fleet, record))["status_details"].startswith(
        "pinned on 1 of 2 nodes; waiting for a healthy storage node"
    )


def test_a_node_registered_again_stops_its_drain_and_keeps_its_pins(fleet, kubos, queue, settled):
    cid = cid_v1("came-back")
    (record,) = pinned(fleet, kubos, queue, cid)
    gone = replicas(fleet, record)[0]
    before = replicas(fleet, record)
    node = next(n for n in fleet.registry.nodes(fresh=True) if n.node_id == gone)

    fleet.removal.remove(gone)
    fleet.registry.register(gone, node.rpc_url, node.peer_id, node.multiaddrs)
    ran = drain(fleet, queue)

    assert ran == {"drain": 1}
    assert replicas(fleet, record) == before
    assert holders(gone, cid) == 1


def test_removing_an_unknown_node_writes_nothing(fleet, queue):
    assert not fleet.removal.remove("node-9")
    assert queue.receive() == []


def test_a_drain_of_many_pages_reaches_every_holder(fleet, kubos, queue, settled, monkeypatch):
    # given a node holding three pins, drained one holder per message
    import chalicelib.worker.drain as drain_module

    monkeypatch.setattr(drain_module, "PAGE", 1)
    gone = "node-0"
    cids = [cid for cid in (cid_v1(f"paged-{i}") for i in range(12)) if gone in placed(fleet, cid)][:3]
    records = [record for cid in cids for record in pinned(fleet, kubos, queue, cid)]
    assert len(records) == 3

    # when it is removed
    fleet.removal.remove(gone)
    ran = drain(fleet, queue, watched=records, rounds=40)

    # then every one of its pins has moved, a page per message
    assert ran["drain"] >= 4
    assert all(gone not in replicas(fleet, record) and len(replicas(fleet, record)) == 2 for record in records)
    assert all(holders(gone, cid) == 0 for cid in cids)


def test_an_abandoned_drain_is_logged_with_how_to_resume_it_and_changes_nothing(fleet, kubos, queue, caplog):
    from chalicelib.queue.messages import DrainNode, Rereplicate

    cid = cid_v1("abandoned")
    (record,) = pinned(fleet, kubos, queue, cid)
    before = replicas(fleet, record)

    # when a drain and a rereplicate message reach the dead-letter queue
    fleet.worker.give_up(DrainNode(before[0], 1), "dlq-1")
    fleet.worker.give_up(
        Rereplicate(record.tenant_id, record.request_id, record.created_ms, record.cid_key, before[0]), "dlq-2"
    )

    # then the operator is told how to resume, and the request is untouched
    assert "cli.admin nodes drain NODE_ID" in caplog.text
    assert current(fleet, record).status == "pinned" and replicas(fleet, record) == before
