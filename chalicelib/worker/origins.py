"""A pin's origins made safe to dial: names resolved here, Kubo given global IPs only.

Origins are multiaddrs a client chose, and the fleet's nodes dial them
(swarm/connect). A name left to Kubo would be resolved on the node, where it
may point into the VPC, at the node itself or at the instance metadata
service, and a second resolution may answer otherwise than any check made
before it (DNS rebinding). So the worker resolves every name itself (dns,
dns4, dns6, and dnsaddr's TXT records as the multiaddr spec says) and hands
Kubo the IP addresses it found, only when every address the origin led to is
global (chalicelib.pins.multiaddrs.NON_GLOBAL_RANGES). Otherwise the whole
origin is dropped, with a reason: a name with one global and one private
address could be dialed at either.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

from chalicelib.pins.multiaddrs import (
    InvalidMultiaddr,
    IPAddress,
    PeerAddress,
    join_components,
    non_global_range,
    parse_peer_multiaddr,
)

if TYPE_CHECKING:
    import dns.resolver

# Every bound holds per origin, but the time, which holds for all of a pin's
# origins (resolved at once): a hostile origin costs little and holds up no pin.
MAX_DNSADDR_DEPTH = 4  # dnsaddr names in a chain, the origin's own first
MAX_LOOKUPS = 16  # DNS queries
MAX_ADDRESSES = 16  # addresses an origin may lead to, every one checked...
DIALED_PER_ORIGIN = 4  # ...of which the nodes dial at most these (one connection is enough)
RESOLVE_SECONDS = 5.0
QUERY_SECONDS = 2.0

_NAMES = {"dns": (4, 6), "dns4": (4,), "dns6": (6,)}
_DNSADDR = "dnsaddr"
_DNSADDR_RECORD = "dnsaddr="
# A node could dial these first: an IP, or a peer ID its routing looks up
# (whose addresses the fleet's Swarm.AddrFilters check).
_DIALABLE_FIRST = {"ip4", "ip6", "p2p"}
# Hosts past the first component, or not on the network at all.
_NEVER = {*_NAMES, _DNSADDR, "unix"}


class LookupFailed(Exception):
    """DNS gave no answer (timeout, server failure, a malformed name)."""


class Dns(Protocol):
    def addresses(self, name: str, version: int, seconds: float) -> list[str]:
        """A (version 4) or AAAA (6) records of `name`; [] when it has none."""
        ...

    def txt(self, name: str, seconds: float) -> list[str]:
        """TXT records of `name`, each one string; [] when it has none."""
        ...


@dataclass(frozen=True)
class Dropped:
    origin: str
    reason: str


@dataclass(frozen=True)
class ResolvedOrigins:
    # IP multiaddrs (or bare /p2p/ ones) for Kubo, each once, in the origins' order.
    dial: list[str]
    dropped: list[Dropped]


class _Drop(Exception):
    """Why an origin is not dialed at all."""


class OriginResolver:
    def __init__(self, dns: Dns | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._dns = dns or SystemDns()
        self._clock = clock

    def resolve(self, origins: Sequence[str]) -> ResolvedOrigins:
        if not origins:
            return ResolvedOrigins([], [])
        deadline = self._clock() + RESOLVE_SECONDS
        with ThreadPoolExecutor(max_workers=len(origins)) as pool:
            outcomes = list(pool.map(lambda origin: self._origin(origin, deadline), origins))
        dial = [address for outcome in outcomes if isinstance(outcome, list) for address in outcome]
        dropped = [outcome for outcome in outcomes if isinstance(outcome, Dropped)]
        return ResolvedOrigins(list(dict.fromkeys(dial)), dropped)

    def _origin(self, origin: str, deadline: float) -> list[str] | Dropped:
        try:
            found = _Lookups(self._dns, deadline, self._clock).expand(parse_peer_multiaddr(origin), 0)
        except (_Drop, InvalidMultiaddr) as reason:
            return Dropped(origin, str(reason))
        if not found:
            return Dropped(origin, "resolves to no address")
        return found[:DIALED_PER_ORIGIN]


class _Lookups:
    """One origin's resolution, within its bounds."""

    def __init__(self, dns: Dns, deadline: float, clock: Callable[[], float]) -> None:
        self._dns = dns
        self._deadline = deadline
        self._clock = clock
        self._queries = 0
        self._found = 0

    def expand(self, address: PeerAddress, depth: int) -> list[str]:
        """The checked addresses `address` leads to; _Drop when any is not global."""
        protocol, host = address.components[0]
        if protocol == _DNSADDR:
            return self._dnsaddr(address, depth)
        if protocol in _NAMES:
            rest = join_components(address.components[1:])
            found = [
                self._checked(f"/ip{ip.version}/{ip}{rest}", via=host)
                for ip in self._addresses(str(host), _NAMES[protocol])
            ]
        else:
            found = [self._checked(address.text)]
        self._found += len(found)
        if self._found > MAX_ADDRESSES:
            raise _Drop(f"leads to more than {MAX_ADDRESSES} addresses")
        return found

    def _dnsaddr(self, address: PeerAddress, depth: int) -> list[str]:
        if depth >= MAX_DNSADDR_DEPTH:
            raise _Drop(f"dnsaddr records nest deeper than {MAX_DNSADDR_DEPTH}")
        # The spec: records of _dnsaddr.<name> ending as the address does (in its /p2p/<peer ID>).
        suffix = address.components[1:]
        found = []
        for record in self._txt(f"_dnsaddr.{address.components[0][1]}"):
            if not record.startswith(_DNSADDR_RECORD):
                continue  # another TXT record at that name
            try:
                inner = parse_peer_multiaddr(record.removeprefix(_DNSADDR_RECORD))
            except InvalidMultiaddr:
                continue  # no address to dial
            if inner.components[-len(suffix) :] == suffix:
                found += self.expand(inner, depth + 1)
        return found

    def _checked(self, text: str, via: str | None = None) -> str:
        components = parse_peer_multiaddr(text).components
        if components[0][0] not in _DIALABLE_FIRST:
            raise _Drop(f"a node cannot dial /{components[0][0]} safely")
        for protocol, value in components:
            if protocol in _NEVER:
                raise _Drop(f"/{protocol} past the address's start")
            if protocol in ("ip4", "ip6"):
                where = non_global_range(ipaddress.ip_address(str(value)))
                if where is not None:
                    network, label = where
                    named = f"{via} resolves to {value}" if via else str(value)
                    raise _Drop(f"{named}, in {network} ({label})")
        return text

    def _addresses(self, name: str, versions: Sequence[int]) -> list[IPAddress]:
        found = []
        for version in versions:
            for text in self._query(name, partial(self._dns.addresses, name, version)):
                try:
                    found.append(ipaddress.ip_address(text))
                except ValueError as error:
                    raise _Drop(f"{name} resolves to {text!r}, not an IP address") from error
        return found

    def _txt(self, name: str) -> list[str]:
        return self._query(name, partial(self._dns.txt, name))

    def _query(self, name: str, ask: Callable[[float], list[str]]) -> list[str]:
        self._queries += 1
        if self._queries > MAX_LOOKUPS:
            raise _Drop(f"needs more than {MAX_LOOKUPS} DNS lookups")
        left = self._deadline - self._clock()
        if left <= 0:
            raise _Drop(f"not resolved within {RESOLVE_SECONDS:g} s")
        try:
            return ask(min(QUERY_SECONDS, left))
        except LookupFailed as error:
            raise _Drop(f"DNS lookup of {name} failed: {error}") from error


