"""A pin request's life through the workers, as its owner sees it:
queued -> pinning (with progress) -> pinned on its replicas, or failed with a
reason; origins dialed first (never private ones by default); stalled or
cut-short work continued in a new message rather than failed."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace

from chalicelib.kubo import client as kubo_client
from chalicelib.queue.messages import decode
from chalicelib.worker import batch as batch_module
from chalicelib.worker import pin_worker
from chalicelib.worker.batch import process_batch
from tests.support.cids import cid_v1, origin
from tests.support.fake_kubo import BLOCK_BYTES
from tests.worker.conftest import current, failed_ids, holders, holding, info_of, pin_request, placed


def run(fleet, batch, seconds_left=20.0):
    return process_batch(batch, fleet.worker, fleet.publisher, seconds_left)


def paths(kubo, cid):
    """The node's calls about `cid`, in the order it saw them."""
    return [call.path for call in kubo.calls if cid in call.args]


class InBackground:
    """`work()` running in a thread, as a worker Lambda runs beside the user."""

    def __init__(self, work) -> None:
        self._outcome = {}
        self._thread = threading.Thread(target=lambda: self._outcome.update(value=work()))
        self._thread.start()

    def result(self, timeout: float = 30.0):
        self._thread.join(timeout)
        return self._outcome["value"]


def watch(user_api, request_id, until, timeout: float = 10.0) -> list[tuple[str, str]]:
    """The (status, status_details) the user sees polling the request until
    `until(seen)` holds; fails the test if it never does."""
    seen = []
    deadline = time.monotonic() + timeout
    while not seen or not until(seen):
        assert time.monotonic() < deadline, seen
        status = user_api.request("GET", f"/pins/{request_id}").json
        seen.append((status["status"], status["info"].get("status_details", "")))
        time.sleep(0.02)
    return seen


def shows_blocks_fetched(seen) -> bool:
    status, details = seen[-1]
    return status == "pinning" and re.search(r"fetched [1-9]\d* blocks", details) is not None


def never_backwards(seen) -> bool:
    order = [["queued", "pinning", "pinned"].index(status) for status, _ in seen]
    return order == sorted(order)


def assert_held_by_exactly(kubos, cid, replicas) -> None:
    """Exactly `replicas` hold `cid`, each having confirmed its pin/add with pin/ls."""
    assert holding(kubos, cid) == sorted(replicas)
    for node_id in replicas:
        calls = paths(kubos[node_id], cid)
        assert "pin/ls" in calls[calls.index("pin/add") :], calls
        assert holders(node_id, cid) == 1
    for node_id in set(kubos) - set(replicas):
        assert kubos[node_id].calls_to("pin/add") == []


# -- queued -> pinning -> pinned ----------------------------------------------


def test_a_pin_is_queued_then_shows_progress_while_pinning_then_is_pinned_on_its_replicas(
    fleet, kubos, queue, user_api, tune, monkeypatch
):
    # Progress is written 1 s after the fetch began, then every 5 s in production; the test looks sooner.
    monkeypatch.setattr(pin_worker, "_FIRST_PROGRESS_S", 0.05)
    monkeypatch.setattr(pin_worker, "_PROGRESS_INTERVAL_S", 0.05)
    # The providers pause below while the user looks: that is not a stall.
    tune(stall_seconds=60)
    # given content of 8 blocks that the nodes fetch slowly, the last 5 only later
    cid = cid_v1("lifecycle")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=8)
        kubo.slow(cid, 0.1)
        kubo.stall_after(cid, 3)

    # when the user asks for the pin
    created = user_api.pin(cid)
    request_id = created["requestid"]
    # then it is queued until a worker picks it up
    assert created["status"] == "queued"
    assert user_api.request("GET", f"/pins/{request_id}").json["status"] == "queued"

    # when a worker pins it, then the user polling meanwhile sees it pinning,
    # with the blocks fetched so far
    worker = InBackground(queue.run_once)
    seen = watch(user_api, request_id, until=shows_blocks_fetched)

    # when the rest of the content comes, then the worker is done with the message
    for kubo in kubos.values():
        kubo.stall_after(cid, 8)
    batch, outcome = worker.result()
    assert len(batch) == 1 and failed_ids(outcome) == []
    # and the pin is pinned, its status never seen going backwards
    seen += watch(user_api, request_id, until=lambda seen: seen[-1][0] != "pinning")
    assert seen[-1][0] == "pinned" and never_backwards(seen), seen

    # and it has its size and its replicas
    info = user_api.request("GET", f"/pins/{request_id}").json["info"]
    assert info["dag_size"] == str(8 * BLOCK_BYTES)
    replicas = info["replicas"].split(",")
    assert len(replicas) == fleet.settings.replication_factor == 2
    assert sorted(replicas) == sorted(placed(fleet, cid))
    # and exactly those nodes hold it
    assert_held_by_exactly(kubos, cid, replicas)
    # and no work is left behind
    assert queue.receive() == []


