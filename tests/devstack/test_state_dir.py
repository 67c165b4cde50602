"""A stack's state directory is its own: a second stack, or one started over
the leftovers of a crash, stops at once and says who is in the way; and
nothing the stack does writes outside it (the repository root stays as it was)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.kubo.fleet import RunningNode, start_node
from devstack.state import KUBO_DIR, STACK_FILE, StateDirBusy, StateDirLock
from tests.devstack.stack_session import LIGHT_STACK
from tests.support.embedded_kubo import needs_libkubo
from tests.support.served_stack import REPO_ROOT, SHARED_PYCACHE, served_stack, shared_bytecode

FAILED_START_TIMEOUT_S = 60


def _start(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A stack expected to refuse to start: its exit status and what it said."""
    command = [sys.executable, "-m", "devstack", *LIGHT_STACK, "--state-dir", str(state_dir), *args]
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **shared_bytecode(state_dir)},
        capture_output=True,
        text=True,
        timeout=FAILED_START_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def _stack_files(state_dir: Path) -> dict[str, bytes]:
    """The files the stack writes in its state dir, and what they hold (not the test's stderr.log)."""
    return {path.name: path.read_bytes() for path in state_dir.iterdir() if path.is_file() and path.suffix != ".log"}


@pytest.fixture
def leftover_node(tmp_path: Path) -> Iterator[RunningNode]:
    """A Kubo node still running in the state dir, as an earlier stack's crash could leave it."""
    node = start_node("fleet-0", tmp_path / "state" / KUBO_DIR)
    try:
        yield node
    finally:
        node.stop()


def test_given_a_running_stack_when_a_second_starts_on_its_state_dir_then_it_names_the_first_and_touches_nothing(
    tmp_path: Path,
) -> None:
    with served_stack(tmp_path, ["--fleet-size", "0", "--user-node-port", "0", "--no-worker"]) as first:
        before = _stack_files(tmp_path)

        second = _start(tmp_path)

        assert second.returncode == 2, second.stderr
        pid = first.info()["pid"]
        assert f"another stack (pid {pid}) is running with the state dir {tmp_path}" in second.stderr
        assert f"`kill {pid}`" in second.stderr and 'make dev ARGS="--state-dir DIR"' in second.stderr
        assert _stack_files(tmp_path) == before, "the running stack's files are as they were"


@needs_libkubo
def test_given_a_kubo_node_left_running_when_the_stack_starts_then_it_names_the_node_and_how_to_stop_it(
    tmp_path: Path, leftover_node: RunningNode
) -> None:
    state_dir = tmp_path / "state"

    # When the stack starts with no stack.json left: the node's repo lock gives it away
    refused = _start(state_dir)
    assert refused.returncode == 2, refused.stderr
    assert "could not start a Kubo node: node fleet-0 exited with 1: " in refused.stderr
    assert f"is in use by pid {leftover_node.pid}" in refused.stderr
    assert f"stop it with `kill {leftover_node.pid}`" in refused.stderr

    # When a stack.json from the crashed stack names it: it is named before anything starts
    (state_dir / STACK_FILE).write_text(
        json.dumps(
            {
                "pid": 1 << 22,
                "worker": None,
                "your_node": None,
                "fleet": [{"node_id": "fleet-0", "pid": leftover_node.pid}],
            }
        ),
        encoding="utf-8",
    )
    refused = _start(state_dir)
    assert refused.returncode == 2, refused.stderr
    assert (
        f"still run: {leftover_node.pid} (Kubo node fleet-0); stop them with `kill {leftover_node.pid}`"
        in refused.stderr
    )
    assert "Starting" not in refused.stdout
    assert (state_dir / STACK_FILE).exists(), "kept: it still names what to stop"


def test_given_the_api_port_is_taken_when_the_stack_starts_then_the_message_says_how_to_pass_another_through_make(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        refused = _start(tmp_path, "--port", str(port))

    assert refused.returncode == 2
    assert f"port {port} on 127.0.0.1 for the API is already in use" in refused.stderr
    assert 'make dev ARGS="--port PORT"' in refused.stderr


def test_given_the_stack_runs_from_the_repository_root_when_it_has_run_then_the_root_holds_nothing_new(
    tmp_path: Path,
) -> None:
    before = set(os.listdir(REPO_ROOT))
    root_cache = REPO_ROOT / "__pycache__"
    cached_before = set(os.listdir(root_cache)) if root_cache.exists() else set()

    # A Kubo node (libkubo writes kubo.log into its working directory) and the worker, from the root
    # (Python writing bytecode, as it does by default)
    writing_bytecode = {"PYTHONDONTWRITEBYTECODE": ""}
    # (a cache of its own, where the test looks for app.py's bytecode: linked
    # to the shared cache's files, as a start, but for app.py's)
    SHARED_PYCACHE.mkdir(parents=True, exist_ok=True)
    seed = shutil.ignore_patterns("app.*.pyc")
    shutil.copytree(SHARED_PYCACHE, tmp_path / "pycache", copy_function=os.link, ignore=seed)
    args = ["--fleet-size", "1", "--user-node-port", "0"]
    with served_stack(tmp_path, args, env=writing_bytecode, share_bytecode=False):
        pass

    assert set(os.listdir(REPO_ROOT)) - before == set()
    # and app.py's bytecode went into the state dir, not beside app.py (the
    # root's cache, if any, is this test run's own import of app)
    assert list((tmp_path / "pycache").rglob("app.*.pyc")), "the stack's bytecode cache is in its state dir"
    assert (set(os.listdir(root_cache)) if root_cache.exists() else set()) == cached_before


def test_given_a_held_state_dir_lock_when_taken_again_then_busy_names_the_holder_and_a_released_one_is_free(
    tmp_path: Path,
) -> None:
    holder = StateDirLock(tmp_path)
    holder.acquire()
    with pytest.raises(StateDirBusy) as busy:
        StateDirLock(tmp_path).acquire()
    assert busy.value.holder == os.getpid()

    holder.release()
    again = StateDirLock(tmp_path)
    again.acquire()
    assert again.held
    again.release()


def test_given_a_process_holding_the_lock_is_killed_when_the_lock_is_taken_then_it_is_free(tmp_path: Path) -> None:
    holding = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from devstack.state import StateDirLock; "
            "StateDirLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holding.stdout is not None and holding.stdout.readline() == "held\n"
        with pytest.raises(StateDirBusy) as busy:
            StateDirLock(tmp_path).acquire()
        assert busy.value.holder == holding.pid
    finally:
        holding.kill()
        holding.wait()

    lock = StateDirLock(tmp_path)
    lock.acquire()  # the lock file is still there, its lock gone with the process
    assert lock.held
    lock.release()