class SystemDns:
    """DNS through dnspython (the stdlib cannot ask for TXT records): the
    servers of /etc/resolv.conf, or those given; names are taken as absolute
    (no search domains, which could turn `instance-data` into a VPC name)."""

    def __init__(self, nameservers: Sequence[str] | None = None, port: int = 53) -> None:
        self._nameservers = nameservers
        self._port = port
        self._resolver: dns.resolver.Resolver | None = None
        self._lock = threading.Lock()

    def addresses(self, name: str, version: int, seconds: float) -> list[str]:
        # An A or AAAA record's text is its address.
        return [record.to_text() for record in self._query(name, "A" if version == 4 else "AAAA", seconds)]

    def txt(self, name: str, seconds: float) -> list[str]:
        from dns.rdtypes.txtbase import TXTBase

        records = self._query(name, "TXT", seconds)
        # A record longer than 255 bytes comes in several strings: one value.
        return [
            b"".join(record.strings).decode("utf-8", "replace") for record in records if isinstance(record, TXTBase)
        ]

    def _query(self, name: str, rdtype: str, seconds: float) -> list[dns.rdata.Rdata]:
        import dns.exception
        import dns.resolver

        try:
            return list(self._get().resolve(name, rdtype, lifetime=seconds, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as error:  # timeouts, failures, malformed names
            raise LookupFailed(str(error) or type(error).__name__) from error

    def _get(self) -> dns.resolver.Resolver:
        # Built on first use: importing dnspython and reading resolv.conf is a
        # cost only pins with named origins pay.
        import dns.resolver

        with self._lock:
            if self._resolver is None:
                resolver = dns.resolver.Resolver(configure=self._nameservers is None)
                if self._nameservers is not None:
                    resolver.nameservers = list(self._nameservers)
                    resolver.port = self._port
                self._resolver = resolver
            return self._resolver