def test_a_cid_given_as_cidv0_is_pinned_under_its_canonical_form(fleet, kubos, queue):
    from tests.support.cids import cid_v0_pair

    # given content the nodes know by its CIDv1
    v0, v1 = cid_v0_pair("old-style")
    for kubo in kubos.values():
        kubo.add_content(v1, blocks=2)
    # when a user pins it by its CIDv0
    record = fleet.pins.create("alice", pin_request(v0))
    queue.run_until_empty()
    # then it is pinned, and the user still sees the CID they gave
    stored = current(fleet, record)
    assert stored.status == "pinned" and stored.cid == v0
    assert holding(kubos, v1) == sorted(placed(fleet, v1))


# -- failed -------------------------------------------------------------------


def test_content_nobody_provides_waits_then_fails_with_a_reason_once_its_deadline_passes(
    fleet, kubos, queue, worker_clock
):
    # given a CID no provider has
    cid = cid_v1("nowhere")
    record = fleet.pins.create("alice", pin_request(cid))

    # when a worker tries it, then the pin/add stalls and is cancelled
    batch, result = queue.run_once()
    assert failed_ids(result) == []
    for node_id in placed(fleet, cid):
        assert kubos[node_id].wait_cancelled(cid)
    # and the request keeps waiting, not failed, with the work re-sent
    stored = current(fleet, record)
    assert stored.status == "pinning"
    assert "continuing" in info_of(stored)["status_details"]
    again = continued_work(queue, batch)

    # when the message comes back after the pin's deadline (24 h)
    worker_clock.advance(24 * 3600 + 1)
    assert failed_ids(run(fleet, again)) == []
    # then the request failed, saying why
    stored = current(fleet, record)
    assert stored.status == "failed"
    assert "24 hours" in info_of(stored)["failed_reason"]
    # and nothing is left: no pin, no hold, no message
    assert holding(kubos, cid) == []
    assert all(holders(node_id, cid) == 0 for node_id in kubos)
    assert queue.receive() == []


class ClockPastDeadlineOnceFetching:
    """The worker's clock: wall time until a node is asked to fetch `cid`, then
    `seconds` later. The deadline passes during the fetch whatever the machine's
    speed (a real one-second deadline could pass before the worker even starts)."""

    def __init__(self, kubos, cid: str, seconds: float) -> None:
        self._kubos = kubos
        self._cid = cid
        self._offset_ms = int(seconds * 1000)

    def __call__(self) -> int:
        fetching = any(kubo.calls_to("pin/add", self._cid) for kubo in self._kubos.values())
        return int(time.time() * 1000) + (self._offset_ms if fetching else 0)


