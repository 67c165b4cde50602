"""Peer multiaddrs: where a peer listens, ending in /p2p/<peer ID>.

Clients send them as pin origins and nodes advertise them as delegates; both
are handed to IPFS nodes to dial, so they must name the peer. Addresses into
local networks are flagged: dialled from the service's nodes they would reach
the wrong host, or none.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

MAX_MULTIADDR_CHARS = 1024

_SHA2_256, _SHA2_256_BYTES = 0x12, 32
# libp2p inlines public keys of up to 42 bytes with the identity hash.
_IDENTITY, _MAX_INLINE_KEY_BYTES = 0x00, 42
_PEER_ID_RULE = "peer ID must be a sha2-256 hash or an inlined key of at most 42 bytes"

# Non-global ranges spelled out rather than left to `is_global` alone:
# it calls multicast global and its tables have changed between Pythons.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")

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
    # False when it points into a private, loopback or otherwise local network.
    is_public: bool


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
    return PeerAddress(text=text, peer_id=peer_id, is_public=_is_public(components))


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


def _is_public(components: list[tuple[Any, Any]]) -> bool:
    for protocol, value in components:
        if protocol.name in ("ip4", "ip6"):
            return _is_global_ip(ipaddress.ip_address(value))
    # DNS names are left to the dialling node to resolve; an address with no
    # IP at all has nothing to classify.
    return True


def _is_global_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip in _SHARED_ADDRESS_SPACE
        or ip in _UNIQUE_LOCAL
    )
