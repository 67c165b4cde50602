import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.pins.multiaddrs import InvalidMultiaddr, join_components, parse_peer_multiaddr

# A bootstrap node's RSA peer ID (sha2-256) and an Ed25519 one (identity).
RSA_PEER = "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC"
ED25519_PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
# The same two kinds of peer ID written as libp2p-key CIDv1s, with their base58 forms.
ED25519_PEER_BASE36 = "k51qzi5uqu5dhgl0eqm5xhr6f2hh6t6u8ygx8bobd4wozhnc7d7lpaq7jasbjo"
ED25519_PEER_BASE36_AS_BASE58 = "12D3KooWDGU18KPQ7gD1YbzEBF9YS2RvG83zPdbBWeBMVd9UdzvX"
RSA_PEER_BASE32 = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"
RSA_PEER_BASE32_AS_BASE58 = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"

CERTHASH = "uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ"


@pytest.mark.parametrize(
    ("text", "peer_id"),
    [
        (f"/ip4/1.2.3.4/tcp/4001/p2p/{RSA_PEER}", RSA_PEER),
        (f"/ip4/1.2.3.4/udp/4001/quic-v1/p2p/{ED25519_PEER}", ED25519_PEER),
        (f"/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/{CERTHASH}/p2p/{ED25519_PEER}", ED25519_PEER),
        (f"/dns4/node.example.com/tcp/4001/p2p/{RSA_PEER}", RSA_PEER),
        (f"/dns6/node.example.com/udp/4001/quic-v1/p2p/{RSA_PEER}", RSA_PEER),
        (f"/dnsaddr/bootstrap.libp2p.io/p2p/{RSA_PEER}", RSA_PEER),
        (f"/ip6/2001:4860::8888/tcp/4001/p2p/{ED25519_PEER}", ED25519_PEER),
        (f"/ip4/8.8.8.8/tcp/443/tls/sni/node.example.com/ws/p2p/{RSA_PEER}", RSA_PEER),
        (f"/p2p/{RSA_PEER}", RSA_PEER),
    ],
)
def test_given_a_dialable_address_when_parsed_then_accepted_with_its_peer_id(text: str, peer_id: str) -> None:
    address = parse_peer_multiaddr(text)

    assert address.text == text
    assert address.peer_id == peer_id


def test_given_a_relay_circuit_when_parsed_then_peer_id_is_the_target_not_the_relay() -> None:
    text = f"/ip4/147.75.80.1/tcp/4001/p2p/{RSA_PEER}/p2p-circuit/p2p/{ED25519_PEER}"

    address = parse_peer_multiaddr(text)

    assert address.peer_id == ED25519_PEER
    assert address.components == (
        ("ip4", "147.75.80.1"),
        ("tcp", "4001"),
        ("p2p", RSA_PEER),
        ("p2p-circuit", None),
        ("p2p", ED25519_PEER),
    )
    assert join_components(address.components) == text


@pytest.mark.parametrize(
    ("peer", "base58"),
    [(ED25519_PEER_BASE36, ED25519_PEER_BASE36_AS_BASE58), (RSA_PEER_BASE32, RSA_PEER_BASE32_AS_BASE58)],
)
def test_given_a_cidv1_peer_id_when_parsed_then_peer_id_is_its_base58_form(peer: str, base58: str) -> None:
    text = f"/ip4/8.8.8.8/tcp/4001/p2p/{peer}"

    address = parse_peer_multiaddr(text)

    assert address.peer_id == base58
    assert address.text == text


@pytest.mark.parametrize(
    "text",
    [
        "/ip4/8.8.8.8/tcp/4001",
        "/ip4/8.8.8.8/udp/4001/quic-v1",
        "/dns4/node.example.com/tcp/4001",
        f"/ip4/8.8.8.8/tcp/4001/p2p/{RSA_PEER}/p2p-circuit",
        f"/p2p/{RSA_PEER}/tcp/4001",
        "/",
    ],
)
def test_given_an_address_not_ending_in_p2p_when_parsed_then_rejected(text: str) -> None:
    with pytest.raises(InvalidMultiaddr, match="must end with /p2p/<peer ID>"):
        parse_peer_multiaddr(text)


