"""Peer multiaddrs: where a peer listens, ending in /p2p/<peer ID>.

Clients send them as pin origins and nodes advertise them as delegates; both
are handed to IPFS nodes to dial, so they must name the peer. NON_GLOBAL_RANGES
lists where a dial from the service's nodes must never lead (the worker checks
origins against it after resolving their names, chalicelib.worker.origins; the
fleet's Kubo address filters are rendered from it, `address_filters`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_MULTIADDR_CHARS = 1024

_SHA2_256, _SHA2_256_BYTES = 0x12, 32
# libp2p inlines public keys of up to 42 bytes with the identity hash.
_IDENTITY, _MAX_INLINE_KEY_BYTES = 0x00, 42
_PEER_ID_RULE = "peer ID must be a sha2-256 hash or an inlined key of at most 42 bytes"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where no origin may lead the fleet's nodes: every range the IANA
# special-purpose registries call not globally reachable, multicast, reserved
# space, and every IPv6 form that embeds an IPv4 address (the node would reach
# that IPv4 host, unchecked). Spelled out rather than left to `is_global`: it
# calls multicast and the embedded forms global, and its tables change between
# Pythons. The first match names the reason; IPv6 outside 2000::/3 (the only
# global unicast space) is caught by the last three however it is written.
NON_GLOBAL_RANGES: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), label)
    for network, label in (
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local, cloud metadata"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, broadcast"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::ffff:0:0/96", "IPv4-mapped"),
        ("::ffff:0:0:0/96", "IPv4-translated"),
        ("::/96", "IPv4-compatible"),
        ("64:ff9b::/96", "NAT64 well-known prefix"),
        ("64:ff9b:1::/48", "NAT64 local-use prefix"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
        ("::/3", "not global unicast"),
        ("4000::/2", "not global unicast"),
        ("8000::/1", "not global unicast"),
    )
)

# Forms the Python library forgives but Go and JS implementations reject, so
# a node given them could not dial: empty components, `/p2p=<id>` and
# whitespace (stripped from base58 values).
_LENIENT_SYNTAX = re.compile(r"//|/[a-z0-9-]+=|\s")


class InvalidMultiaddr(ValueError):
    pass


@dataclass(frozen=True)
class PeerAddress:
    # Exactly as given.
    text: str
    # Base58btc, the form Kubo prints, even when given as a CIDv1.
    peer_id: str
    # (protocol, value or None), decoded: /p2p/ values in base58btc too.
    components: tuple[tuple[str, str | None], ...]


def parse_peer_multiaddr(text: str) -> PeerAddress:
    """Validate a multiaddr that must end in /p2p/<peer ID>."""
    if not isinstance(text, str) or not text:
        raise InvalidMultiaddr("multiaddr must be a non-empty string")
    if len(text) > MAX_MULTIADDR_CHARS:
        raise InvalidMultiaddr(f"multiaddr is longer than {MAX_MULTIADDR_CHARS} characters")
    if not text.startswith("/") or _LENIENT_SYNTAX.search(text):
        raise InvalidMultiaddr("multiaddr must look like /ip4/1.2.3.4/tcp/4001/p2p/<peer ID>")
    # Imported here: with multiformats it costs ~80 ms, paid only by requests
    # that carry an address.
    from multiaddr import Multiaddr

    try:
        # items() decodes each value; Multiaddr() alone defers some checks.
        components = list(Multiaddr(text).items())
    except ValueError as error:  # the library's parse errors all subclass it
        # `message` is the reason alone; str() repeats the whole address twice.
        raise InvalidMultiaddr(f"not a valid multiaddr: {getattr(error, 'message', error)}") from error
    # multiaddr 0.2.0 misreads everything after an /ip6zone (it skips the
    # zone's length prefix), and a zone only means something on its own host.
    if any(protocol.name == "ip6zone" for protocol, _ in components):
        raise InvalidMultiaddr("multiaddr must not name an IPv6 zone")
    if not components or components[-1][0].name != "p2p":
        raise InvalidMultiaddr("multiaddr must end with /p2p/<peer ID>")
    peer_id = components[-1][1]
    _check_peer_id(peer_id)
    return PeerAddress(
        text=text, peer_id=peer_id, components=tuple((protocol.name, value) for protocol, value in components)
    )


def _check_peer_id(peer_id: str) -> None:
    # The library re-encodes a libp2p-key CID as a base58 multihash when its
    # hash is sha2-256 or identity; anything else is left as a CID and fails here.
    from multiformats import multibase, multihash

    try:
        code, digest = multihash.unwrap_raw(multibase.decode("z" + peer_id))
    # Like CID decoding, this raises assorted exception types.
    except Exception as error:
        raise InvalidMultiaddr(_PEER_ID_RULE) from error
    if not (
        (code == _SHA2_256 and len(digest) == _SHA2_256_BYTES)
        or (code == _IDENTITY and 0 < len(digest) <= _MAX_INLINE_KEY_BYTES)
    ):
        raise InvalidMultiaddr(_PEER_ID_RULE)


def join_components(components: Sequence[tuple[str, str | None]]) -> str:
    """The multiaddr text of decoded components (the inverse of PeerAddress.components)."""
    return "".join(f"/{protocol}" if value is None else f"/{protocol}/{value}" for protocol, value in components)


def non_global_range(ip: IPAddress) -> tuple[IPNetwork, str] | None:
    """The first of NON_GLOBAL_RANGES holding `ip`, or None when it is global."""
    return next(((network, label) for network, label in NON_GLOBAL_RANGES if ip in network), None)


def address_filters() -> list[str]:
    """NON_GLOBAL_RANGES as Kubo's Swarm.AddrFilters: the fewest CIDR blocks, IPv4 first."""
    filters = []
    for version in (4, 6):
        networks = [network for network, _ in NON_GLOBAL_RANGES if network.version == version]
        filters += [
            f"/ip{version}/{network.network_address}/ipcidr/{network.prefixlen}"
            for network in ipaddress.collapse_addresses(networks)  # type: ignore[type-var]  # one family each
        ]
    return filters
