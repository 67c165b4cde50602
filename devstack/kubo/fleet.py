"""Start Kubo nodes as child processes for local runs and tests (never deployed).

    from devstack.kubo.fleet import start_node, running_fleet

    node = start_node("a", base_dir)          # RunningNode
    node.rpc_url, node.peer_id, node.multiaddr, node.process
    node.kill()                               # SIGKILL: the node "dies"
    node.stop()                               # SIGTERM: clean shutdown

    with running_fleet(2) as (a, b):          # temp repos, removed afterwards
        ...

Each node is `python -m devstack.kubo.node_process` (see there) with its repo
in `<base_dir>/<name>` and its output in `<base_dir>/<name>.log`; ports are
chosen by the OS on 127.0.0.1 and read back from the node's ready line. A node
ends when the process that started it is gone, even if that one was killed
with SIGKILL (`devstack.lifeline`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import lifeline
from devstack.kubo.node_process import READY_PREFIX
from devstack.state import REPO_ROOT


class NodeStartError(RuntimeError):
    """The node did not start: the first line says why (the node's last words),
    the next ones are the end of its log."""


@dataclass
class RunningNode:
    name: str
    rpc_url: str
    peer_id: str
    multiaddr: str
    process: subprocess.Popen
    repo: Path
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def startup_seconds(self) -> float:
        return float(self.info.get("startup_seconds", 0.0))

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as when a machine dies: no cleanup, the RPC port goes away."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM: the node closes cleanly (CleanupNode); SIGKILL if it hangs."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _output_since(log_path: Path, offset: int) -> str:
    """What the node wrote after `offset` (a restarted node appends to its log)."""
    try:
        with open(log_path, "rb") as stream:
            stream.seek(offset)
            return stream.read().decode(errors="replace")
    except OSError:
        return ""


def _read_ready(log_path: Path, offset: int = 0) -> dict[str, Any] | None:
    """The ready line written after `offset`."""
    for line in _output_since(log_path, offset).splitlines():
        if line.startswith(READY_PREFIX):
            return json.loads(line[len(READY_PREFIX) :])
    return None


def _start_failed(name: str, what: str, log_path: Path, offset: int) -> NodeStartError:
    """The node's last line (an exception's message, a refusal) is the cause."""
    lines = [line.rstrip() for line in _output_since(log_path, offset).splitlines() if line.strip()]
    cause = lines[-1] if lines else "it printed nothing"
    tail = "\n".join(lines[-30:])
    return NodeStartError(f"node {name} {what}: {cause} (log: {log_path})\n{tail}")


def start_node(
    name: str,
    base_dir: os.PathLike,
    *,
    swarm_port: int = 0,
    rpc_port: int = 0,
    auth_token: str | None = None,
    storage_max: str | None = None,
    backend: str = "embedded",
    timeout: float = 60.0,
    import_pin_grace: float | None = None,
) -> RunningNode:
    """Start one node in its own process and wait until its RPC is served."""
    base = Path(base_dir)
    repo = base / name
    log_path = base / f"{name}.log"
    base.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "devstack.kubo.node_process",
        "--repo",
        str(repo),
        "--swarm-port",
        str(swarm_port),
        "--rpc-port",
        str(rpc_port),
        "--backend",
        backend,
    ]
    if storage_max:
        command += ["--storage-max", storage_max]
    if import_pin_grace is not None:
        command += ["--import-pin-grace", str(import_pin_grace)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("KUBO_RPC_TOKEN", None)
    if auth_token:
        env["KUBO_RPC_TOKEN"] = auth_token  # not on the command line, where `ps` shows it
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(base),
            **lifeline.child_options(env),
        )
    deadline = time.monotonic() + timeout
    while True:
        info = _read_ready(log_path, offset)
        if info:
            break
        if process.poll() is not None:
            raise _start_failed(name, f"exited with {process.returncode}", log_path, offset)
        if time.monotonic() > deadline:
            process.kill()
            process.wait(10)
            raise _start_failed(name, f"not ready after {timeout}s", log_path, offset)
        time.sleep(0.05)
    return RunningNode(name, info["rpc_url"], info["peer_id"], info["multiaddr"], process, repo, log_path, info)


@contextlib.contextmanager
def running_fleet(
    count: int,
    base_dir: os.PathLike | None = None,
    *,
    prefix: str = "node",
    keep: bool = False,
    **options: Any,
) -> Iterator[list[RunningNode]]:
    """Start `count` nodes (`node0`, `node1`, ...); stop them and remove the repos after.

    With no `base_dir` a temporary directory is used and removed; a given
    `base_dir` is left in place, only the nodes' repos and logs are removed
    (unless `keep`).
    """
    temp = None
    if base_dir is None:
        temp = tempfile.mkdtemp(prefix="kubo-fleet-")
        base_dir = temp
    nodes: list[RunningNode] = []
    try:
        for index in range(count):
            nodes.append(start_node(f"{prefix}{index}", base_dir, **options))
        yield nodes
    finally:
        for node in nodes:
            node.stop()
        if temp is not None and not keep:
            shutil.rmtree(temp, ignore_errors=True)
        elif not keep:
            for node in nodes:
                shutil.rmtree(node.repo, ignore_errors=True)
                node.log_path.unlink(missing_ok=True)
