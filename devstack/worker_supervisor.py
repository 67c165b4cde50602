"""Keeps one `python -m devstack.worker` child running for the local stack:
a worker that dies (killed, crashed) is started again, as Lambda would run
the next batch in a fresh container."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devstack import lifeline
from devstack.console import say
from devstack.proc import stop_child
from devstack.state import REPO_ROOT

# A worker that dies this soon after starting is probably broken: wait longer
# before each new try, up to MAX_RESTART_DELAY_S, rather than spin.
QUICK_EXIT_S = 10.0
MAX_RESTART_DELAY_S = 30.0


class WorkerSupervisor:
    def __init__(self, state_dir: Path, on_start: Callable[[int], None], restart_delay: float = 1.0) -> None:
        self._command = [sys.executable, "-m", "devstack.worker", "--state-dir", str(state_dir)]
        self._on_start = on_start
        self._restart_delay = restart_delay
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        # Its output goes where ours does; its environment is ours (the service
        # settings). A process group of its own: a terminal's Ctrl-C is for the
        # stack, which then stops its worker (with SIGTERM), not for the worker.
        # The lifeline ends it if the stack dies without stopping it.
        self._process = subprocess.Popen(
            self._command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, process_group=0, **lifeline.child_options()
        )
        self._started_at = time.monotonic()
        self._on_start(self._process.pid)

    def _watch(self) -> None:
        quick_exits = 0
        while True:
            process = self._process
            assert process is not None
            status = process.wait()
            if self._stopping.is_set():
                return
            quick_exits = quick_exits + 1 if time.monotonic() - self._started_at < QUICK_EXIT_S else 0
            delay = min(MAX_RESTART_DELAY_S, self._restart_delay * 2 ** max(0, quick_exits - 1))
            how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with status {status}"
            say(f"devstack: the worker (pid {process.pid}) {how}; starting a new one in {delay:g} s")
            # A stop (Ctrl-C, SIGTERM) during the delay wins over the restart.
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (SIGKILL after `timeout`); no new worker after this."""
        with self._lock:
            self._stopping.set()
            process = self._process
        stop_child(process, timeout)
        if self._thread.is_alive():
            self._thread.join(timeout)
