"""The Kubo RPC client against a fake node speaking Kubo's wire format: what
a pin worker sees when pins finish, stall, run out of time, or the node
misbehaves."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import requests

from chalicelib.kubo.client import KuboClient
from chalicelib.kubo.errors import (
    KuboAuthError,
    KuboRequestError,
    KuboServerError,
    KuboUnavailable,
    PinCancelled,
    PinDeadline,
    PinStalled,
)
from tests.support.cids import cid_v0_pair, cid_v1, origin
from tests.support.fake_kubo import BLOCK_BYTES, FakeKubo

STALL = 0.3
# Time for the client to notice a limit and the fake to see the hang-up.
SLACK = 0.4


def timed(action: Callable[[], object]) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        action()
    return raised.value, time.monotonic() - started


# -- pin/add -----------------------------------------------------------------


def test_pin_add_reports_each_new_block_and_leaves_the_pin_recorded(kubo, client):
    # given content of four blocks that a provider has
    cid = cid_v1("four blocks")
    kubo.add_content(cid, blocks=4)
    progress: list[tuple[int, int]] = []

    # when it is pinned
    client.pin_add(cid, stall_seconds=STALL, on_progress=lambda blocks, size: progress.append((blocks, size)))

    # then every block was reported, the node holds the pin, and the client asked it to be sure
    assert progress == [(n, n * BLOCK_BYTES) for n in range(1, 5)]
    assert cid in kubo.pinned
    assert [call.path for call in kubo.calls] == ["pin/add", "pin/ls"]
    assert kubo.calls[0].query == f"arg={cid}&recursive=true&progress=true"
    assert kubo.calls[1].query == f"arg={cid}&type=recursive"


def test_a_node_older_than_kubo_0_40_reports_blocks_without_bytes():
    # given a Kubo 0.39 node, whose pin/add progress has no Bytes, and content of three blocks
    with FakeKubo(version="0.39.0") as kubo:
        cid = cid_v1("no bytes")
        kubo.add_content(cid, blocks=3)
        progress: list[tuple[int, int]] = []

        # when it is pinned
        KuboClient(kubo.url).pin_add(cid, stall_seconds=STALL, on_progress=lambda *report: progress.append(report))

    # then each block is reported, with no bytes
    assert progress == [(1, 0), (2, 0), (3, 0)]
    assert cid in kubo.pinned


def test_a_pin_whose_block_count_stops_growing_is_cancelled_as_stalled(kubo, client):
    # given content whose fetch stops after two of ten blocks while Kubo keeps reporting that count
    cid = cid_v1("stops at two")
    kubo.add_content(cid, blocks=10)
    kubo.stall_after(cid, blocks=2)

    # when it is pinned with a stall budget
    error, elapsed = timed(lambda: client.pin_add(cid, stall_seconds=STALL))

    # then it gives up about one budget after the last new block, saying how far it got
    assert isinstance(error, PinStalled)
    assert (error.blocks, error.bytes) == (2, 2 * BLOCK_BYTES)
    assert STALL <= elapsed < STALL + SLACK
    # and the node saw the request cancelled, which abandons the pin in Kubo
    assert kubo.wait_cancelled(cid)
    assert cid not in kubo.pinned


@pytest.mark.parametrize("let_go_at", [1, 3], ids=["first-report", "third-report"])
def test_a_pin_its_caller_lets_go_of_is_cancelled_at_that_report(kubo, client, let_go_at):
    # given content whose fetch stops after two blocks, pinned with a stall budget far beyond the test
    cid = cid_v1(f"let go at {let_go_at}")
    kubo.add_content(cid, blocks=10)
    kubo.stall_after(cid, blocks=2)
    asked: list[int] = []

    def wanted() -> bool:
        asked.append(len(asked) + 1)
        return len(asked) < let_go_at

    # when the caller stops wanting it at a report
    with pytest.raises(PinCancelled) as raised:
        client.pin_add(cid, stall_seconds=60, wanted=wanted)

    # then the pin ends there, saying how far it got, and the node saw the hang-up, which abandons the pin
    assert len(asked) == let_go_at
    assert raised.value.blocks <= 2
    assert kubo.wait_cancelled(cid)
    assert cid not in kubo.pinned


def test_a_pin_still_wanted_at_every_report_ends_pinned(kubo, client):
    # given content that comes in three blocks, and a caller that keeps wanting it
    cid = cid_v1("still wanted")
    kubo.add_content(cid, blocks=3)
    asked: list[bool] = []

    # when it is pinned
    client.pin_add(cid, stall_seconds=STALL * 10, wanted=lambda: asked.append(True) or True)

    # then the caller was asked along the way and the pin is recorded
    assert asked
    assert cid in kubo.pinned


def test_content_no_provider_has_stalls_without_any_progress(kubo, client):
    # given a CID the node cannot find (it reports {} while it looks for providers)
    cid = cid_v1("nobody has it")
    progress: list[tuple[int, int]] = []

    # when it is pinned
    error, elapsed = timed(
        lambda: client.pin_add(cid, stall_seconds=STALL, on_progress=lambda *report: progress.append(report))
    )

    # then it stalls at zero, with no progress to report, and the request is cancelled
    assert isinstance(error, PinStalled)
    assert (error.blocks, error.bytes) == (0, 0)
    assert progress == []
    assert STALL <= elapsed < STALL + SLACK
    assert kubo.wait_cancelled(cid)


def test_slow_but_steady_progress_is_not_a_stall(kubo, client):
    # given content that arrives one block every 0.1 s, 0.8 s in all, while
    # the node repeats the unchanged count between blocks
    cid = cid_v1("slow and steady")
    kubo.add_content(cid, blocks=8)
    kubo.slow(cid, seconds_per_block=0.1)
    progress: list[tuple[int, int]] = []

    # when it is pinned with a 0.3 s stall budget
    started = time.monotonic()
    client.pin_add(cid, stall_seconds=STALL, on_progress=lambda *report: progress.append(report))

    # then it finishes, though it took longer than the budget, and each count was reported once
    assert time.monotonic() - started > 2 * STALL
    assert cid in kubo.pinned
    assert [blocks for blocks, _ in progress] == list(range(1, 9))


def test_the_deadline_cancels_a_pin_that_is_still_progressing(kubo, client):
    # given content that would take 5 s to fetch
    cid = cid_v1("too big for this run")
    kubo.add_content(cid, blocks=100)
    kubo.slow(cid, seconds_per_block=0.05)

    # when it is pinned with a deadline 0.4 s away
    deadline = time.monotonic() + 0.4
    error, _ = timed(lambda: client.pin_add(cid, stall_seconds=5, deadline=deadline))

    # then it stops at the deadline with part of the content fetched, and the pin is abandoned
    assert isinstance(error, PinDeadline)
    assert 0 < error.blocks < 100
    assert error.bytes == error.blocks * BLOCK_BYTES
    assert deadline <= time.monotonic() < deadline + SLACK
    assert kubo.wait_cancelled(cid)
    assert cid not in kubo.pinned


def test_a_node_that_goes_quiet_does_not_hold_the_pin_past_the_deadline():
    # given a node that sends a progress line only every 0.5 s
    with FakeKubo(tick=0.5) as kubo:
        cid = cid_v1("quiet node")
        client = KuboClient(kubo.url)

        # when a pin must end 0.7 s from now, between two of its lines
        deadline = time.monotonic() + 0.7
        error, _ = timed(lambda: client.pin_add(cid, stall_seconds=5, deadline=deadline))

        # then it ends at the deadline, not at the next line (at 1.0 s)
        assert isinstance(error, PinDeadline)
        assert deadline <= time.monotonic() < deadline + 0.2


def test_a_node_that_does_not_answer_a_pin_at_all_stalls_it(kubo, client):
    # given a node that holds pin/add without a word, as while it waits for its GC lock
    cid = cid_v1("held")
    kubo.add_content(cid)
    kubo.delay("pin/add", 2)

    # when it is pinned, then it stalls within the budget
    error, elapsed = timed(lambda: client.pin_add(cid, stall_seconds=STALL))
    assert isinstance(error, PinStalled)
    assert STALL <= elapsed < STALL + SLACK


def test_a_node_that_does_not_answer_is_unavailable(kubo):
    kubo.delay("id", 2)

    error, elapsed = timed(lambda: KuboClient(kubo.url, timeout=STALL).id())
    assert isinstance(error, KuboUnavailable)
    assert elapsed < STALL + SLACK


def test_a_deadline_already_past_sends_nothing(kubo, client):
    # given content and a deadline that has passed
    cid = cid_v1("too late")
    kubo.add_content(cid)

    # when it is pinned
    error, _ = timed(lambda: client.pin_add(cid, stall_seconds=STALL, deadline=time.monotonic() - 1))

    # then nothing was asked of the node
    assert isinstance(error, PinDeadline)
    assert (error.blocks, error.bytes) == (0, 0)
    assert kubo.calls == []


def test_a_connection_dropped_mid_stream_is_unavailable(kubo, client):
    # given a node that hangs up after two progress lines
    cid = cid_v1("dropped")
    kubo.add_content(cid, blocks=10)
    kubo.slow(cid, seconds_per_block=0.05)
    kubo.drop_after(cid, lines=2)

    # when it is pinned, then the worker is told to retry
    with pytest.raises(KuboUnavailable):
        client.pin_add(cid, stall_seconds=STALL)
    assert cid not in kubo.pinned


def test_a_node_going_down_during_a_pin_is_unavailable_not_a_stall(kubo, client):
    # given a pin under way
    cid = cid_v1("node dies")
    threading.Timer(0.1, kubo.down).start()

    # when the node goes away mid-stream, then the worker is told to retry at once
    error, elapsed = timed(lambda: client.pin_add(cid, stall_seconds=5))
    assert isinstance(error, KuboUnavailable)
    assert elapsed < 1


def test_a_pin_reported_but_not_recorded_is_an_error(kubo, client):
    # given a node whose pin/add ends with Pins but fails to record the pin
    # (its error travels in the X-Stream-Error trailer)
    cid = cid_v1("not recorded")
    kubo.add_content(cid)
    kubo.forget_pin(cid)

    # when it is pinned, then the client notices by asking for the pin
    with pytest.raises(KuboServerError, match="pin not recorded"):
        client.pin_add(cid, stall_seconds=STALL)
    assert len(kubo.calls_to("pin/ls", cid)) == 1


def test_a_stream_that_ends_without_pins_is_a_server_error(kubo, client):
    # given a pin/add that fails after it began streaming, the error only in the trailer
    cid = cid_v1("fails late")
    kubo.add_content(cid, blocks=10)
    kubo.slow(cid, seconds_per_block=0.05)
    kubo.fail_stream(cid, "merkledag: not found", after_lines=2)

    # when it is pinned, then it fails without claiming the pin
    with pytest.raises(KuboServerError):
        client.pin_add(cid, stall_seconds=STALL)
    assert cid not in kubo.pinned


def test_an_error_line_in_the_stream_is_a_server_error_with_its_message(kubo, client):
    cid = cid_v1("error line")
    kubo.add_content(cid, blocks=10)
    kubo.slow(cid, seconds_per_block=0.05)
    kubo.fail_stream(cid, "failed to fetch block: context canceled", after_lines=1, as_line=True)

    with pytest.raises(KuboServerError) as raised:
        client.pin_add(cid, stall_seconds=STALL)
    assert raised.value.message == "failed to fetch block: context canceled"


# -- pin/ls, pin/rm, pin/update --------------------------------------------


def test_is_pinned_tells_pinned_from_not_pinned(kubo, client):
    pinned, absent = cid_v1("here"), cid_v1("not here")
    kubo.add_content(pinned)
    client.pin_add(pinned, stall_seconds=STALL)

    assert client.is_pinned(pinned) is True
    assert client.is_pinned(absent) is False


def test_is_pinned_accepts_the_key_in_another_cid_version(kubo, client):
    # given a pin asked for as CIDv0 that the node lists as CIDv1
    v0, v1 = cid_v0_pair("two spellings")
    kubo.add_content(v0)
    client.pin_add(v0, stall_seconds=STALL)
    kubo.spell_key(v0, v1)

    # then it still counts as pinned
    assert client.is_pinned(v0) is True


def test_pin_rm_removes_a_pin_and_a_missing_pin_is_already_done(kubo, client):
    # given one pinned CID and one never pinned
    pinned, absent = cid_v1("to remove"), cid_v1("never pinned")
    kubo.add_content(pinned)
    client.pin_add(pinned, stall_seconds=STALL)

    # when both are unpinned
    client.pin_rm(pinned)
    client.pin_rm(absent)

    # then neither is pinned, each took one call, and the missing one raised nothing
    assert kubo.pinned == set()
    assert len(kubo.calls_to("pin/rm", pinned)) == 1
    assert len(kubo.calls_to("pin/rm", absent)) == 1


def test_pin_update_keeps_the_old_pin(kubo, client):
    # given an old version pinned and a new one available
    old, new = cid_v1("v1 of the site"), cid_v1("v2 of the site")
    kubo.add_content(old)
    kubo.add_content(new)
    client.pin_add(old, stall_seconds=STALL)

    # when the pin is updated
    client.pin_update(old, new, seconds=30)

    # then both are pinned, asked exactly as Kubo expects
    assert kubo.pinned == {old, new}
    assert kubo.calls_to("pin/update")[0].query == f"arg={old}&arg={new}&unpin=false&timeout=30s"


# -- swarm/connect and node state -----------------------------------------


def test_swarm_connect_reports_a_failed_dial_as_false(kubo, client):
    # given one origin the node can dial and one it cannot
    reachable, unreachable = origin("laptop"), origin("behind nat")
    kubo.refuse_dial(unreachable)

    # then a failed dial is an answer, not an error
    assert client.swarm_connect(reachable) is True
    assert client.swarm_connect(unreachable) is False
    # and Kubo is told to give up the dial before the client gives up on Kubo
    assert kubo.calls_to("swarm/connect")[0].query == f"arg={reachable.replace('/', '%2F')}&timeout=5s"


def test_id_repo_stat_and_dag_size_read_kubos_answers(kubo, client):
    # given a node with one pinned DAG of three blocks
    cid = cid_v1("measured")
    kubo.add_content(cid, blocks=3)
    kubo.storage_max = 10 * BLOCK_BYTES
    client.pin_add(cid, stall_seconds=STALL)

    identity = client.id()
    stat = client.repo_stat()

    assert identity.peer_id == kubo.peer_id
    assert identity.addresses == (f"/ip4/127.0.0.1/tcp/4001/p2p/{kubo.peer_id}",)
    assert identity.agent_version == f"kubo/{kubo.version}/"
    assert (stat.repo_size, stat.storage_max, stat.free_bytes) == (3 * BLOCK_BYTES, 10 * BLOCK_BYTES, 7 * BLOCK_BYTES)
    assert kubo.calls_to("repo/stat")[0].flags == {"size-only": "true"}
    assert client.dag_size(cid) == 3 * BLOCK_BYTES
    assert kubo.calls_to("dag/stat")[0].query == f"arg={cid}&progress=false&offline=true"


def test_a_repo_past_its_storage_max_has_no_free_space(kubo, client):
    cid = cid_v1("overfull")
    kubo.add_content(cid, blocks=3)
    kubo.storage_max = 2 * BLOCK_BYTES
    client.pin_add(cid, stall_seconds=STALL)

    assert client.repo_stat().free_bytes == 0


def test_dag_size_reads_older_kubos_size_field(kubo, client):
    cid = cid_v1("older kubo")
    kubo.add_content(cid, blocks=2)
    kubo.legacy_dag_stat = True
    client.pin_add(cid, stall_seconds=STALL)

    assert client.dag_size(cid) == 2 * BLOCK_BYTES


def test_dag_size_of_content_not_on_the_node_is_an_error(kubo, client):
    # given content a provider has but this node never fetched (dag/stat is offline)
    cid = cid_v1("elsewhere")
    kubo.add_content(cid)

    with pytest.raises(KuboServerError, match="not found locally"):
        client.dag_size(cid)


def test_an_identity_without_addresses_is_an_empty_tuple():
    # given a node that is offline, which Kubo reports as "Addresses": null
    with FakeKubo(addresses=[]) as kubo:
        assert KuboClient(kubo.url).id().addresses == ()


# -- errors --------------------------------------------------------------------

CID = cid_v1("any")

CALLS = {
    "pin/add": lambda client: client.pin_add(CID, stall_seconds=STALL),
    "pin/ls": lambda client: client.is_pinned(CID),
    "pin/rm": lambda client: client.pin_rm(CID),
    "pin/update": lambda client: client.pin_update(CID, cid_v1("other"), seconds=30),
    "id": lambda client: client.id(),
    "repo/stat": lambda client: client.repo_stat(),
    "dag/stat": lambda client: client.dag_size(CID),
}


@pytest.mark.parametrize("path", sorted(CALLS))
def test_kubos_error_message_reaches_the_caller(kubo, client, path):
    # given a node failing the call with its error object
    kubo.add_content(CID)
    kubo.fail(path, "blockstore: database is locked")

    # when it is made, then the error says what Kubo said
    with pytest.raises(KuboServerError) as raised:
        CALLS[path](client)
    assert raised.value.message == "blockstore: database is locked"
    assert raised.value.status == 500


@pytest.mark.parametrize(
    "status, code, error",
    [
        (500, 0, KuboServerError),
        (500, 1, KuboRequestError),
        (400, 1, KuboRequestError),
        (401, 0, KuboAuthError),
        (403, 0, KuboAuthError),
        (404, 0, KuboRequestError),
        (405, 0, KuboRequestError),
        (502, 0, KuboUnavailable),
        (503, 0, KuboUnavailable),
        (504, 0, KuboUnavailable),
    ],
)
def test_each_status_becomes_the_error_a_worker_acts_on(kubo, client, status, code, error):
    kubo.fail("repo/stat", f"answered {status}", status=status, code=code)

    with pytest.raises(error) as raised:
        client.repo_stat()
    assert (raised.value.message, raised.value.status) == (f"answered {status}", status)


@pytest.mark.parametrize("path", sorted(CALLS) + ["swarm/connect"])
def test_every_call_to_a_node_that_is_down_is_unavailable(kubo, client, path):
    # given a node that has answered before (so the client has a pooled connection) and is now down
    client.id()
    kubo.down()
    call = CALLS.get(path, lambda client: client.swarm_connect(origin("anyone")))

    # when the call is made, then the worker is told to retry
    with pytest.raises(KuboUnavailable):
        call(client)

    # and once the node is back, the same client works again
    kubo.up()
    assert client.id().peer_id == kubo.peer_id


def test_a_node_requiring_authorization_refuses_a_client_without_it():
    with FakeKubo(auth="Bearer s3cret") as kubo:
        cid = cid_v1("guarded")
        kubo.add_content(cid)

        # without the header: an auth error with Kubo's plain-text answer
        with pytest.raises(KuboAuthError) as raised:
            KuboClient(kubo.url).pin_add(cid, stall_seconds=STALL)
        assert raised.value.status == 403
        assert raised.value.message == "403 - Forbidden"

        # with it: the pin goes through, every call carrying the header
        KuboClient(kubo.url, auth_header="Bearer s3cret").pin_add(cid, stall_seconds=STALL)
        assert cid in kubo.pinned
        assert [call.headers.get("authorization") for call in kubo.calls[1:]] == ["Bearer s3cret"] * 2


# -- the wire ----------------------------------------------------------------


def test_calls_are_posts_with_arg_parameters_on_one_connection_without_a_browser_user_agent(kubo):
    # given a client on a shared session whose default User-Agent looks like a
    # browser (Kubo refuses those with 403)
    session = requests.Session()
    session.headers["User-Agent"] = "Mozilla/5.0"
    client = KuboClient(kubo.url + "/", session=session)
    cid = cid_v1("wire")
    kubo.add_content(cid)

    # when it makes a few calls
    client.pin_add(cid, stall_seconds=STALL)
    client.is_pinned(cid)
    client.pin_rm(cid)

    # then each was a POST naming the CID as `arg`, none as a browser, all on one connection
    assert [(call.method, call.path, call.args) for call in kubo.calls] == [
        ("POST", "pin/add", (cid,)),
        ("POST", "pin/ls", (cid,)),
        ("POST", "pin/ls", (cid,)),
        ("POST", "pin/rm", (cid,)),
    ]
    assert not any(call.headers["user-agent"].startswith("Mozilla") for call in kubo.calls)
    assert len({call.client_port for call in kubo.calls}) == 1