@pytest.mark.parametrize(
    "peer",
    [
        "junk",
        "QmJunk",
        "11",  # identity multihash of nothing
        "5uapmdgoHPBsaeGS6sTGgHiMhz8EmZ",  # sha2-256 multihash cut to 20 bytes
        "1Eyy5ThQpnMdwLZUFGfmqkLbU7gYyZrSy7qf5EPu8bBwwvqnrQzFhxM46SAQS",  # 43-byte identity
        "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # dag-pb CID, not a key
        # A libp2p-key CID whose hash is sha2-512: no libp2p key is hashed that way.
        "bafzbgqfevpkejdcjkywyfaiv2e5b7thksj7vfngviwjjp6fuhzbnvcjdrpatmjxehxftrxnqqjeisj7msbh3iicxiq4yh2efqulz2ucvdl7"
        "ge",
        RSA_PEER[:-1],
        RSA_PEER + "x",
    ],
)
def test_given_a_junk_peer_id_when_parsed_then_rejected(peer: str) -> None:
    with pytest.raises(InvalidMultiaddr):
        parse_peer_multiaddr(f"/ip4/8.8.8.8/tcp/4001/p2p/{peer}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        f"ip4/8.8.8.8/tcp/4001/p2p/{RSA_PEER}",  # no leading slash
        f"/ip4/8.8.8.8//tcp/4001/p2p/{RSA_PEER}",
        f"/ip4/8.8.8.8/tcp/4001/p2p={RSA_PEER}",
        f"/ip4/999.8.8.8/tcp/4001/p2p/{RSA_PEER}",
        f"/ip4/8.8.8.8/tcp/65536/p2p/{RSA_PEER}",
        f"/ip4/8.8.8.8/tcp/http/p2p/{RSA_PEER}",
        f"/ip6/fe80::1%eth0/tcp/4001/p2p/{RSA_PEER}",
        f"/ip4/8.8.8.8/warp/4001/p2p/{RSA_PEER}",
        f"/ip4/8.8.8.8/tcp/4001/p2p/{RSA_PEER}\n",
        f"/ip4/8.8.8.8/tcp/4001/p2p/ {RSA_PEER}",
        # multiaddr 0.2.0 does not know the legacy /ipfs/ name for /p2p/.
        f"/ip4/8.8.8.8/tcp/4001/ipfs/{RSA_PEER}",
    ],
)
def test_given_an_unparsable_address_when_parsed_then_rejected(text: str) -> None:
    with pytest.raises(InvalidMultiaddr):
        parse_peer_multiaddr(text)


@pytest.mark.parametrize("host", ["/ip6zone/eth0/ip6/fe80::1", "/ip6zone/eth0/ip6/2001:4860::8888"])
def test_given_an_ipv6_zone_when_parsed_then_rejected(host: str) -> None:
    # The library would misread the rest of the address, seeing an IPv4 in the zone name.
    with pytest.raises(InvalidMultiaddr, match="IPv6 zone"):
        parse_peer_multiaddr(f"{host}/tcp/4001/p2p/{RSA_PEER}")


@pytest.mark.parametrize("value", [None, 4001, b"/p2p/" + RSA_PEER.encode()])
def test_given_a_non_string_when_parsed_then_rejected(value: object) -> None:
    with pytest.raises(InvalidMultiaddr, match="non-empty string"):
        parse_peer_multiaddr(value)  # type: ignore[arg-type]


def test_given_an_address_over_1024_characters_when_parsed_then_rejected() -> None:
    padding = "/dns4/" + "a" * 1024
    with pytest.raises(InvalidMultiaddr, match="longer than 1024"):
        parse_peer_multiaddr(f"{padding}/tcp/4001/p2p/{RSA_PEER}")


def test_given_invalid_addresses_when_caught_as_value_error_then_callers_need_not_know_the_type() -> None:
    with pytest.raises(ValueError):
        parse_peer_multiaddr("garbage")


def test_given_a_cold_process_when_the_module_is_imported_then_multiaddr_is_not_loaded() -> None:
    # The Lambda cold start should not pay for multiaddr until an address is parsed.
    probe = "import sys, chalicelib.pins.multiaddrs; print('multiaddr' in sys.modules, 'multiformats' in sys.modules)"
    root = Path(__file__).resolve().parents[2]

    result = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)

    assert result.stdout.split() == ["False", "False"]
