"""Which origins the worker lets the fleet's nodes dial (chalicelib.worker.origins).

Every address is tried twice: written into the origin, and as the only
answer DNS gives for a name in it. Names are answered by a table (FakeDns):
no test here touches the network."""

from __future__ import annotations

import ipaddress

import pytest

from chalicelib.pins.multiaddrs import NON_GLOBAL_RANGES, address_filters, non_global_range
from chalicelib.worker import origins as origins_module
from chalicelib.worker.origins import OriginResolver
from tests.support.cids import peer_id
from tests.support.fake_dns import FakeDns

PEER = peer_id("origin")
OTHER_PEER = peer_id("someone else")

# (address, the range it must be dropped for, or None: global, dialed).
ADDRESSES = [
    # IPv4, not global
    ("0.0.0.0", "this network"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "shared address space (carrier-grade NAT)"),
    ("100.127.255.254", "shared address space (carrier-grade NAT)"),
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("169.254.169.254", "link-local, cloud metadata"),
    ("169.254.0.1", "link-local, cloud metadata"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.1", "IETF protocol assignments"),
    ("192.0.0.9", "IETF protocol assignments"),
    ("192.0.0.170", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("192.168.0.1", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved, broadcast"),
    ("255.255.255.255", "reserved, broadcast"),
    # IPv4, global (some just outside a range above)
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("11.0.0.1", None),
    ("100.63.255.255", None),
    ("100.128.0.1", None),
    ("147.75.80.1", None),
    ("169.253.255.255", None),
    ("172.15.255.255", None),
    ("172.32.0.1", None),
    ("192.0.1.1", None),
    ("192.169.0.1", None),
    ("198.17.255.255", None),
    ("198.20.0.1", None),
    ("223.255.255.254", None),
    # IPv6, not global: the IPv4-embedding forms first
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("::ffff:127.0.0.1", "IPv4-mapped"),
    ("::ffff:169.254.169.254", "IPv4-mapped"),
    ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("::ffff:0:a00:1", "IPv4-translated"),
    ("64:ff9b::7f00:1", "NAT64 well-known prefix"),
    ("64:ff9b::a9fe:a9fe", "NAT64 well-known prefix"),
    ("64:ff9b::808:808", "NAT64 well-known prefix"),
    ("64:ff9b:1::a00:1", "NAT64 local-use prefix"),
    ("2002:7f00:1::", "6to4"),
    ("2002:a9fe:a9fe::1", "6to4"),
    ("2002:808:808::1", "6to4"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001::1", "Teredo"),
    ("2001:2::1", "IETF protocol assignments"),
    ("2001:10::1", "IETF protocol assignments"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard-only"),
    ("5f00::1", "segment routing"),
    ("fc00::1", "unique local"),
    ("fd00:ec2::254", "unique local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("feff::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("1000::1", "not global unicast"),
    ("4000::1", "not global unicast"),
    ("8000::1", "not global unicast"),
    # IPv6, global
    ("2001:4860:4860::8888", None),
    ("2606:4700:4700::1111", None),
    ("2600:1f18::1", None),
    ("2a00:1450:4001::1", None),
    ("2c0f:fb50::1", None),
    ("2001:200::1", None),
    ("2003::1", None),
]


def test_the_table_has_at_least_60_addresses_and_every_range_in_it() -> None:
    assert len(ADDRESSES) >= 60
    labels = {label for _, label in ADDRESSES}
    assert {label for _, label in NON_GLOBAL_RANGES} <= labels


def host(ip: str) -> str:
    return f"/ip{ipaddress.ip_address(ip).version}/{ip}"


def resolver(dns: FakeDns | None = None) -> OriginResolver:
    return OriginResolver(dns or FakeDns())


@pytest.mark.parametrize(("ip", "dropped_for"), ADDRESSES)
def test_an_ip_origin_is_dialed_only_when_global(ip: str, dropped_for: str | None) -> None:
    # given an origin at the address, written as a client would
    origin = f"{host(ip)}/tcp/4001/p2p/{PEER}"

    # when the worker resolves it
    resolved = resolver().resolve([origin])

    # then a global one is dialed exactly as given, and any other dropped for its range
    if dropped_for is None:
        assert (resolved.dial, resolved.dropped) == ([origin], [])
    else:
        assert resolved.dial == []
        [dropped] = resolved.dropped
        assert dropped.origin == origin
        assert dropped.reason.endswith(f"({dropped_for})")


@pytest.mark.parametrize(("ip", "dropped_for"), ADDRESSES)
def test_a_named_origin_is_dialed_at_its_address_only_when_that_is_global(ip: str, dropped_for: str | None) -> None:
    # given a name whose only address is `ip`
    version = ipaddress.ip_address(ip).version
    dns = FakeDns(a={"peer.example": [ip]} if version == 4 else {}, aaaa={"peer.example": [ip]} if version == 6 else {})
    origin = f"/dns/peer.example/udp/4001/quic-v1/p2p/{PEER}"

    # when the worker resolves it
    resolved = resolver(dns).resolve([origin])

    # then Kubo is given the address, never the name, or nothing
    if dropped_for is None:
        assert (resolved.dial, resolved.dropped) == ([f"{host(ip)}/udp/4001/quic-v1/p2p/{PEER}"], [])
    else:
        assert resolved.dial == []
        assert resolved.dropped[0].reason.startswith(f"peer.example resolves to {ip}")
        assert resolved.dropped[0].reason.endswith(f"({dropped_for})")


@pytest.mark.parametrize(("ip", "dropped_for"), ADDRESSES)
def test_nothing_python_calls_non_global_is_dialed(ip: str, dropped_for: str | None) -> None:
    # the table is stricter than `is_global` (multicast, embedded IPv4), never laxer
    address = ipaddress.ip_address(ip)
    if not address.is_global:
        assert non_global_range(address) is not None
    assert (non_global_range(address) is None) == (dropped_for is None)


def test_kubos_address_filters_hold_every_non_global_address_of_the_table_and_no_global_one() -> None:
    filters = [ipaddress.ip_network(f"{text.split('/')[2]}/{text.split('/')[4]}") for text in address_filters()]

    for ip, dropped_for in ADDRESSES:
        assert any(ipaddress.ip_address(ip) in f for f in filters) == (dropped_for is not None), ip


# -- names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ip"),
    [
        ("localhost", "127.0.0.1"),
        ("instance-data.ec2.internal", "169.254.169.254"),
        # a wildcard-DNS service answering with the address spelled in the name
        ("169-254-169-254.nip.io", "169.254.169.254"),
        ("10.0.0.1.sslip.io", "10.0.0.1"),
    ],
)
@pytest.mark.parametrize("protocol", ["dns", "dns4"])
def test_names_of_local_hosts_are_dropped(name: str, ip: str, protocol: str) -> None:
    # given a name whose DNS points at a local host
    origin = f"/{protocol}/{name}/tcp/4001/p2p/{PEER}"

    # when resolved
    resolved = resolver(FakeDns(a={name: [ip]})).resolve([origin])

    # then nothing is dialed
    assert resolved.dial == []
    assert resolved.dropped[0].reason.startswith(f"{name} resolves to {ip}, in ")


def test_a_name_with_one_global_and_one_private_address_is_dropped_whole() -> None:
    # given a name with a global IPv4 and a unique-local IPv6 address
    dns = FakeDns(a={"mixed.example": ["8.8.4.4"]}, aaaa={"mixed.example": ["fd00::1"]})
    origin = f"/dns/mixed.example/tcp/4001/p2p/{PEER}"

    # when resolved
    resolved = resolver(dns).resolve([origin])

    # then neither address is dialed
    assert resolved.dial == []
    assert resolved.dropped[0].reason == "mixed.example resolves to fd00::1, in fc00::/7 (unique local)"


def test_dns4_and_dns6_ask_for_their_own_family_only_and_dns_for_both() -> None:
    # given a name with addresses of both families
    dns = FakeDns(a={"both.example": ["8.8.4.4"]}, aaaa={"both.example": ["2001:4860::8844"]})
    origins = [f"/{protocol}/both.example/tcp/4001/p2p/{PEER}" for protocol in ("dns4", "dns6", "dns")]

    # when resolved one at a time
    dialed = [resolver(dns).resolve([origin]).dial for origin in origins]

    # then each protocol gets its own addresses
    v4, v6 = f"/ip4/8.8.4.4/tcp/4001/p2p/{PEER}", f"/ip6/2001:4860::8844/tcp/4001/p2p/{PEER}"
    assert dialed == [[v4], [v6], [v4, v6]]


@pytest.mark.parametrize(
    ("dns", "reason"),
    [
        (FakeDns(), "resolves to no address"),
        (FakeDns(failing=["peer.example"]), "DNS lookup of peer.example failed: SERVFAIL"),
        (FakeDns(a={"peer.example": [f"8.8.{i // 256}.{i % 256}" for i in range(17)]}), "leads to more than 16"),
    ],
)
def test_a_name_that_cannot_be_checked_whole_is_dropped(dns: FakeDns, reason: str) -> None:
    resolved = resolver(dns).resolve([f"/dns4/peer.example/tcp/4001/p2p/{PEER}"])

    assert resolved.dial == []
    assert reason in resolved.dropped[0].reason


def test_an_origin_with_many_addresses_is_dialed_at_a_few() -> None:
    # given a name with more global addresses than the nodes dial
    ips = [f"8.8.4.{i}" for i in range(1, 9)]
    dns = FakeDns(a={"many.example": ips})

    # when resolved
    resolved = resolver(dns).resolve([f"/dns4/many.example/tcp/4001/p2p/{PEER}"])

    # then every address was checked, and the first few are dialed
    assert resolved.dial == [f"/ip4/{ip}/tcp/4001/p2p/{PEER}" for ip in ips[: origins_module.DIALED_PER_ORIGIN]]


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        (f"/ip4/10.0.0.1/tcp/4001/p2p/{OTHER_PEER}/p2p-circuit/p2p/{PEER}", "10.0.0.1, in 10.0.0.0/8 (private)"),
        (
            f"/ip4/8.8.8.8/tcp/4001/p2p/{OTHER_PEER}/p2p-circuit/ip4/127.0.0.1/tcp/1/p2p/{PEER}",
            "127.0.0.1, in 127.0.0.0/8 (loopback)",
        ),
        (
            f"/ip4/8.8.8.8/tcp/4001/p2p/{OTHER_PEER}/p2p-circuit/dns4/peer.example/tcp/1/p2p/{PEER}",
            "/dns4 past the address's start",
        ),
        (f"/tcp/4001/p2p/{PEER}", "a node cannot dial /tcp safely"),
    ],
)
def test_every_host_in_an_origin_is_checked_not_only_the_first(origin: str, reason: str) -> None:
    resolved = resolver().resolve([origin])

    assert resolved.dial == []
    assert resolved.dropped[0].reason == reason


@pytest.mark.parametrize(
    "origin",
    [f"/ip4/8.8.8.8/tcp/4001/p2p/{OTHER_PEER}/p2p-circuit/p2p/{PEER}", f"/p2p/{PEER}"],
)
def test_a_circuit_through_a_global_relay_and_a_bare_peer_id_are_dialed_as_given(origin: str) -> None:
    assert resolver().resolve([origin]).dial == [origin]


# -- dnsaddr ----------------------------------------------------------------------


def test_dnsaddr_follows_the_records_of_its_peer_through_nested_names_to_addresses() -> None:
    # given a bootstrap-style dnsaddr: one record per peer, each naming a
    # per-host dnsaddr whose records are addresses (and a TXT that is not a record)
    dns = FakeDns(
        txt={
            "_dnsaddr.bootstrap.example": [
                f"dnsaddr=/dnsaddr/sjc.bootstrap.example/p2p/{PEER}",
                f"dnsaddr=/dnsaddr/ams.bootstrap.example/p2p/{OTHER_PEER}",
                "v=spf1 -all",
            ],
            "_dnsaddr.sjc.bootstrap.example": [
                f"dnsaddr=/ip4/147.75.80.1/tcp/4001/p2p/{PEER}",
                f"dnsaddr=/dns6/sjc.example/udp/4001/quic-v1/p2p/{PEER}",
                "dnsaddr=not an address",
            ],
        },
        aaaa={"sjc.example": ["2604:1380:1::1"]},
    )

    # when resolved
    resolved = resolver(dns).resolve([f"/dnsaddr/bootstrap.example/p2p/{PEER}"])

    # then the peer's addresses are dialed, and the other peer's records never looked up
    assert resolved.dial == [
        f"/ip4/147.75.80.1/tcp/4001/p2p/{PEER}",
        f"/ip6/2604:1380:1::1/udp/4001/quic-v1/p2p/{PEER}",
    ]
    assert ("_dnsaddr.ams.bootstrap.example", "TXT") not in dns.queries


@pytest.mark.parametrize(
    ("txt", "a", "reason"),
    [
        # one private record among global ones drops the origin whole
        (
            {
                "_dnsaddr.corp.example": [
                    f"dnsaddr=/ip4/8.8.8.8/tcp/4001/p2p/{PEER}",
                    f"dnsaddr=/ip4/10.0.0.5/tcp/4001/p2p/{PEER}",
                ]
            },
            {},
            "10.0.0.5, in 10.0.0.0/8 (private)",
        ),
        # a record naming a host inside the VPC
        (
            {"_dnsaddr.corp.example": [f"dnsaddr=/dns4/db.corp.internal/tcp/4001/p2p/{PEER}"]},
            {"db.corp.internal": ["172.31.3.4"]},
            "db.corp.internal resolves to 172.31.3.4",
        ),
        # records of other peers only
        ({"_dnsaddr.corp.example": [f"dnsaddr=/ip4/8.8.8.8/tcp/4001/p2p/{OTHER_PEER}"]}, {}, "resolves to no address"),
        # a loop
        (
            {"_dnsaddr.corp.example": [f"dnsaddr=/dnsaddr/corp.example/p2p/{PEER}"]},
            {},
            "dnsaddr records nest deeper than 4",
        ),
        # too many lookups: a record per name, each with its own lookup
        (
            {"_dnsaddr.corp.example": [f"dnsaddr=/dns4/h{i}.example/tcp/4001/p2p/{PEER}" for i in range(16)]},
            {f"h{i}.example": ["8.8.8.8"] for i in range(16)},
            "needs more than 16 DNS lookups",
        ),
    ],
)
def test_a_dnsaddr_that_leads_anywhere_unsafe_or_nowhere_is_dropped(txt, a, reason: str) -> None:
    resolved = resolver(FakeDns(a=a, txt=txt)).resolve([f"/dnsaddr/corp.example/p2p/{PEER}"])

    assert resolved.dial == []
    assert reason in resolved.dropped[0].reason


# -- several origins, and time ------------------------------------------------------


def test_each_origin_is_judged_alone_and_each_address_dialed_once() -> None:
    # given a good name, a bad name, an IP origin and a name resolving to that same IP
    dns = FakeDns(a={"good.example": ["8.8.4.4"], "bad.example": ["127.0.0.1"], "same.example": ["8.8.4.4"]})
    good = f"/dns4/good.example/tcp/4001/p2p/{PEER}"
    bad = f"/dns4/bad.example/tcp/4001/p2p/{PEER}"
    same = f"/dns4/same.example/tcp/4001/p2p/{PEER}"
    literal = f"/ip4/8.8.8.8/tcp/4001/p2p/{OTHER_PEER}"

    # when resolved together
    resolved = resolver(dns).resolve([bad, good, literal, same])

    # then the good ones are dialed in order, once each, and the bad one reported
    assert resolved.dial == [f"/ip4/8.8.4.4/tcp/4001/p2p/{PEER}", literal]
    assert [dropped.origin for dropped in resolved.dropped] == [bad]


def test_names_not_resolved_within_the_time_budget_are_dropped() -> None:
    # given DNS whose every answer takes 3 seconds of a test clock
    now = [0.0]
    dns = FakeDns(
        a={"slow.example": ["8.8.4.4"]},
        txt={"_dnsaddr.slower.example": [f"dnsaddr=/dns/slow.example/tcp/4001/p2p/{PEER}"]},
        on_query=lambda: now.__setitem__(0, now[0] + 3.0),
    )

    # when a name needing two lookups is resolved (A asked at 0 s, AAAA at 3 s),
    # then one needing three (TXT at 0 s, A at 3 s, AAAA at 6 s: past the 5 s budget)
    first = OriginResolver(dns, clock=lambda: now[0]).resolve([f"/dns/slow.example/tcp/4001/p2p/{PEER}"])
    now[0] = 0.0
    second = OriginResolver(dns, clock=lambda: now[0]).resolve([f"/dnsaddr/slower.example/p2p/{PEER}"])

    # then the first is dialed, and the second dropped
    assert first.dial == [f"/ip4/8.8.4.4/tcp/4001/p2p/{PEER}"]
    assert second.dial == []
    assert second.dropped[0].reason == "not resolved within 5 s"


def test_no_origins_ask_nothing() -> None:
    dns = FakeDns()

    assert resolver(dns).resolve([]).dial == []
    assert dns.queries == []
