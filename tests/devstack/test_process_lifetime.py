"""The stack leaves nothing behind: however it ends - SIGKILL of the stack or
of the `make` running it, SIGTERM to it or to its process group, Ctrl-C - its
Kubo nodes, its worker and anything else it started end within 10 s."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
from pathlib import Path

import pytest

from tests.devstack.stack_session import GONE_WITHIN_S, LIGHT_STACK, stack_session

STACK = [sys.executable, "-m", "devstack"]


def _children(stack: dict) -> list[int]:
    """The pids of the worker, the API and the Kubo nodes stack.json names."""
    return [stack["worker"]["pid"], stack["api"]["pid"], *(node["pid"] for node in stack["fleet"])]


def test_given_a_running_stack_when_it_is_killed_with_sigkill_then_its_nodes_and_worker_end_and_it_starts_again(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    command = [*STACK, *LIGHT_STACK, "--state-dir", str(state_dir)]
    with stack_session(tmp_path / "first", command, state_dir) as first:
        children = _children(first.stack_file())
        assert len(children) == 3, "a Kubo node, the worker and the API run"
        assert first.leader.pid not in children, "the API is served by a process of its own"

        # When the stack's process is killed with no chance to clean up
        first.leader.send_signal(signal.SIGKILL)

        # Then every process it started ends within 10 s
        assert first.all_gone(), first.diagnostics()

    # and the stack.json and lock it left do not stop the next start on its state dir
    assert (state_dir / "stack.json").exists()
    with stack_session(tmp_path / "second", command, state_dir) as second:
        assert second.stack_file()["pid"] == second.leader.pid


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on PATH")
def test_given_make_dev_with_args_when_make_is_killed_with_sigkill_then_the_stack_and_its_children_end(
    tmp_path: Path,
) -> None:
    # Given `make dev` with options for the stack through ARGS (the venv taken as installed)
    state_dir = tmp_path / "state"
    installed = tmp_path / "installed"
    args = shlex.join([*LIGHT_STACK, "--state-dir", str(state_dir)])
    command = ["make", "-o", str(installed), "dev", f"STAMP={installed}", f"PY={sys.executable}", f"ARGS={args}"]
    with stack_session(tmp_path, command, state_dir) as make:
        stack = make.stack_file()
        assert stack["pid"] != make.leader.pid and stack["api_url"] != "http://127.0.0.1:8000", "ARGS reached it"

        # When make is killed, where no Ctrl-C can reach the stack any more
        make.leader.send_signal(signal.SIGKILL)

        # Then the stack stops, and so does everything it started, within 10 s
        assert make.all_gone(), make.diagnostics()
    assert "Stopping ..." in make.stdout.read_text(), "the stack stopped itself, cleanly"
    assert not (state_dir / "stack.json").exists()


def test_given_a_running_stack_when_its_process_group_gets_sigterm_then_it_exits_0_and_everything_it_started_ends(
    tmp_path: Path,
) -> None:
    # (SIGTERM to the stack alone: every served-stack test ends so; SIGINT to the group: test_ctrl_c.py)
    state_dir = tmp_path / "state"
    with stack_session(tmp_path, [*STACK, *LIGHT_STACK, "--state-dir", str(state_dir)], state_dir) as session:
        # When a service manager (or `timeout`) stops it: SIGTERM to its whole process group
        os.killpg(session.leader.pid, signal.SIGTERM)

        # Then it exits 0 and nothing of it runs 10 s later
        assert session.leader.wait(GONE_WITHIN_S) == 0, session.diagnostics()
        assert session.all_gone(), session.diagnostics()
    assert session.stdout.read_text().endswith("Stopped.\n")
