"""infra/fleet.yaml's Kubo address filters are the worker's non-global ranges.

The node's config step runs here on a config as `ipfs init --profile server`
writes it, and the filters it leaves must be address_filters() exactly: one
list of ranges (chalicelib/pins/multiaddrs.py NON_GLOBAL_RANGES) behind both
the worker's origin checks and what Kubo itself refuses to dial."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

from chalicelib.pins.multiaddrs import NON_GLOBAL_RANGES, address_filters
from tests.infra.test_fleet_template import heredoc, script

# Kubo's server profile (config/profile.go, defaultServerFilters), which the
# node's config step replaces.
SERVER_PROFILE_FILTERS = [
    "/ip4/10.0.0.0/ipcidr/8",
    "/ip4/100.64.0.0/ipcidr/10",
    "/ip4/169.254.0.0/ipcidr/16",
    "/ip4/172.16.0.0/ipcidr/12",
    "/ip4/192.0.0.0/ipcidr/24",
    "/ip4/192.0.2.0/ipcidr/24",
    "/ip4/192.168.0.0/ipcidr/16",
    "/ip4/198.18.0.0/ipcidr/15",
    "/ip4/198.51.100.0/ipcidr/24",
    "/ip4/203.0.113.0/ipcidr/24",
    "/ip4/240.0.0.0/ipcidr/4",
    "/ip6/100::/ipcidr/64",
    "/ip6/2001:2::/ipcidr/48",
    "/ip6/2001:db8::/ipcidr/32",
    "/ip6/fc00::/ipcidr/7",
    "/ip6/fe80::/ipcidr/10",
]


def network(address_filter: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    _, _, address, _, prefix = address_filter.split("/")
    return ipaddress.ip_network(f"{address}/{prefix}")


def configured(tmp_path: Path) -> dict:
    """The config the node's kubo-configure step writes over a server-profile one."""
    config = tmp_path / "config"
    profile = {
        "Addresses": {"Swarm": ["/ip4/0.0.0.0/tcp/4001"], "NoAnnounce": SERVER_PROFILE_FILTERS},
        "Swarm": {"AddrFilters": SERVER_PROFILE_FILTERS},
    }
    config.write_text(json.dumps(profile))
    env = {
        **os.environ,
        "IPFS_PATH": str(tmp_path),
        "SWARM_PORT": "4001",
        "PUBLIC_IP": "198.51.100.23",
        "PRIVATE_IP": "10.40.0.17",
        "RPC_PORT": "5001",
        "ENABLE_GATEWAY": "false",
        "GATEWAY_PORT": "8080",
        "RPC_SECRET": "secret",
        "STORAGE_MAX_GB": "450",
    }
    step = heredoc(script("/usr/local/sbin/kubo-configure"), "python3 - ")
    subprocess.run([sys.executable, "-", str(config)], input=step, text=True, env=env, check=True)
    return json.loads(config.read_text())


def test_the_nodes_filter_and_never_announce_exactly_the_workers_non_global_ranges(tmp_path):
    # given the node's config step run over the server profile's config
    config = configured(tmp_path)

    # then Kubo refuses to dial (and never announces) exactly the rendered ranges
    assert config["Swarm"]["AddrFilters"] == address_filters(), "paste address_filters() into infra/fleet.yaml"
    assert config["Addresses"]["NoAnnounce"] == address_filters()


def test_the_filters_cover_every_non_global_range_and_what_the_server_profile_filtered():
    filters = [network(text) for text in address_filters()]

    def covered(wanted: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
        return any(wanted.version == have.version and wanted.subnet_of(have) for have in filters)

    assert [net for net, _ in NON_GLOBAL_RANGES if not covered(net)] == []
    assert [text for text in SERVER_PROFILE_FILTERS if not covered(network(text))] == []
    # the two the issue found missing from the server profile
    assert covered(ipaddress.ip_network("127.0.0.0/8")) and covered(ipaddress.ip_network("0.0.0.0/8"))
