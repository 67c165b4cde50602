"""The local stack (`python -m devstack`) as a test runs it: a subprocess on
random loopback ports, ready when it says so, stopped cleanly at the end."""
from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = "Pinning service ready at "


@dataclass
class ServedStack:
    url: str
    token: str
    state_dir: Path
    # local.env as written by the stack
    env: Dict[str, str]
    output: List[str]

    @property
    def log(self) -> Path:
        """The stack's stderr: access log and the app's log lines."""
        return self.state_dir / "stderr.log"

    def auth(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def read_env_file(path: Path) -> Dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if line)


def _pump(stream: Any, lines: "queue.Queue[Optional[str]]", output: List[str]) -> None:
    """Drain the child's stdout so it never blocks on a full pipe."""
    for line in stream:
        output.append(line)
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def served_stack(
    state_dir: Path,
    args: Sequence[str],
    env: Optional[Mapping[str, str]] = None,
    start_timeout: float = 60,
    stop_timeout: float = 10,
) -> Iterator[ServedStack]:
    """Start the stack with `--port 0 --aws-port 0 --state-dir state_dir` plus `args`;
    fails the test if it is not ready in time or does not exit 0 on SIGTERM."""
    stderr_path = state_dir / "stderr.log"
    command = [sys.executable, "-m", "devstack", "--port", "0", "--aws-port", "0", "--state-dir", str(state_dir), *args]
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
        )
    output: List[str] = []
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines, output), daemon=True)
    pump.start()

    def diagnostics() -> str:
        return f"stdout:\n{''.join(output)}\nstderr:\n{stderr_path.read_text(encoding='utf-8', errors='replace')[-4000:]}"

    try:
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
            if line.startswith(READY):
                break
        values = read_env_file(state_dir / "local.env")
        assert line.strip() == READY + values["PINNING_SERVICE_URL"]
        yield ServedStack(values["PINNING_SERVICE_URL"], values["PINNING_SERVICE_TOKEN"], state_dir, values, output)
    finally:
        process.terminate()
        try:
            status = process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"devstack did not stop within {stop_timeout} s of SIGTERM\n{diagnostics()}")
        pump.join(timeout=stop_timeout)
    assert status == 0, f"devstack exited with {status} after SIGTERM\n{diagnostics()}"
