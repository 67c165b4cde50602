"""Placement: the same CID lands on the same healthy nodes, R of them."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.fleet.node import Node
from chalicelib.fleet.placement import MAX_DELEGATES, delegates_of, place


def node(node_id: str, healthy: bool = True, addresses: int = 1) -> Node:
    return Node(
        node_id,
        rpc_url=f"http://{node_id}",
        peer_id=f"peer-{node_id}",
        multiaddrs=tuple(f"/ip4/8.8.8.{i}/tcp/4001/p2p/peer-{node_id}" for i in range(addresses)),
        healthy=healthy,
        registered_ms=0,
    )


FLEET = [node(f"n{i}") for i in range(8)]
CIDS = [f"bafy-cid-{i}" for i in range(200)]


def test_same_cid_same_nodes_whatever_the_fleet_order():
    for cid in CIDS[:20]:
        assert [n.node_id for n in place(cid, FLEET, 3)] == [n.node_id for n in place(cid, list(reversed(FLEET)), 3)]


def test_replication_factor_is_honoured_and_nodes_distinct():
    chosen = place(CIDS[0], FLEET, 3)
    assert len({n.node_id for n in chosen}) == 3


def test_cids_spread_over_the_fleet():
    firsts = {place(cid, FLEET, 1)[0].node_id for cid in CIDS}
    assert firsts == {n.node_id for n in FLEET}


def test_unhealthy_nodes_are_passed_over_and_only_their_cids_move():
    sick = FLEET[0].node_id
    fleet = [node(n.node_id, healthy=n.node_id != sick) for n in FLEET]
    for cid in CIDS:
        before = [n.node_id for n in place(cid, FLEET, 2)]
        after = [n.node_id for n in place(cid, fleet, 2)]
        assert sick not in after
        if sick not in before:
            assert after == before


def test_with_no_healthy_node_the_registered_ones_are_still_chosen():
    fleet = [node(n.node_id, healthy=False) for n in FLEET[:3]]
    assert len(place(CIDS[0], fleet, 2)) == 2


def test_delegates_are_the_chosen_nodes_addresses_at_most_twenty():
    assert delegates_of(FLEET[:2]) == [*FLEET[0].multiaddrs, *FLEET[1].multiaddrs]
    many = [node(f"m{i}", addresses=6) for i in range(5)]
    assert len(delegates_of(many)) == MAX_DELEGATES


def test_full_nodes_are_passed_over():
    fleet = [replace(n, free_bytes=10 * 1024**3) for n in FLEET]
    fleet[0] = replace(fleet[0], free_bytes=1024)  # nearly full
    for cid in CIDS[:50]:
        assert fleet[0].node_id not in [n.node_id for n in place(cid, fleet, 3, min_free_bytes=1024**3)]
