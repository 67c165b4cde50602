"""The worker dials origins at resolved global addresses only (chalicelib.worker.origins).

DNS is a table (FakeDns) handed to the worker: nothing leaves loopback."""

from __future__ import annotations

import logging

import pytest

from chalicelib.worker.origins import OriginResolver
from tests.support.cids import cid_v1, peer_id
from tests.support.fake_dns import FakeDns
from tests.worker.conftest import current, pin_request, placed, rebuild_worker

PEER = peer_id("provider")


def named(protocol: str, name: str) -> str:
    return f"/{protocol}/{name}/tcp/4001/p2p/{PEER}"


@pytest.fixture
def dns(fleet) -> FakeDns:
    """The worker's DNS, empty until a test fills it."""
    table = FakeDns()
    fleet.test_origins = OriginResolver(table)
    rebuild_worker(fleet)
    return table


def dialed(kubos) -> list[str]:
    return [call.args[0] for kubo in kubos.values() for call in kubo.calls_to("swarm/connect")]


def test_an_origin_resolving_to_a_private_address_is_never_dialed(fleet, kubos, queue, dns, caplog):
    # given origins whose names lead to the node itself, the metadata service,
    # the VPC (through a dnsaddr record), and one global provider
    dns.records["A"].update(
        {
            "localhost": ["127.0.0.1"],
            "instance-data.ec2.internal": ["169.254.169.254"],
            "169-254-169-254.nip.io": ["169.254.169.254"],
            "provider.example": ["8.8.4.4"],
        }
    )
    dns.records["TXT"]["_dnsaddr.corp.example"] = [f"dnsaddr=/ip4/10.0.0.5/tcp/4001/p2p/{PEER}"]
    unsafe = [
        named("dns4", "localhost"),
        named("dns4", "instance-data.ec2.internal"),
        named("dns", "169-254-169-254.nip.io"),
        f"/dnsaddr/corp.example/p2p/{PEER}",
    ]
    cid = cid_v1("named-origins")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)

    # when the pin is worked on
    with caplog.at_level(logging.INFO, logger="pinning.worker"):
        record = fleet.pins.create("alice", pin_request(cid, origins=[*unsafe, named("dns4", "provider.example")]))
        queue.run_until_empty()

    # then it is pinned, each pinning node dialed the provider's address (never a
    # name Kubo would resolve again), and every unsafe origin was logged as dropped
    assert current(fleet, record).status == "pinned"
    assert dialed(kubos) == [f"/ip4/8.8.4.4/tcp/4001/p2p/{PEER}"] * len(placed(fleet, cid))
    drops = [entry for entry in caplog.records if entry.getMessage() == "origin dropped"]
    assert {entry.origin for entry in drops} == set(unsafe)


def test_a_name_with_one_global_and_one_private_address_is_not_dialed_at_all(fleet, kubos, queue, dns, caplog):
    # given a name with a global IPv4 and a unique-local IPv6 address
    dns.records["A"]["mixed.example"] = ["8.8.4.4"]
    dns.records["AAAA"]["mixed.example"] = ["fd00::1"]
    cid = cid_v1("mixed-origin")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)

    # when the pin is worked on
    with caplog.at_level(logging.INFO, logger="pinning.worker"):
        record = fleet.pins.create("alice", pin_request(cid, origins=[named("dns", "mixed.example")]))
        queue.run_until_empty()

    # then nothing was dialed (the pin still completes from the network), and the drop says why
    assert current(fleet, record).status == "pinned"
    assert dialed(kubos) == []
    [drop] = [entry for entry in caplog.records if entry.getMessage() == "origin dropped"]
    assert drop.reason == "mixed.example resolves to fd00::1, in fc00::/7 (unique local)"


def test_with_private_origins_allowed_names_go_to_kubo_unresolved(fleet, kubos, queue, dns, tune):
    # given the local stack's setting (its nodes and the user's are on loopback)
    tune(allow_private_origins=True)
    cid = cid_v1("local-named-origin")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    local = named("dns4", "localhost")

    # when a pin with a named origin is worked on
    record = fleet.pins.create("alice", pin_request(cid, origins=[local]))
    queue.run_until_empty()

    # then the origin is dialed as given, and DNS never asked
    assert current(fleet, record).status == "pinned"
    assert dialed(kubos) == [local] * len(placed(fleet, cid))
    assert dns.queries == []
