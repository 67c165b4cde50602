"""Where a webhook may be sent: the production rules for origins
(chalicelib.pins.multiaddrs.NON_GLOBAL_RANGES), applied to URLs.

An endpoint's host is resolved here, every address it has is checked, and
the delivery connects to the address checked (chalicelib.webhooks.sender):
no second resolution can answer otherwise between the check and the
connection (DNS rebinding). A host with one global and one private address
is refused: it could be reached at either. The check runs when the
endpoint is registered and again before every delivery.

Production takes https only and global addresses only. The local stack
(ALLOW_LOOPBACK_WEBHOOKS) also takes loopback addresses, and http to them
alone: a receiver on the developer's machine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.pins.multiaddrs import IPAddress, non_global_range
from chalicelib.worker.origins import Dns, LookupFailed, SystemDns

RESOLVE_SECONDS = 2.0
MAX_ADDRESSES = 16
_PORTS = {"https": 443, "http": 80}


class EndpointRefused(Exception):
    """Why a URL is not sent to."""


@dataclass(frozen=True)
class Target:
    """A URL checked: what to connect to (`address`) and what to ask for."""

    scheme: str
    host: str  # as the URL names it: the Host header and TLS's server name
    port: int
    path: str  # with the query
    address: str


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int
    path: str


def _parsed(url: str) -> _Url:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise EndpointRefused(f"not a URL: {error}") from error
    if parts.scheme not in _PORTS:
        raise EndpointRefused("the URL must be https")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused("the URL may not hold credentials")
    if parts.fragment:
        raise EndpointRefused("the URL may not hold a fragment")
    if not parts.hostname:
        raise EndpointRefused("the URL has no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Url(parts.scheme, parts.hostname, port or _PORTS[parts.scheme], path)


class AddressCheck:
    def __init__(self, dns: Dns | None = None, allow_loopback: bool = False) -> None:
        self._dns = dns or SystemDns()
        self._allow_loopback = allow_loopback

    def __call__(self, url: str) -> Target:
        """The URL's target; EndpointRefused when it may not be sent to."""
        parsed = _parsed(url)
        addresses = self._addresses(parsed.host)
        for address in addresses:
            self._check(parsed.host, address)
        loopback = all(address.is_loopback for address in addresses)
        if parsed.scheme != "https" and not (self._allow_loopback and loopback):
            raise EndpointRefused("the URL must be https")
        return Target(parsed.scheme, parsed.host, parsed.port, parsed.path, str(addresses[0]))

    def _check(self, host: str, address: IPAddress) -> None:
        if self._allow_loopback and address.is_loopback:
            return
        where = non_global_range(address)
        if where is not None:
            network, label = where
            named = str(address) if host == str(address) else f"{host} resolves to {address}"
            raise EndpointRefused(f"{named}, in {network} ({label})")

    def _addresses(self, host: str) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass  # a name
        found: list[IPAddress] = []
        for version in (4, 6):
            try:
                answers = self._dns.addresses(host, version, RESOLVE_SECONDS)
            except LookupFailed as error:
                raise EndpointRefused(f"DNS lookup of {host} failed: {error}") from error
            for text in answers:
                try:
                    found.append(ipaddress.ip_address(text))
                except ValueError as error:
                    raise EndpointRefused(f"{host} resolves to {text!r}, not an IP address") from error
        if not found:
            raise EndpointRefused(f"{host} resolves to no address")
        if len(found) > MAX_ADDRESSES:
            raise EndpointRefused(f"{host} resolves to more than {MAX_ADDRESSES} addresses")
        return found
