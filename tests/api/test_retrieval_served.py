"""GET /ipfs/{cid} through the local stack's API server (chalice.local, as
`make dev` serves it): the binary body arrives as bytes, not base64."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from chalice.config import Config

from devstack.api_server import ApiServer
from tests.api.test_retrieval import CAR, RAW, a_dag, car_blocks, pinned
from tests.conftest import PEER_A, PEER_B
from tests.support.fake_kubo import FakeKubo

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(api, services) -> Iterator[tuple[str, dict[str, FakeKubo]]]:
    """The app behind the local stack's API server, its nodes fake Kubo ones."""
    import app as app_module

    fakes = {"node-a": FakeKubo(peer_id=PEER_A).start(), "node-b": FakeKubo(peer_id=PEER_B).start()}
    for node_id, fake in fakes.items():
        services.registry.register(node_id, fake.url, fake.peer_id, ["/ip4/203.0.113.9/tcp/4001"])
    server = ApiServer(app_module.app, Config.create(chalice_stage="dev", project_dir=str(REPO_ROOT)), "127.0.0.1", 0)
    server.start()
    yield server.url, fakes
    server.stop()
    for fake in fakes.values():
        fake.stop()


def test_the_local_api_server_sends_a_car_and_a_raw_block_as_bytes(api, services, tenant_id, served):
    # given a pinned DAG its nodes hold, behind the local API server
    url, fakes = served
    dag = a_dag(30_000)
    for fake in fakes.values():
        fake.add_car(dag.cid, dag.car, held=True)
    pinned(api, services, tenant_id, dag)
    auth = {"Authorization": f"Bearer {api.token}"}

    # when a client asks for its CAR and its root block over HTTP
    car = requests.get(f"{url}/ipfs/{dag.cid}", headers={**auth, "Accept": CAR}, timeout=10)
    raw = requests.get(f"{url}/ipfs/{dag.cid}?format=raw", headers={**auth, "Accept": RAW}, timeout=10)

    # then the bodies are the bytes themselves: a CAR whose blocks verify, the root block
    assert car.status_code == 200, car.text[:200]
    assert car_blocks(car.content, dag.root) == {cid.key: data for cid, data in dag.blocks}
    assert raw.status_code == 200 and raw.content == dag.blocks[0][1]
    assert raw.headers["Content-Type"] == RAW
