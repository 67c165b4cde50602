"""The registry over its repository (in memory): registration and health checks."""

from __future__ import annotations

import pytest

from chalicelib.fleet.health import check_fleet
from chalicelib.fleet.node import Node
from chalicelib.fleet.registry import InvalidNode, NodeRegistry
from chalicelib.kubo.client import NodeIdentity, RepoStat
from chalicelib.kubo.errors import KuboUnavailable
from tests.support.memory.nodes import MemoryNodes

PEER = "12D3KooWGzBxCkGDgf1V4N4pkRLXjUq4gWsQzA8nC9Ud5QzXsu6N"


class ScriptedKubo:
    """Answers the health check; `before_answer` runs first (the interleaving)."""

    def __init__(self, up: bool, before_answer=lambda: None) -> None:
        self.up = up
        self.before_answer = before_answer

    def id(self) -> NodeIdentity:
        self.before_answer()
        if not self.up:
            raise KuboUnavailable("connection refused")
        return NodeIdentity(peer_id=PEER, addresses=(), agent_version="kubo/0.40.0")

    def repo_stat(self) -> RepoStat:
        return RepoStat(repo_size=10, storage_max=110)


@pytest.fixture
def registry() -> NodeRegistry:
    return NodeRegistry(MemoryNodes(), cache_seconds=0, clock=lambda: 42)


def test_registration_names_each_address_with_its_peer(registry):
    node = registry.register("node-a", "http://10.0.0.5:5001", PEER, ["/ip4/203.0.113.1/tcp/4001"], ["ssd"])
    assert node.multiaddrs == (f"/ip4/203.0.113.1/tcp/4001/p2p/{PEER}",)
    assert (node.tags, node.healthy, node.registered_ms) == (("ssd",), True, 42)
    assert registry.node("node-a") == node
    with pytest.raises(InvalidNode):
        registry.register("node-b", "http://10.0.0.6:5001", PEER, [])


def test_a_check_records_what_it_found(registry):
    registry.register("node-a", "http://10.0.0.5:5001", PEER, ["/ip4/203.0.113.1/tcp/4001"])
    assert check_fleet(registry, lambda node: ScriptedKubo(up=True)) == {"node-a": True}
    checked = registry.node("node-a")
    assert (checked.healthy, checked.free_bytes, checked.checked_ms) == (True, 100, 42)
    assert check_fleet(registry, lambda node: ScriptedKubo(up=False)) == {"node-a": False}
    assert not registry.node("node-a").healthy


def test_a_check_of_an_address_replaced_meanwhile_does_not_mark_the_new_one_down(registry):
    registry.register("node-a", "http://10.0.0.5:5001", PEER, ["/ip4/203.0.113.1/tcp/4001"])

    # Given the operator moves the node to a new address while the check
    # is calling the old one, which no longer answers
    def move() -> None:
        registry.register("node-a", "http://10.0.0.9:5001", PEER, ["/ip4/203.0.113.9/tcp/4001"])

    def old_address(node: Node) -> ScriptedKubo:
        return ScriptedKubo(up=False, before_answer=move)

    # When the check records its finding
    check_fleet(registry, old_address)

    # Then the new registration keeps its own state: healthy, at the new address
    node = registry.node("node-a")
    assert (node.rpc_url, node.healthy) == ("http://10.0.0.9:5001", True)
