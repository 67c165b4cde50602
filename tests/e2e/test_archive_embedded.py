"""End to end on embedded Kubo nodes: a pinned file is archived into S3
(moto) as a CAR exported by a fleet node, with a piece CID that matches the
object's. Everything on loopback."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import CarReader
from chalicelib.cold.commp import commp
from chalicelib.pins.cids import parse_cid
from chalicelib.wiring import Services
from devstack.kubo.fleet import RunningNode, running_fleet
from tests.support.api import ApiClient
from tests.support.embedded_kubo import TOKEN, add_bytes, needs_libkubo, serving_fleet
from tests.worker.conftest import Queue

pytestmark = needs_libkubo

BUCKET = "pinning-e2e-archives"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[list[RunningNode]]:
    """Two fleet nodes and the user's own node (the last)."""
    with running_fleet(3, tmp_path_factory.mktemp("e2e-archive"), prefix="e2e-archive", auth_token=TOKEN) as started:
        yield started


@pytest.fixture
def fleet(settings, nodes) -> Iterator[Services]:
    with serving_fleet(settings, nodes[:2], archive_bucket=BUCKET) as services:
        yield services


def test_a_pinned_file_is_archived_with_a_matching_piece_cid(fleet, nodes):
    # Given a 1 MiB file on the user's node, pinned through the API with that node as origin
    admin = fleet.admin
    token = admin.issue_token(admin.create_tenant("alice").tenant_id, "laptop").secret
    cid = add_bytes(nodes[2], os.urandom(1024 * 1024))["Hash"]
    with Client(app_module.app) as client:
        alice = ApiClient(client, token)
        created = alice.pin(cid, origins=[nodes[2].multiaddr])
        # When the worker runs (the pin, then its archive)
        Queue(fleet).run_until_empty()
        status = alice.request("GET", f"/pins/{created['requestid']}").json
    # Then the request is pinned and shows its archive
    assert status["status"] == "pinned", status
    info = status["info"]
    assert info["cold"] == "archived", info
    # And S3 holds a CAR of the whole DAG whose SHA-256 and piece CID are those recorded
    car = fleet.s3.get_object(Bucket=BUCKET, Key=f"archives/{parse_cid(cid).key}.car")["Body"].read()
    assert (hashlib.sha256(car).hexdigest(), str(len(car))) == (info["car_sha256"], info["car_bytes"])
    piece = commp(car)
    assert (piece.cid_v1, piece.cid_v2, str(piece.padded_size)) == (
        info["piece_cid"],
        info["piece_cid_v2"],
        info["padded_piece_size"],
    )
    blocks = list(CarReader().blocks([car]))  # every block verified against its CID
    index = BlockIndex.from_bytes(
        fleet.s3.get_object(Bucket=BUCKET, Key=f"archives/{parse_cid(cid).key}.idx")["Body"].read()
    )
    assert len(index) == len(blocks) > 4
