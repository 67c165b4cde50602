"""The stack (or `make dev`) started in a session of its own, as a terminal or
a service manager starts it: every process it starts, however deep, stays in
that session, so what is left of it after a kill can be listed - and is
killed when the test ends, pass or fail."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.console import READY_LINE
from devstack.state import STACK_FILE
from tests.support.served_stack import REPO_ROOT, session_processes, shared_bytecode

START_TIMEOUT_S = 90
# What the issue asks: every process ended within 10 s of the stack's end.
GONE_WITHIN_S = 10
# On free ports, with the fewest parts that still start every kind of child.
LIGHT_STACK = ["--port", "0", "--aws-port", "0", "--fleet-size", "1", "--user-node-port", "0"]


def poll(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether `condition` came true within `seconds` (checked every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(0.1)
    return True


@dataclass
class Session:
    leader: subprocess.Popen[bytes]  # what the test started: the stack, or make
    state_dir: Path
    stdout: Path
    stderr: Path

    def stack_file(self) -> dict:
        return json.loads((self.state_dir / STACK_FILE).read_text(encoding="utf-8"))

    def alive(self) -> list[str]:
        """`ps` lines of the session's processes still running (a zombie has ended)."""
        self.leader.poll()  # reap it, if it ended: it is ours
        return [line for line in session_processes(self.leader.pid) if line.split()[1][0] != "Z"]

    def all_gone(self, seconds: float = GONE_WITHIN_S) -> bool:
        return poll(lambda: not self.alive(), seconds)

    def diagnostics(self) -> str:
        return (
            f"still running: {self.alive()}\nstdout:\n{self.stdout.read_text(errors='replace')[-3000:]}\n"
            f"stderr:\n{self.stderr.read_text(errors='replace')[-3000:]}"
        )


@contextlib.contextmanager
def stack_session(tmp_path: Path, command: Sequence[str], state_dir: Path) -> Iterator[Session]:
    """Run `command` (which starts the stack on `state_dir`) in a new session; yield once the stack is ready."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = {**os.environ, **shared_bytecode(state_dir)}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        leader = subprocess.Popen(
            list(command),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    session = Session(leader, state_dir, stdout, stderr)
    try:
        if not poll(lambda: READY_LINE in stdout.read_text() or leader.poll() is not None, START_TIMEOUT_S):
            pytest.fail(f"the stack was not ready within {START_TIMEOUT_S} s\n{session.diagnostics()}")
        if READY_LINE not in stdout.read_text():
            pytest.fail(f"the stack exited ({leader.returncode}) before it was ready\n{session.diagnostics()}")
        yield session
    finally:
        for line in session_processes(leader.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
        leader.wait()