def test_a_short_pin_deadline_fails_the_request_with_a_reason_that_does_not_promise_more_work(
    fleet, kubos, queue, tune
):
    # given a service whose pins must be held within a minute of the request,
    # and a minute that passes while the nodes look for providers
    cid = cid_v1("never-arrives")
    fleet.test_clock = ClockPastDeadlineOnceFetching(kubos, cid, seconds=61)
    tune(pin_deadline_seconds=60)
    record = fleet.pins.create("alice", pin_request(cid))

    # when a worker spends its stall time (1 s) looking for providers
    _, result = queue.run_once()

    # then the request fails for good, and says why
    assert failed_ids(result) == []
    stored = current(fleet, record)
    assert stored.status == "failed"
    reason = info_of(stored)["failed_reason"]
    assert "within 60 seconds" in reason and "looking for providers" in reason
    # a failed pin is not going to continue: its reason must not say it will
    assert "continuing" not in reason, reason
    assert queue.receive() == []
    assert holding(kubos, cid) == []


def test_a_cid_kubo_refuses_fails_at_once_and_leaves_nothing_pinned(fleet, kubos, queue):
    # given content one replica can fetch and the other refuses outright
    cid = cid_v1("refused")
    first, second = placed(fleet, cid)
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    kubos[first].fail("pin/add", "invalid path: unsupported CID", code=1, cid=cid, times=5)
    record = fleet.pins.create("alice", pin_request(cid))

    # when a worker handles it once
    _, result = queue.run_once()

    # then the request failed straight away, with Kubo's reason
    assert failed_ids(result) == []
    stored = current(fleet, record)
    assert stored.status == "failed"
    assert "unsupported CID" in info_of(stored)["failed_reason"]
    # and no retry is scheduled, nothing stays pinned, no hold is left
    assert queue.receive() == []
    assert holding(kubos, cid) == []
    assert holders(first, cid) == holders(second, cid) == 0


# -- origins ------------------------------------------------------------------


def test_origins_are_dialed_on_the_pinning_nodes_before_pinning_and_a_failed_dial_is_ignored(fleet, kubos, queue):
    cid = cid_v1("from-origins")
    reachable = origin("provider", ip="8.8.8.8")
    unreachable = origin("gone", ip="1.1.1.1")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
        kubo.refuse_dial(unreachable)
    record = fleet.pins.create("alice", pin_request(cid, origins=[reachable, unreachable]))

    _, result = queue.run_once()

    assert failed_ids(result) == []
    assert current(fleet, record).status == "pinned"
    for node_id in placed(fleet, cid):
        calls = kubos[node_id].calls
        dials = [i for i, call in enumerate(calls) if call.path == "swarm/connect"]
        pin_add = next(i for i, call in enumerate(calls) if call.path == "pin/add")
        assert sorted(calls[i].args[0] for i in dials) == sorted([reachable, unreachable])
        assert max(dials) < pin_add


def test_private_origins_are_dropped_and_never_dialed_by_default(fleet, kubos, queue):
    cid = cid_v1("private-origins")
    public = origin("public", ip="8.8.8.8")
    private = [origin("loop", ip="127.0.0.1"), origin("lan", ip="10.1.2.3"), origin("home", ip="192.168.1.20")]
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    assert fleet.settings.allow_private_origins is False
    record = fleet.pins.create("alice", pin_request(cid, origins=[*private, public]))

    queue.run_until_empty()

    assert current(fleet, record).status == "pinned"
    dialed = [call.args[0] for kubo in kubos.values() for call in kubo.calls_to("swarm/connect")]
    assert sorted(set(dialed)) == [public]
    assert len(dialed) == fleet.settings.replication_factor


def test_loopback_origins_are_dialed_when_private_origins_are_allowed(fleet, kubos, queue, tune):
    tune(allow_private_origins=True)
    cid = cid_v1("dev-origin")
    local = origin("dev-node", ip="127.0.0.1")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid, origins=[local]))

    queue.run_until_empty()

    assert current(fleet, record).status == "pinned"
    for node_id in placed(fleet, cid):
        assert [call.args[0] for call in kubos[node_id].calls_to("swarm/connect")] == [local]


# -- long and stalled pins ----------------------------------------------------


def offer(kubos, cid, blocks: int, flowing: int) -> None:
    """Every node can fetch `cid` (`blocks` blocks), but only `flowing` of them for now."""
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=blocks)
        kubo.stall_after(cid, flowing)


