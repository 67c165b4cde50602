"""On AWS the Kubo RPC bearer token comes from Secrets Manager: read on the
first Kubo call (not when the API starts), once per container."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest

import chalicelib.wiring as wiring
from chalicelib.config import Settings
from chalicelib.fleet.node import Node
from chalicelib.wiring import build_services
from tests.support.fake_kubo import FakeKubo

PEER = "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N"


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    """Two nodes that answer only requests bearing the secret."""
    kubos = [FakeKubo(peer_id=PEER, auth="Bearer s3cret").start() for _ in range(2)]
    yield [Node(node_id=f"node-{i}", rpc_url=k.url, peer_id=PEER, registered_ms=1) for i, k in enumerate(kubos)]
    for kubo in kubos:
        kubo.stop()


@pytest.fixture
def secret_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    read = wiring.read_secret

    def spy(settings: Settings, secret_id: str) -> str:
        reads.append(secret_id)
        return read(settings, secret_id)

    monkeypatch.setattr(wiring, "read_secret", spy)
    return reads


def test_the_secret_is_read_on_the_first_kubo_call_and_then_reused(settings, nodes, secret_reads):
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="pinning-test-kubo-rpc", SecretString="s3cret"
    )["ARN"]
    # Given services that know only the secret's ARN: nothing read yet
    services = build_services(replace(settings, kubo_rpc_secret_arn=arn))
    assert secret_reads == []

    # When both nodes are called
    identities = [services.kubo(node).id().peer_id for node in nodes]

    # Then they accepted the secret's value as bearer token, read once
    assert identities == [PEER, PEER]
    assert secret_reads == [arn]


def test_an_explicit_secret_needs_no_secrets_manager(settings, nodes, secret_reads):
    services = build_services(replace(settings, kubo_rpc_secret="s3cret"))
    assert services.kubo(nodes[0]).id().peer_id == PEER
    assert secret_reads == []


def test_the_arn_is_read_from_the_environment():
    settings = Settings.from_env({"KUBO_RPC_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x"})
    assert settings.kubo_rpc_secret_arn == "arn:aws:secretsmanager:us-east-1:1:secret:x"
    assert settings.kubo_rpc_secret is None
