"""One block out of Kubo (`block/get`) against a fake node speaking Kubo's
wire format: verified against its CID, refused when it is not the block."""

from __future__ import annotations

import pytest

from chalicelib.cold.car import CarReader, write_car
from chalicelib.cold.cids import BlockMismatch
from chalicelib.kubo.errors import KuboServerError
from tests.support.fake_kubo import sample_car


def test_a_block_the_node_holds_comes_back_verified(kubo, client):
    # given a node holding a DAG of a root and three leaves
    root, car, cids = sample_car(leaves=3, leaf_bytes=5000)
    kubo.add_car(root, car, held=True)
    blocks = {str(block.cid): block.data for block in CarReader().blocks([car])}

    # when its root and a leaf are asked for
    got_root = client.block_get(root, seconds=5)
    got_leaf = client.block_get(str(cids[2]), seconds=5)

    # then each is the block's bytes, asked for offline (the node never looks on the network)
    assert got_root == blocks[root]
    assert got_leaf == blocks[str(cids[2])]
    assert all(call.flags["offline"] == "true" for call in kubo.calls_to("block/get"))


def test_a_block_the_node_lacks_is_kubos_error(kubo, client):
    # given a node holding nothing
    root, _, _ = sample_car()

    # when the block is asked for
    # then Kubo's error is raised
    with pytest.raises(KuboServerError, match="not found locally"):
        client.block_get(root, seconds=5)


def test_a_block_that_does_not_hash_to_its_cid_is_refused(kubo, client):
    # given a node whose copy of a leaf is corrupt
    root, car, cids = sample_car(leaves=2, leaf_bytes=2000)
    sections = [(block.cid, block.data) for block in CarReader().blocks([car])]
    tampered = [(cid, data if cid != cids[1] else b"X" + data[1:]) for cid, data in sections]
    kubo.add_car(root, b"".join(write_car([cids[0]], tampered)), held=True)

    # when that block is asked for
    # then it is refused, never returned
    with pytest.raises(BlockMismatch):
        client.block_get(str(cids[1]), seconds=5)