def continued_work(queue, batch):
    """The message the worker sent to go on with `batch`'s one message: the same
    work at its next turn, delivered anew."""
    continued = queue.receive()
    worked = decode(batch[0].body)
    assert [decode(message.body) for message in continued] == [replace(worked, turn=worked.turn + 1)]
    assert continued[0].message_id != batch[0].message_id
    return continued


def assert_cancelled_and_continuing(fleet, kubos, record, cid, fetched: int) -> None:
    """The pin/add was cancelled on the request's nodes, none holds the pin, and
    the user sees the request pinning, with what was fetched, continuing."""
    for node_id in placed(fleet, cid):
        assert kubos[node_id].wait_cancelled(cid, timeout=10)
    assert holding(kubos, cid) == []
    stored = current(fleet, record)
    assert stored.status == "pinning"
    details = info_of(stored)["status_details"]
    assert f"fetched {fetched} blocks" in details and "continuing" in details, details


def test_a_stalled_pin_is_cancelled_and_continued_and_pinned_once_the_content_flows_again(fleet, kubos, queue):
    # given content whose providers stop sending after 2 of 5 blocks
    cid = cid_v1("stalls")
    offer(kubos, cid, blocks=5, flowing=2)
    record = fleet.pins.create("alice", pin_request(cid))

    # when a worker handles it
    batch, result = queue.run_once()

    # then the message is not a failure: the stalled pin/add was cancelled, the
    # user sees it still pinning, and the work comes back in a new message
    assert failed_ids(result) == []
    assert_cancelled_and_continuing(fleet, kubos, record, cid, fetched=2)
    continued = continued_work(queue, batch)

    # when the content flows again, then the next run pins it
    offer(kubos, cid, blocks=5, flowing=5)
    assert failed_ids(run(fleet, continued)) == []
    stored = current(fleet, record)
    assert stored.status == "pinned"
    assert info_of(stored)["dag_size"] == str(5 * BLOCK_BYTES)
    assert holding(kubos, cid) == sorted(placed(fleet, cid))
    assert queue.receive() == []


def test_content_that_turns_up_later_is_pinned_by_a_following_run(fleet, kubos, queue):
    cid = cid_v1("late-provider")
    record = fleet.pins.create("alice", pin_request(cid))

    _, result = queue.run_once()
    assert failed_ids(result) == []
    assert current(fleet, record).status == "pinning"

    for kubo in kubos.values():
        kubo.add_content(cid, blocks=3)
    queue.run_until_empty()

    assert current(fleet, record).status == "pinned"
    assert holding(kubos, cid) == sorted(placed(fleet, cid))


class InvocationTime:
    """The `time` module as the worker's batch (which sets the invocation's
    deadline) and the Kubo client (which checks it) see it, with a monotonic
    clock that moves only as the fake nodes fetch: SECONDS_PER_BLOCK for every
    block any of them has. How far the work got, not how busy the machine is,
    decides when the deadline comes."""

    SECONDS_PER_BLOCK = 60.0

    def __init__(self, kubos) -> None:
        self._kubos = kubos

    def monotonic(self) -> float:
        blocks = sum(kubo.repo_size for kubo in self._kubos.values()) / BLOCK_BYTES
        return blocks * self.SECONDS_PER_BLOCK

    def __getattr__(self, name):
        return getattr(time, name)


