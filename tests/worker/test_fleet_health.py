"""The periodic fleet check records which nodes are reachable, are who they
should be, and have room; pins then go only to those."""

from __future__ import annotations

from chalicelib.fleet.health import check_fleet
from chalicelib.kubo.client import KuboClient
from tests.support.cids import cid_v1
from tests.support.fake_kubo import BLOCK_BYTES
from tests.worker.conftest import PEERS, current, failed_ids, holding, info_of, pin_request, placed


def node_states(fleet):
    return {node.node_id: (node.healthy, node.free_bytes) for node in fleet.registry.nodes(fresh=True)}


def cids_placed_on(fleet, node_id, count, seed):
    """`count` CIDs whose placement on the whole fleet includes `node_id`."""
    found, i = [], 0
    while len(found) < count:
        cid = cid_v1(f"{seed}-{i}")
        if node_id in placed(fleet, cid):
            found.append(cid)
        i += 1
    return found


def test_live_nodes_are_recorded_healthy_with_their_free_space(fleet, kubos):
    kubos["node-1"].storage_max = 5 * 1024**3
    # node-2 already stores 4 blocks
    kubos["node-2"].add_content(cid_v1("filler"), blocks=4)
    KuboClient(kubos["node-2"].url).pin_add(cid_v1("filler"), stall_seconds=60)

    assert check_fleet(fleet.registry, fleet.kubo) == {"node-0": True, "node-1": True, "node-2": True}

    assert node_states(fleet) == {
        "node-0": (True, 10 * 1024**3),
        "node-1": (True, 5 * 1024**3),
        "node-2": (True, 10 * 1024**3 - 4 * BLOCK_BYTES),
    }


def test_a_node_that_is_down_or_answers_as_another_peer_is_recorded_unhealthy(fleet, kubos):
    kubos["node-1"].down()
    kubos["node-2"].peer_id = PEERS[0]  # another node now answers at node-2's address

    assert check_fleet(fleet.registry, fleet.kubo) == {"node-0": True, "node-1": False, "node-2": False}

    states = node_states(fleet)
    assert states["node-0"][0] is True
    assert states["node-1"][0] is False
    assert states["node-2"][0] is False


def test_a_node_that_comes_back_is_healthy_again_at_the_next_check(fleet, kubos):
    kubos["node-1"].down()
    check_fleet(fleet.registry, fleet.kubo)
    assert node_states(fleet)["node-1"][0] is False

    kubos["node-1"].up()
    assert check_fleet(fleet.registry, fleet.kubo)["node-1"] is True
    assert node_states(fleet)["node-1"][0] is True


def test_new_pins_skip_unhealthy_nodes(fleet, kubos, queue):
    # given node-2 answering as another peer, seen by the fleet check
    cids = cids_placed_on(fleet, "node-2", 3, "avoid-impostor")
    kubos["node-2"].peer_id = PEERS[0]
    check_fleet(fleet.registry, fleet.kubo)
    for cid in cids:
        for kubo in kubos.values():
            kubo.add_content(cid, blocks=2)

    # when pins that would have gone to node-2 are made
    records = [fleet.pins.create("alice", pin_request(cid)) for cid in cids]
    queue.run_until_empty()

    # then they are pinned on the two healthy nodes, and node-2 was never asked
    for record, cid in zip(records, cids, strict=False):
        stored = current(fleet, record)
        assert stored.status == "pinned"
        assert sorted(info_of(stored)["replicas"].split(",")) == ["node-0", "node-1"]
        assert holding(kubos, cid) == ["node-0", "node-1"]
    assert kubos["node-2"].calls_to("pin/add") == []


def test_new_pins_skip_nodes_short_of_free_space(fleet, kubos, queue):
    # given node-0 with less free space than the service requires
    cids = cids_placed_on(fleet, "node-0", 3, "avoid-full")
    kubos["node-0"].storage_max = fleet.settings.min_free_bytes // 2
    assert check_fleet(fleet.registry, fleet.kubo)["node-0"] is True
    for cid in cids:
        for kubo in kubos.values():
            kubo.add_content(cid, blocks=2)

    # when pins that would have gone to node-0 are made
    records = [fleet.pins.create("alice", pin_request(cid)) for cid in cids]
    queue.run_until_empty()

    # then they are pinned elsewhere
    for record, cid in zip(records, cids, strict=False):
        assert current(fleet, record).status == "pinned"
        assert holding(kubos, cid) == ["node-1", "node-2"]
    assert kubos["node-0"].calls_to("pin/add") == []


def test_a_pin_placed_on_a_node_that_then_went_down_is_pinned_elsewhere_without_a_failure(fleet, kubos, queue):
    # given a pin accepted while node-1 was healthy and chosen for it
    (cid,) = cids_placed_on(fleet, "node-1", 1, "went-down")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))
    assert "node-1" in record.node_ids

    # when node-1 goes down and the fleet check notices before a worker runs
    kubos["node-1"].down()
    check_fleet(fleet.registry, fleet.kubo)
    batch, result = queue.run_once()

    # then the pin is made on the healthy nodes, and the message succeeds
    stored = current(fleet, record)
    assert stored.status == "pinned"
    assert holding(kubos, cid) == sorted(set(kubos) - {"node-1"})
    assert failed_ids(result) == []


def test_the_scheduled_fleet_check_handler_records_health(fleet, kubos):
    from chalice.test import Client

    import app as app_module

    kubos["node-2"].down()
    app_module.services.install(fleet)
    try:
        with Client(app_module.app) as client:
            event = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
            reply = client.lambda_.invoke("check_fleet_health", event).payload
    finally:
        app_module.services.install(None)

    assert reply == {"node-0": True, "node-1": True, "node-2": False}
    assert node_states(fleet)["node-2"][0] is False


def test_once_a_node_that_was_down_is_back_it_takes_new_pins_of_content_placed_there_before(fleet, kubos, queue):
    # given a pin accepted for node-1, made elsewhere while node-1 was down
    (cid,) = cids_placed_on(fleet, "node-1", 1, "back-again")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    fleet.pins.create("alice", pin_request(cid))
    kubos["node-1"].down()
    check_fleet(fleet.registry, fleet.kubo)
    queue.run_until_empty()

    # when node-1 is back and another user pins the same content
    kubos["node-1"].up()
    check_fleet(fleet.registry, fleet.kubo)
    bobs = fleet.pins.create("bob", pin_request(cid))
    queue.run_until_empty(rounds=5)

    # then it is pinned on the nodes placement now picks, node-1 among them
    assert current(fleet, bobs).status == "pinned", info_of(current(fleet, bobs))
    assert "node-1" in holding(kubos, cid)
