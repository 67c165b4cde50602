"""The local stack (`python -m devstack`) as a test runs it: a subprocess on
random loopback ports, ready when it says so, stopped cleanly at the end,
with none of the processes it named in stack.json left behind."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.console import READY_LINE
from devstack.env_file import read_env_file
from devstack.state import STACK_FILE
from tests.support.api import ApiClient

REPO_ROOT = Path(__file__).resolve().parents[2]
# The stack keeps its bytecode in <state dir>/pycache, which is empty in a
# test's fresh state dir: each of its processes would compile every module it
# imports, the standard library's included (1.5 s of each start). The stacks
# tests start share this one instead (Python writes its files atomically, and
# checks each against its source).
SHARED_PYCACHE = Path(tempfile.gettempdir()) / f"pinning-service-tests-pycache-{os.getuid()}"


def shared_bytecode(state_dir: Path) -> dict[str, str]:
    """Makes `state_dir`'s pycache a link to SHARED_PYCACHE; the environment
    that lets the stack write bytecode there (whatever the test run's says)."""
    SHARED_PYCACHE.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    link = state_dir / "pycache"
    if not link.is_symlink():
        link.symlink_to(SHARED_PYCACHE, target_is_directory=True)
    return {"PYTHONDONTWRITEBYTECODE": ""}


@dataclass
class ServedStack:
    url: str
    token: str
    state_dir: Path
    # local.env as written by the stack
    env: dict[str, str]
    output: list[str]

    @property
    def log(self) -> Path:
        """The stack's stderr: access log and the app's log lines."""
        return self.state_dir / "stderr.log"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def info(self) -> dict[str, Any]:
        """stack.json as it is now (the worker's pid changes when it is started again)."""
        return json.loads((self.state_dir / STACK_FILE).read_text(encoding="utf-8"))

    def api(self, token: str | None = None) -> ApiClient:
        """A user of the served API (the stack's token by default); every response is checked against openapi.yaml."""
        return ApiClient(_HttpClient(self.url), token or self.token)


@dataclass
class _HttpResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes


class _HttpClient:
    """What ApiClient asks of Chalice's test client (`.http.request`), over real HTTP."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._session = requests.Session()
        self.http = self

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _HttpResponse:
        response = self._session.request(method, self._url + path, headers=headers, data=body, timeout=30)
        return _HttpResponse(response.status_code, dict(response.headers), response.content)


def running(pids: Sequence[int]) -> list[str]:
    """`ps` lines of those of `pids` that still run (zombies count: nobody reaped them)."""
    if not pids:
        return []
    listed = subprocess.run(
        ["ps", "-o", "pid=,stat=,args=", "-p", ",".join(map(str, pids))], capture_output=True, text=True
    )
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def session_processes(session_id: int) -> list[str]:
    """`ps` lines of the processes still in that session."""
    listed = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-s", str(session_id)], capture_output=True, text=True)
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def _stack_pids(state_dir: Path) -> list[int]:
    """Every process stack.json names: the stack, its worker, its Kubo nodes."""
    try:
        info = json.loads((state_dir / STACK_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    parts = [*info["fleet"], info["your_node"], info["worker"]]
    return [info["pid"], *(part["pid"] for part in parts if part and part.get("pid"))]


def _pump(stream: Any, lines: queue.Queue[str | None], output: list[str]) -> None:
    """Drain the child's stdout so it never blocks on a full pipe."""
    for line in stream:
        output.append(line)
        lines.put(line)
    lines.put(None)


def _ready_line(
    lines: queue.Queue[str | None], process: subprocess.Popen[str], start_timeout: float, diagnostics: Callable[[], str]
) -> str:
    """The stack's ready line; fails the test if it exits first or is not ready in time."""
    deadline = time.monotonic() + start_timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"devstack not ready within {start_timeout} s\n{diagnostics()}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            pytest.fail(f"devstack exited ({process.wait()}) before it was ready\n{diagnostics()}")
        if line.startswith(READY_LINE):
            return line


@contextlib.contextmanager
def served_stack(
    state_dir: Path,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    start_timeout: float = 60,
    stop_timeout: float = 10,
    ctrl_c: bool = False,
    share_bytecode: bool = True,
) -> Iterator[ServedStack]:
    """Start the stack with `--port 0 --aws-port 0 --state-dir state_dir` plus `args`;
    fails the test if it is not ready in time, does not exit 0 on SIGTERM, or
    leaves a process of stack.json running or stack.json in place.

    `ctrl_c`: run it in a session of its own and stop it as a terminal's
    Ctrl-C does, with SIGINT to its whole process group; then no process of
    the session may be left either.

    `share_bytecode`: its bytecode cache is SHARED_PYCACHE (`shared_bytecode`),
    not a new one of its own."""
    stack_env = {**(shared_bytecode(state_dir) if share_bytecode else {}), **(env or {})}
    stop_signal = signal.SIGINT if ctrl_c else signal.SIGTERM
    stderr_path = state_dir / "stderr.log"
    command = [sys.executable, "-m", "devstack", "--port", "0", "--aws-port", "0", "--state-dir", str(state_dir), *args]
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **stack_env},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
            start_new_session=ctrl_c,
        )
    output: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines, output), daemon=True)
    pump.start()

    def diagnostics() -> str:
        return (
            f"stdout:\n{''.join(output)}\nstderr:\n{stderr_path.read_text(encoding='utf-8', errors='replace')[-4000:]}"
        )

    try:
        line = _ready_line(lines, process, start_timeout, diagnostics)
        values = read_env_file(state_dir / "local.env")
        assert line.strip() == READY_LINE + values["PINNING_SERVICE_URL"]
        yield ServedStack(values["PINNING_SERVICE_URL"], values["PINNING_SERVICE_TOKEN"], state_dir, values, output)
    finally:
        pids = _stack_pids(state_dir)
        if ctrl_c:
            os.killpg(process.pid, stop_signal)
        else:
            process.send_signal(stop_signal)
        try:
            status = process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"devstack did not stop within {stop_timeout} s of {stop_signal.name}\n{diagnostics()}")
        pump.join(timeout=stop_timeout)
    assert status == 0, f"devstack exited with {status} after {stop_signal.name}\n{diagnostics()}"
    left = running(pids) + (session_processes(process.pid) if ctrl_c else [])
    assert not left, f"left running after devstack stopped: {left}\n{diagnostics()}"
    assert not (state_dir / STACK_FILE).exists(), "stack.json outlived the stack"