def test_work_cut_short_by_the_invocation_deadline_continues_in_a_new_message(fleet, kubos, queue, tune, monkeypatch):
    # given an invocation clock that runs a minute per block fetched, and no stall
    # limit in reach, so that only the invocation's deadline can cut a pin short
    clock = InvocationTime(kubos)
    monkeypatch.setattr(batch_module, "time", clock)
    monkeypatch.setattr(kubo_client, "time", clock)
    tune(stall_seconds=3600)
    # and a pin of 10 blocks whose providers send 5, then wait
    cid = cid_v1("big")
    offer(kubos, cid, blocks=10, flowing=5)
    record = fleet.pins.create("alice", pin_request(cid))
    replicas = placed(fleet, cid)

    # when the invocation has 10 minutes left: both replicas' first 5 blocks
    batch, result = queue.run_once(seconds_left=len(replicas) * 5 * clock.SECONDS_PER_BLOCK)

    # then neither the message nor the request failed: the pin/add was cancelled,
    # and the work goes on in a new message
    assert failed_ids(result) == []
    assert_cancelled_and_continuing(fleet, kubos, record, cid, fetched=5)
    continued = continued_work(queue, batch)

    # when that message runs in an invocation with 15 minutes, then it is pinned
    offer(kubos, cid, blocks=10, flowing=10)
    assert failed_ids(run(fleet, continued, seconds_left=15 * 60)) == []
    assert current(fleet, record).status == "pinned"
    assert holding(kubos, cid) == sorted(replicas)


# -- not enough healthy nodes -------------------------------------------------


def test_a_pin_waits_while_too_few_nodes_are_healthy_then_fails_once_its_deadline_passes(
    fleet, kubos, queue, worker_clock
):
    # given a fleet with one healthy node and a replication factor of two
    fleet.registry.record_health(fleet.registry.node("node-1"), healthy=False, free_bytes=None)
    fleet.registry.record_health(fleet.registry.node("node-2"), healthy=False, free_bytes=None)
    cid = cid_v1("short-of-nodes")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))

    # when a worker handles it
    batch, result = queue.run_once()

    # then it waits, saying so, and comes back later
    assert failed_ids(result) == []
    stored = current(fleet, record)
    assert stored.status in ("queued", "pinning")
    assert "healthy storage nodes" in info_of(stored)["status_details"]
    again = continued_work(queue, batch)
    assert holding(kubos, cid) == []

    # when it is still short of nodes at its deadline
    worker_clock.advance(24 * 3600 + 1)
    assert failed_ids(run(fleet, again)) == []

    # then it fails with a reason
    stored = current(fleet, record)
    assert stored.status == "failed"
    assert "24 hours" in info_of(stored)["failed_reason"]
    assert queue.receive() == []
    assert holding(kubos, cid) == []


def test_a_pin_failed_for_want_of_healthy_nodes_says_so_rather_than_blaming_the_content(
    fleet, kubos, queue, worker_clock
):
    # given a pin that waited for healthy nodes (its content is available)
    fleet.registry.record_health(fleet.registry.node("node-1"), healthy=False, free_bytes=None)
    fleet.registry.record_health(fleet.registry.node("node-2"), healthy=False, free_bytes=None)
    cid = cid_v1("fleet-too-small")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))
    queue.run_once()
    assert "healthy storage nodes" in info_of(current(fleet, record))["status_details"]

    # when its deadline passes with the fleet still short
    worker_clock.advance(24 * 3600 + 1)
    queue.run_once()

    # then the reason names the real cause, as the status details did
    stored = current(fleet, record)
    assert stored.status == "failed"
    assert "healthy storage nodes" in info_of(stored)["failed_reason"], info_of(stored)


def test_a_waiting_pin_is_pinned_once_enough_nodes_are_healthy_again(fleet, kubos, queue):
    fleet.registry.record_health(fleet.registry.node("node-0"), healthy=False, free_bytes=None)
    fleet.registry.record_health(fleet.registry.node("node-1"), healthy=False, free_bytes=None)
    cid = cid_v1("nodes-come-back")
    for kubo in kubos.values():
        kubo.add_content(cid, blocks=2)
    record = fleet.pins.create("alice", pin_request(cid))
    queue.run_once()
    assert current(fleet, record).status != "pinned"

    fleet.registry.record_health(fleet.registry.node("node-0"), healthy=True, free_bytes=None)
    fleet.registry.record_health(fleet.registry.node("node-1"), healthy=True, free_bytes=None)
    queue.run_until_empty()

    stored = current(fleet, record)
    assert stored.status == "pinned"
    assert sorted(info_of(stored)["replicas"].split(",")) == sorted(placed(fleet, cid))
    assert holding(kubos, cid) == sorted(placed(fleet, cid))
