"""The local stack as an outside client drives it: `python -m devstack` on
random loopback ports, found through its stack.json, and spoken to only over
HTTP: the pinning API, the Kubo RPC of "your node" and, to check what they
hold, of the fleet nodes."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.env_file import read_env_file
from devstack.state import AWS_ENV
from devstack.worker import READY_PREFIX as WORKER_READY
from tests.support.api import ApiClient
from tests.support.served_stack import ServedStack, served_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 20
HTTP_TIMEOUT_S = 30
POLL_S = 0.1
FINAL = ("pinned", "failed")


@dataclass(frozen=True)
class Kubo:
    """One Kubo RPC endpoint of the stack (the fleet's need the stack's secret)."""

    name: str
    rpc_url: str
    multiaddr: str
    pid: int
    secret: str | None = None

    def call(self, command: str, files: dict[str, Any] | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        return requests.post(
            f"{self.rpc_url}/api/v0/{command}", params=params, files=files, headers=headers, timeout=HTTP_TIMEOUT_S
        )

    def add(self, data: bytes, only_hash: bool = False) -> str:
        """Adds `data` as a file and returns its CID; `only_hash`: the CID alone, nothing stored."""
        response = self.call("add", files={"file": ("data.bin", data)}, **{"only-hash": str(only_hash).lower()})
        assert response.status_code == 200, response.text
        return json.loads(response.text.splitlines()[-1])["Hash"]

    def has_pin(self, cid: str) -> bool:
        response = self.call("pin/ls", arg=cid, type="recursive")
        return response.status_code == 200 and cid in response.json().get("Keys", {})


class Stack:
    """A running stack seen from outside: stack.json, the API, the Kubo RPCs."""

    def __init__(self, served: ServedStack) -> None:
        self.served = served
        info = served.info()
        self.replication_factor: int = info["replication_factor"]
        self.fleet = [
            Kubo(node["node_id"], node["rpc_url"], node["multiaddrs"][0], node["pid"], info["kubo_rpc_secret"])
            for node in info["fleet"]
        ]
        mine = info["your_node"]
        self.your_node = Kubo("your-node", mine["rpc_url"], mine["multiaddrs"][0], mine["pid"])
        self.api = served.api()

    def content(self, size: int = 256 * 1024, only_hash: bool = False) -> tuple[str, bytes]:
        """Fresh random content on your node: (CID, bytes)."""
        data = os.urandom(size)
        return self.your_node.add(data, only_hash=only_hash), data

    def pin(self, cid: str, api: ApiClient | None = None, **fields: Any) -> dict[str, Any]:
        """POST /pins with your node as origin."""
        return (api or self.api).pin(cid, origins=[self.your_node.multiaddr], **fields)

    def replace(self, request_id: str, cid: str) -> dict[str, Any]:
        """POST /pins/{requestid} with the new CID and your node as origin."""
        reply = self.api.request(
            "POST", f"/pins/{request_id}", json_body={"cid": cid, "origins": [self.your_node.multiaddr]}
        )
        assert reply.status == 202, reply.body
        return reply.json

    def is_gone(self, request_id: str) -> bool:
        reply = self.api.request("GET", f"/pins/{request_id}")
        return (reply.status, reply.reason) == (404, "NOT_FOUND")

    def pinned(self, request_id: str, timeout: float) -> dict[str, Any]:
        """The request's status once final, which must be `pinned`."""
        status = follow(self.api, request_id, timeout)[1]
        assert status["status"] == "pinned", status
        return status

    def holders(self, cid: str, nodes: Sequence[Kubo] | None = None) -> list[str]:
        return [node.name for node in (self.fleet if nodes is None else nodes) if node.has_pin(cid)]

    def new_tenant(self, name: str) -> ApiClient:
        """A tenant of its own, made as an operator does: `python -m cli.admin` against the stack's AWS."""
        env = {**os.environ, **read_env_file(self.served.state_dir / AWS_ENV)}

        def admin(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "cli.admin", *args],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        tenant_id = admin("tenants", "create", name)
        return self.served.api(admin("tokens", "issue", tenant_id, "--label", "e2e"))


@contextlib.contextmanager
def running_stack(
    tmp_path_factory: pytest.TempPathFactory, args: Sequence[str], env: Mapping[str, str]
) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("stack")
    with served_stack(
        state_dir,
        ["--user-node-port", "auto", *args],
        # Filecoin copies (a fake chain and providers, a tracker every 2 s) only where a test asks for
        # them, and no plan's limits (a create under limits reads the tenant's usage: 14 Queries).
        env={"FILECOIN_BACKEND": "off", "DEFAULT_PLAN": "unlimited", **env},
        start_timeout=START_TIMEOUT_S,
        stop_timeout=STOP_TIMEOUT_S,
    ) as served:
        yield Stack(served)


@contextlib.contextmanager
def outside_worker(state_dir: Path, timeout: float = 60) -> Iterator[subprocess.Popen]:
    """`python -m devstack.worker --state-dir state_dir`, as a client of a
    `--no-worker` stack runs it; yielded once it says it polls."""
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.worker", "--state-dir", str(state_dir)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        deadline = time.monotonic() + timeout
        output: list[str] = []
        while not any(line.startswith(WORKER_READY) for line in output):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"the worker did not start within {timeout:g} s ({process.poll()}):\n{''.join(output)}")
            if select.select([process.stdout], [], [], POLL_S)[0]:
                output.append(process.stdout.readline())
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def get_status(api: ApiClient, request_id: str) -> dict[str, Any]:
    reply = api.request("GET", f"/pins/{request_id}")
    assert reply.status == 200, reply.body
    return reply.json


def wait_until(
    api: ApiClient,
    request_ids: Iterable[str],
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
) -> dict[str, dict[str, Any]]:
    """GET each request until `done` holds for all; fails listing the others
    (status and info: the reason they give, if any) after `timeout` seconds.

    One request is polled at a time, the next once it is done: all are
    waited for just the same, with a GET per POLL_S rather than one per
    request (which would contend with the stack for the CPU, and for the
    token's rate limit)."""
    waiting = list(request_ids)
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while waiting:
        seen[waiting[0]] = get_status(api, waiting[0])
        if done(seen[waiting[0]]):
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            stuck = {rid: get_status(api, rid) for rid in waiting}
            listed = "\n".join(f"  {rid}: {status['status']} {status['info']}" for rid, status in stuck.items())
            pytest.fail(f"{len(waiting)} request(s) not {what} within {timeout:g} s:\n{listed}")
        time.sleep(POLL_S)
    return seen


def follow(api: ApiClient, request_id: str, timeout: float) -> tuple[list[str], dict[str, Any]]:
    """GET the request until it is pinned or failed: the statuses seen (each
    change once) and the last status; fails after `timeout` with its info."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        status = get_status(api, request_id)
        if not seen or seen[-1] != status["status"]:
            seen.append(status["status"])
        if status["status"] in FINAL:
            return seen, status
        if time.monotonic() > deadline:
            pytest.fail(f"{request_id} still {status['status']} after {timeout:g} s (seen {seen}): {status['info']}")
        time.sleep(POLL_S / 2)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} within {timeout:g} s")
        time.sleep(POLL_S)


def kill(pid: int) -> None:
    """SIGKILL, as when a machine dies."""
    os.kill(pid, signal.SIGKILL)
