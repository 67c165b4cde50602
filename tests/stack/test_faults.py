"""Processes of the served stack dying while pins are in flight: the worker
(SIGKILL, then started again by the stack) and a fleet node (SIGKILL, for
good). Nothing is lost: every request ends pinned, or says why not.

The pins are of content your node has only hashed (`add?only-hash=true`), so
they stay in flight, deterministically, until the test adds the content for
real, right after the kill: a fleet node asks its peers again for blocks it
misses at growing intervals, so the sooner the content comes, the sooner
they have it. The stack runs with a short visibility timeout (messages taken by the
dead worker come back after 5 s, not 180), invocations of 6 s, not 30 (the
tenant slot a dead worker's invocation held frees itself at its end), a
health check every second and three fleet nodes, so a pin placed on a dead
node can move to the other two.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.worker import TIMEOUT_VAR
from tests.stack.stack_client import Stack, get_status, kill, running_stack, wait_for, wait_until

ARGS = ["--fleet-size", "3", "--visibility-seconds", "5", "--health-seconds", "1"]
# Each worker and API process sees node health within a second; a pin that
# cannot finish is looked at again after a second, not 30.
ENV = {
    "NODE_CACHE_SECONDS": "1",
    "CONTINUE_DELAY_SECONDS": "1",
    "STALL_SECONDS": "10",
    TIMEOUT_VAR: "6",
    # of which a batch works 5 s
    "INVOCATION_MARGIN_SECONDS": "1",
}
# More than the tenant's share of the worker (TENANT_SHARE, 3): some are
# taken, the others held back, when the worker dies.
IN_FLIGHT_PINS = 8
SETTLE_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory, ARGS, ENV) as started:
        yield started


def test_given_pins_in_flight_when_the_worker_is_killed_then_a_new_worker_pins_them_all(stack: Stack) -> None:
    # Given 8 pins of one tenant, some of which the worker has taken and is fetching
    # (which ones depends on its threads: the tenant's share holds the others back)
    contents = [stack.content(size=64 * 1024, only_hash=True) for _ in range(IN_FLIGHT_PINS)]
    request_ids = [stack.pin(cid)["requestid"] for cid, _ in contents]
    wait_for(
        lambda: any(get_status(stack.api, rid)["status"] == "pinning" for rid in request_ids),
        30,
        "one of the requests pinning",
    )
    worker = stack.served.info()["worker"]

    # When the worker process is killed (and the content appears on your node)
    kill(worker["pid"])
    for _, data in contents:
        stack.your_node.add(data)

    # Then the stack starts another, and every request ends pinned on the fleet
    wait_for(lambda: stack.served.info()["worker"]["pid"] != worker["pid"], 30, "a new worker in stack.json")
    assert stack.served.info()["worker"]["restarts"] == worker["restarts"] + 1
    said = f"(pid {worker['pid']}) was killed by SIGKILL"
    wait_for(lambda: any(said in line for line in stack.served.output), 10, f"saying '{said}'")
    done = wait_until(
        stack.api, request_ids, lambda status: status["status"] in ("pinned", "failed"), SETTLE_TIMEOUT_S, "done"
    )
    assert {rid: s["status"] for rid, s in done.items() if s["status"] != "pinned"} == {}
    for cid, _ in contents:
        assert len(stack.holders(cid)) == stack.replication_factor, cid


# Kills a fleet node for good: last in the module.
def test_given_a_pin_in_progress_when_a_chosen_fleet_node_is_killed_then_it_ends_pinned_on_two_live_nodes(
    stack: Stack,
) -> None:
    # Given a pin in progress on two of the three fleet nodes
    cid, data = stack.content(size=1024 * 1024, only_hash=True)
    created = stack.pin(cid)
    wait_until(stack.api, [created["requestid"]], lambda status: status["status"] == "pinning", 30, "pinning")
    doomed = next(node for node in stack.fleet if node.multiaddr in created["delegates"])

    # When one of its nodes dies, and the content becomes available
    kill(doomed.pid)
    stack.your_node.add(data)

    # Then it ends pinned on the two live nodes, which hold it
    alive = [node for node in stack.fleet if node is not doomed]
    final = wait_until(
        stack.api, [created["requestid"]], lambda s: s["status"] in ("pinned", "failed"), SETTLE_TIMEOUT_S, "done"
    )
    status = final[created["requestid"]]
    assert status["status"] == "pinned", status
    assert sorted(status["info"]["replicas"].split(",")) == sorted(node.name for node in alive)
    assert sorted(stack.holders(cid, alive)) == sorted(node.name for node in alive)
    assert get_status(stack.api, created["requestid"])["status"] == "pinned"
