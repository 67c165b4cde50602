"""A node that cannot unpin holds up no other: every node of a release is
released on its own, and a node whose pin/rm fails is retried alone, by a
message naming only it, until it answers or leaves the fleet."""

from __future__ import annotations

from chalicelib.queue.messages import UnpinRequested, decode
from chalicelib.worker.batch import process_batch
from tests.support.cids import cid_v1
from tests.worker.conftest import current, failed_ids, holders, holding, pin_request, placed


def run(fleet, batch):
    return process_batch(batch, fleet.worker, fleet.publisher, 20.0)


def pin_rms(kubos, cid):
    return {node_id: len(kubo.calls_to("pin/rm", cid)) for node_id, kubo in kubos.items()}


def pinned(fleet, kubos, queue, cid):
    """A request for `cid`, pinned on its two nodes (in the order a release walks them)."""
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))
    queue.run_until_empty()
    assert current(fleet, record).status == "pinned"
    return record, sorted(placed(fleet, cid))


def unpins(batch) -> list[UnpinRequested]:
    messages = [decode(message.body) for message in batch]
    assert all(isinstance(message, UnpinRequested) for message in messages)
    return messages  # type: ignore[return-value]


def test_a_deleted_pin_is_unpinned_from_its_healthy_node_while_its_first_node_is_down(fleet, kubos, queue):
    # given a pin on two nodes, the first of which is down
    cid = cid_v1("unpin-first-node-down")
    record, (down, healthy) = pinned(fleet, kubos, queue, cid)
    kubos[down].down()

    # when it is deleted and its unpin handled
    fleet.pins.delete("alice", record.request_id)
    (unpin,) = queue.receive()
    assert failed_ids(run(fleet, [unpin])) == []

    # then the healthy node let go of it at once, and no request holds it anywhere
    assert holding(kubos, cid) == [down]  # the fake keeps what it had while down
    assert pin_rms(kubos, cid)[healthy] == 1
    assert holders(down, cid) == holders(healthy, cid) == 0
    # and one retry names the node that is down, alone
    retries = queue.receive()
    assert [message.node_ids for message in unpins(retries)] == [(down,)]

    # when it is retried while that node is still down, then it comes back again, for that node alone
    assert failed_ids(run(fleet, retries)) == []
    retries = queue.receive()
    assert [message.node_ids for message in unpins(retries)] == [(down,)]

    # when the node is back and the retry comes, then it unpins there, and nowhere else again
    kubos[down].up()
    assert failed_ids(run(fleet, retries)) == []
    assert queue.receive() == []
    assert holding(kubos, cid) == []
    assert pin_rms(kubos, cid)[healthy] == 1


def test_a_retry_for_a_node_that_left_the_fleet_ends_without_calling_it(fleet, kubos, queue):
    # given a deleted pin whose unpin could not reach its first node, which is down
    cid = cid_v1("unpin-node-removed")
    record, (down, healthy) = pinned(fleet, kubos, queue, cid)
    kubos[down].down()
    fleet.pins.delete("alice", record.request_id)
    assert failed_ids(run(fleet, queue.receive())) == []
    (retry,) = queue.receive()
    calls = len(kubos[down].calls)

    # when that node leaves the fleet (its drain takes over) and the retry comes
    assert fleet.removal.remove(down)
    assert failed_ids(run(fleet, [retry])) == []

    # then the retry is over: the node was not called, nothing is held, nothing retried
    assert len(kubos[down].calls) == calls
    assert holders(down, cid) == holders(healthy, cid) == 0
    assert [decode(message.body).kind for message in queue.receive()] == ["drain"]


def test_a_replacement_releases_the_old_content_on_its_healthy_nodes_while_another_is_down(fleet, kubos, queue):
    # given content A on two nodes, the first of which only A uses, replaced by B
    # placed on the other node and a third
    for i in range(200):
        old_cid, new_cid = cid_v1(f"replaced-{i}"), cid_v1(f"replacement-{i}")
        old_nodes, new_nodes = sorted(placed(fleet, old_cid)), sorted(placed(fleet, new_cid))
        if old_nodes[0] not in new_nodes and old_nodes[1] in new_nodes:
            break
    down, shared = old_nodes
    old, _ = pinned(fleet, kubos, queue, old_cid)
    for kubo in kubos.values():
        kubo.add_content(new_cid, blocks=2)
    kubos[down].down()

    # when the replacement is pinned
    new = fleet.pins.replace("alice", old.request_id, pin_request(new_cid))
    (pin,) = queue.receive()
    assert failed_ids(run(fleet, [pin])) == []

    # then B is pinned, A let go on the node that answered, and retried alone on the one down
    assert current(fleet, new).status == "pinned"
    assert holding(kubos, old_cid) == [down]
    assert holders(down, old_cid) == holders(shared, old_cid) == 0
    retries = queue.receive()
    assert [(message.cid, message.node_ids) for message in unpins(retries)] == [(old_cid, (down,))]

    # when that node is back, then the retry removes A there too
    kubos[down].up()
    assert failed_ids(run(fleet, retries)) == []
    assert holding(kubos, old_cid) == []
    assert queue.receive() == []
