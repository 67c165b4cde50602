"""`make dev` in a terminal: Ctrl-C (SIGINT to the foreground process group:
the stack and its Kubo nodes at once) stops everything, the worker included,
cleanly, and leaves no process behind."""

from __future__ import annotations

from pathlib import Path

from tests.support.served_stack import running, served_stack


def test_given_a_running_stack_when_ctrl_c_is_pressed_then_it_stops_cleanly_and_no_process_is_left(
    tmp_path: Path,
) -> None:
    # Given a stack with a fleet node, your node and its worker, all running
    args = ["--fleet-size", "1", "--user-node-port", "auto"]
    with served_stack(tmp_path, args, start_timeout=90, stop_timeout=20, ctrl_c=True) as served:
        info = served.info()
        pids = [info["pid"], info["worker"]["pid"], info["your_node"]["pid"], info["fleet"][0]["pid"]]
        assert len(running(pids)) == len(pids)
        # When Ctrl-C is pressed: served_stack sends it on leaving this block,
        # then checks the exit status (0) and that nothing of the session runs

    # Then it stopped without taking the worker's exit for a crash, and none of its processes runs
    assert served.output[-1] == "Stopped.\n"
    assert not [line for line in served.output if "starting a new one" in line]
    assert running(pids) == []
