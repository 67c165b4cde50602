"""The users' CLI (`python -m cli.pins`) against the real local stack:
`python -m devstack` in a subprocess, on 127.0.0.1 only, with two embedded
Kubo fleet nodes and "your node"; the CLI runs in-process through click's
CliRunner and finds the stack through `--env-file <state dir>/local.env`."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from cli import pins
from cli.pins import Options, ProgressDisplay, SendProgress, StatusLine, cli
from tests.support.cids import cid_v1
from tests.support.served_stack import served_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 15
# Pins of content nobody has would otherwise keep the stack's one worker
# (and so its shutdown) busy for the whole invocation budget (15 s).
STACK_ENV = {"STALL_SECONDS": "5"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
# The settings of whoever runs the tests must not leak into them.
CLEAN_ENV: dict[str, str | None] = {pins.URL_VAR: None, pins.TOKEN_VAR: None, pins.KUBO_VAR: None}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Stack:
    state_dir: Path
    env_file: Path
    url: str
    token: str
    output: list[str]

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--env-file", str(self.env_file), *args], env=CLEAN_ENV, catch_exceptions=False)

    def run_json(self, *args: str) -> Any:
        result = self.run("--json", *args)
        assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("pins-cli-stack")
    args = ["--user-node-port", str(free_port()), "--fleet-size", "2"]
    with served_stack(
        state_dir, args, env=STACK_ENV, start_timeout=START_TIMEOUT_S, stop_timeout=STOP_TIMEOUT_S
    ) as served:
        env_file = state_dir / "local.env"
        assert served.env[pins.KUBO_VAR].startswith("http://127.0.0.1:")
        yield Stack(state_dir, env_file, served.url, served.token, served.output)


@pytest.fixture(scope="module")
def added(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """`add` of a small file of unique content, run once for the module."""
    path = tmp_path_factory.mktemp("content") / "hello.txt"
    path.write_text(f"hello from the pins CLI test {uuid.uuid4()}\n", encoding="utf-8")
    return stack.run("add", str(path), "--timeout", "30"), path


def added_request_id(added: tuple[Result, Path]) -> str:
    result, _ = added
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout.splitlines()[0]


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, f"{result.stdout}\n{result.stderr}"
    assert result.stderr.startswith("Error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- without the stack ------------------------------------------------------------


def _all_commands() -> list[tuple[str, ...]]:
    return [(), *((name,) for name in cli.commands)]


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p) or "root")
def test_given_any_command_when_asked_for_help_then_exits_0(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])

    assert result.exit_code == 0, result.output
    assert "Usage: " in result.stdout


def test_given_the_module_when_run_with_python_m_then_help_is_shown() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.pins", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert "python -m cli.pins" in result.stdout


def test_given_options_env_and_files_when_resolving_then_option_beats_env_file_beats_environment(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "local.env"
    env_file.write_text(
        "# made by hand\nexport PINNING_SERVICE_URL='http://127.0.0.1:1/'\nPINNING_SERVICE_TOKEN=from-file\n"
    )
    environ = {pins.URL_VAR: "http://127.0.0.1:2", pins.TOKEN_VAR: "from-env", pins.KUBO_VAR: "http://127.0.0.1:3"}

    assert Options(environ=environ).service() == ("http://127.0.0.1:2", "from-env")
    assert Options(env_file=env_file, environ=environ).service() == ("http://127.0.0.1:1", "from-file")
    assert Options(url="http://127.0.0.1:4", env_file=env_file, environ=environ).service() == (
        "http://127.0.0.1:4",
        "from-file",
    )
    with pytest.raises(click.ClickException, match="has no Kubo node"):
        Options(env_file=env_file, environ=environ).kubo()


def test_given_no_settings_anywhere_when_listing_then_one_line_error_suggesting_make_dev(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")

    result = CliRunner().invoke(cli, ["--env-file", str(empty), "ls"], env=CLEAN_ENV)

    assert_one_line_error(result, 1, "pinning service URL", "make dev")


def test_given_a_missing_env_file_when_listing_then_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--env-file", str(tmp_path / "nope.env"), "ls"], env=CLEAN_ENV)

    assert_one_line_error(result, 1, "cannot read --env-file")


def test_given_not_a_tty_when_progress_changes_then_one_line_per_change() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=False)

    for status, details in [
        ("queued", None),
        ("queued", None),
        ("pinning", "fetching"),
        ("pinning", "fetching"),
        ("pinned", "pinned on 2 nodes"),
    ]:
        display.update({"status": status, "info": {"status_details": details} if details else {}})
    display.finish()

    assert stream.getvalue() == "queued\npinning: fetching\npinned: pinned on 2 nodes\n"


def test_given_a_tty_when_progress_changes_then_one_updating_line_ended_once() -> None:
    stream = io.StringIO()
    ticks = iter([0.0, 0.5, 1.0, 1.5])
    display = ProgressDisplay(stream, tty=True, clock=lambda: next(ticks))

    display.update({"status": "queued"})
    display.update({"status": "pinning", "info": {"status_details": "fetched 3 blocks, 120 bytes"}})
    display.update({"status": "pinned", "info": {"status_details": "pinned on 2 nodes"}})
    display.finish()

    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("pinned: pinned on 2 nodes\n")
    assert text.count("\r\x1b[K") == 3
    assert "[  0.5s] queued" in text and "[  1.0s] pinning: fetched 3 blocks, 120 bytes" in text


def test_given_not_a_tty_when_a_file_is_sent_then_a_plain_line_every_5_s_and_when_all_is_sent() -> None:
    stream = io.StringIO()
    now = [0.0]
    progress = SendProgress(StatusLine(stream, tty=False), "big.bin", 50 * 2**20, clock=lambda: now[0])

    for seconds, sent_mib in [(0.0, 0), (1.0, 10), (5.5, 20), (6.0, 30), (7.0, 50)]:
        now[0] = seconds
        progress.sent(sent_mib * 2**20)
    progress.finish()

    assert stream.getvalue().splitlines() == [
        "adding big.bin: 0 bytes / 50.0 MiB sent",
        "adding big.bin: 20.0 MiB / 50.0 MiB sent",
        "adding big.bin: 50.0 MiB / 50.0 MiB sent, waiting for your node",
    ]


def test_given_a_tty_when_a_file_is_sent_then_one_line_redrawn_and_cleared_at_the_end() -> None:
    stream = io.StringIO()
    ticks = iter([0.0, 0.05, 0.2, 0.3])
    progress = SendProgress(StatusLine(stream, tty=True), "big.bin", 3 * 2**20, clock=lambda: next(ticks))

    for sent in (2**20, 2 * 2**20 - 1, 2 * 2**20, 3 * 2**20):
        progress.sent(sent)
    progress.finish()

    assert stream.getvalue().split("\r\x1b[K") == [
        "",
        "adding big.bin: 1.0 MiB / 3.0 MiB sent",
        "adding big.bin: 2.0 MiB / 3.0 MiB sent",
        "adding big.bin: 3.0 MiB / 3.0 MiB sent, waiting for your node",
        "",
    ]


def test_given_a_pin_fetching_when_waiting_then_stderr_shows_its_blocks_and_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a service that reports the pin fetching (as the worker writes it), then pinned
    answers = iter(
        [
            {"requestid": "r1", "status": "pinning", "info": {"status_details": "fetched 1,234 blocks, 45.6 MiB"}},
            {"requestid": "r1", "status": "pinned", "info": {"status_details": "pinned on 2 nodes"}},
        ]
    )
    monkeypatch.setattr(pins.PinningClient, "get", lambda self, request_id: next(answers))

    # when the user waits for it
    result = CliRunner().invoke(cli, ["--url", "http://127.0.0.1:9", "--token", "t", "wait", "r1"], env=CLEAN_ENV)

    # then the progress, blocks and bytes, is on stderr, and nothing on stdout
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == ["pinning: fetched 1,234 blocks, 45.6 MiB", "pinned: pinned on 2 nodes"]
    assert result.stdout == ""


def test_given_a_failed_pin_when_described_then_its_failed_reason_is_shown() -> None:
    status = {"status": "failed", "info": {"failed_reason": "the node refused the CID", "status_details": "x"}}

    assert ProgressDisplay.describe(status) == "failed: the node refused the CID"


@pytest.mark.parametrize("value", ["nope", "", "pinned,nope", "Pinned"])
def test_given_an_unknown_status_when_listing_then_usage_error_before_any_request(value: str) -> None:
    result = CliRunner().invoke(
        cli, ["--url", "http://127.0.0.1:9", "--token", "t", "ls", "--status", value], env=CLEAN_ENV
    )

    assert result.exit_code == 2
    assert "--status" in result.stderr


def test_given_meta_without_equals_when_pinning_then_usage_error() -> None:
    result = CliRunner().invoke(
        cli, ["--url", "http://127.0.0.1:9", "--token", "t", "pin", "x", "--meta", "novalue"], env=CLEAN_ENV
    )

    assert result.exit_code == 2
    assert "key=value" in result.stderr


# --- add, status, pin, ls -------------------------------------------------------------


def test_given_a_file_when_added_then_it_ends_pinned_from_your_node_and_status_shows_two_replicas(
    stack: Stack, added: tuple[Result, Path]
) -> None:
    result, path = added
    request_id = added_request_id(added)

    assert UUID.match(request_id), result.stdout
    assert result.stdout.splitlines() == [request_id], "progress stays off stdout"
    assert result.stderr.splitlines()[-1].startswith("pinned"), result.stderr
    status = stack.run_json("status", request_id)
    assert status["status"] == "pinned"
    assert status["pin"]["name"] == path.name
    assert status["pin"]["origins"] and all("/p2p/" in origin for origin in status["pin"]["origins"])
    assert len(status["info"]["replicas"].split(",")) == 2
    human = stack.run("status", request_id)
    assert human.exit_code == 0, human.stderr
    assert re.search(r"^status\s+pinned$", human.stdout, re.MULTILINE), human.stdout
    assert "replicas: " in human.stdout


def test_given_a_3_mib_file_when_added_then_stderr_shows_the_bytes_sent_and_json_stays_clean(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(uuid.uuid4().bytes * (3 * 2**20 // 16))

    result = stack.run("add", str(path), "--no-wait")
    as_json = stack.run("--json", "add", str(path), "--no-wait")

    assert result.exit_code == 0, result.stderr
    assert UUID.match(result.stdout.strip()), result.stdout
    assert "adding big.bin: 3.0 MiB / 3.0 MiB sent, waiting for your node" in result.stderr.splitlines()
    assert re.search(r"^added big\.bin \(3\.0 MiB\) to your node .*: Qm\w+$", result.stderr, re.MULTILINE)
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout)["pin"]["name"] == "big.bin"
    assert as_json.stderr == ""


def test_given_an_added_cid_when_pinned_again_by_cid_then_a_new_request_id_that_waits_to_pinned(
    stack: Stack, added: tuple[Result, Path]
) -> None:
    first = stack.run_json("status", added_request_id(added))
    cid = first["pin"]["cid"]

    pinned = stack.run("pin", cid, "--name", "again", "--meta", "app=pins-cli", "--meta", "kind=test")

    assert pinned.exit_code == 0, pinned.stderr
    request_id = pinned.stdout.strip()
    assert UUID.match(request_id) and request_id != first["requestid"]
    waited = stack.run("wait", request_id, "--timeout", "30")
    assert waited.exit_code == 0, f"{waited.stdout}\n{waited.stderr}"
    assert waited.stdout == ""
    assert waited.stderr.splitlines()[-1].startswith("pinned")
    status = stack.run_json("status", request_id)
    assert status["pin"] == {"cid": cid, "name": "again", "meta": {"app": "pins-cli", "kind": "test"}}
    assert status["status"] == "pinned"


def test_given_pin_with_wait_when_json_then_the_final_pin_status_is_printed(
    stack: Stack, added: tuple[Result, Path]
) -> None:
    cid = stack.run_json("status", added_request_id(added))["pin"]["cid"]

    status = stack.run_json("pin", cid, "--wait", "--timeout", "30")

    assert status["status"] == "pinned"
    assert status["pin"]["cid"] == cid


def test_given_pinned_requests_when_listing_pinned_then_the_table_shows_them(
    stack: Stack, added: tuple[Result, Path]
) -> None:
    request_id = added_request_id(added)
    cid = stack.run_json("status", request_id)["pin"]["cid"]
    again = stack.run_json("pin", cid, "--name", "listed", "--wait", "--timeout", "30")["requestid"]

    result = stack.run("ls", "--status", "pinned", "--limit", "1000")

    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["REQUEST", "ID", "STATUS", "CREATED", "CID", "NAME"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert by_id[request_id][1:] == ["pinned", by_id[request_id][2], cid, "hello.txt"]
    assert by_id[again][1] == "pinned" and by_id[again][4] == "listed"
    listed = stack.run_json("ls", "--status", "pinned", "--cid", cid, "--limit", "1000")
    assert {request_id, again} <= {pin["requestid"] for pin in listed["results"]}
    assert all(pin["status"] == "pinned" for pin in listed["results"])


def test_given_five_pins_when_listing_all_two_per_page_then_each_is_seen_exactly_once(
    stack: Stack, added: tuple[Result, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = stack.run_json("status", added_request_id(added))["pin"]["cid"]
    batch = f"batch={uuid.uuid4()}"
    made = [stack.run("pin", cid, "--name", f"page-{index}", "--meta", batch).stdout.strip() for index in range(5)]
    assert all(UUID.match(request_id) for request_id in made), made
    queries: list[dict[str, str]] = []
    list_page = pins.PinningClient.list

    def spy(self: pins.PinningClient, query: dict[str, str]) -> dict[str, Any]:
        queries.append(dict(query))
        return list_page(self, query)

    monkeypatch.setattr(pins.PinningClient, "list", spy)

    listed = stack.run_json("ls", "--all", "--limit", "2", "--meta", batch)

    ids = [pin["requestid"] for pin in listed["results"]]
    assert sorted(ids) == sorted(made) and len(ids) == 5
    assert ids == list(reversed(made)), "newest first"
    assert listed["count"] == 5
    assert len(queries) == 3
    assert "before" not in queries[0]
    assert queries[1]["before"] == listed["results"][1]["created"]
    assert queries[2]["before"] == listed["results"][3]["created"]
    human = stack.run("ls", "--all", "--limit", "2", "--meta", batch)
    assert human.exit_code == 0, human.stderr
    assert [line.split()[0] for line in human.stdout.splitlines()[1:]] == ids


def test_given_more_pins_than_the_limit_when_listing_one_page_then_a_note_says_so(
    stack: Stack, added: tuple[Result, Path]
) -> None:
    cid = stack.run_json("status", added_request_id(added))["pin"]["cid"]
    batch = f"batch={uuid.uuid4()}"
    for _ in range(3):
        assert stack.run("pin", cid, "--meta", batch).exit_code == 0

    result = stack.run("ls", "--limit", "2", "--meta", batch)

    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3
    assert "2 of 3 shown" in result.stderr


# --- replace, rm --------------------------------------------------------------------


def test_given_a_pin_when_replaced_then_new_id_printed_and_old_id_is_not_found(
    stack: Stack, added: tuple[Result, Path]
) -> None:
    cid = stack.run_json("status", added_request_id(added))["pin"]["cid"]
    old = stack.run("pin", cid, "--name", "v1").stdout.strip()

    replaced = stack.run("replace", old, cid, "--name", "v2", "--meta", "version=2")

    assert replaced.exit_code == 0, replaced.stderr
    new = replaced.stdout.strip()
    assert UUID.match(new) and new != old
    gone = stack.run("status", old)
    assert_one_line_error(gone, 1, "Error: NOT_FOUND")
    assert gone.stdout == ""
    assert stack.run_json("status", new)["pin"] == {"cid": cid, "name": "v2", "meta": {"version": "2"}}


def test_given_a_pin_when_removed_then_it_is_gone_and_removing_again_is_not_found(
    stack: Stack, added: tuple[Result, Path]
) -> None:
    cid = stack.run_json("status", added_request_id(added))["pin"]["cid"]
    request_id = stack.run("pin", cid, "--name", "to-remove").stdout.strip()

    removed = stack.run("rm", request_id)

    assert removed.exit_code == 0, removed.stderr
    assert request_id in removed.stdout
    assert_one_line_error(stack.run("status", request_id), 1, "Error: NOT_FOUND")
    assert_one_line_error(stack.run("rm", request_id), 1, "Error: NOT_FOUND")
    assert stack.run_json("ls", "--name", "to-remove", "--cid", cid) == {"count": 0, "results": []}


# --- errors ----------------------------------------------------------------------------


def test_given_a_bad_token_when_listing_then_unauthorized_on_one_line(stack: Stack) -> None:
    result = stack.run("--token", "pst_not-a-token", "ls")

    assert_one_line_error(result, 1, "Error: UNAUTHORIZED")
    assert result.stdout == ""


def test_given_a_bad_token_when_json_then_still_one_line_error_and_no_stdout(stack: Stack) -> None:
    result = stack.run("--token", "pst_not-a-token", "--json", "status", "x")

    assert_one_line_error(result, 1, "Error: UNAUTHORIZED")
    assert result.stdout == ""


def test_given_an_invalid_cid_when_pinning_then_the_api_reason_is_shown(stack: Stack) -> None:
    assert_one_line_error(stack.run("pin", "not-a-cid"), 1, "Error: INVALID_CID: ")


def test_given_nothing_listening_when_listing_then_connection_refused_suggests_make_dev(stack: Stack) -> None:
    result = stack.run("--url", f"http://127.0.0.1:{free_port()}", "ls")

    assert_one_line_error(result, 1, "connection refused", "make dev")


def test_given_no_kubo_node_listening_when_adding_then_one_line_error_names_the_node(
    stack: Stack, tmp_path: Path
) -> None:
    path = tmp_path / "x.txt"
    path.write_text("x")

    result = stack.run("--kubo-url", f"http://127.0.0.1:{free_port()}", "add", str(path))

    assert_one_line_error(result, 1, "Kubo node", "connection refused")


# --- waiting for content nobody has (last: it ties up the stack's worker) ----------------------


def test_given_content_nobody_has_when_waiting_with_timeout_then_exit_2_after_the_timeout(stack: Stack) -> None:
    request_id = stack.run("pin", cid_v1(uuid.uuid4()), "--name", "nobody-has-it").stdout.strip()
    assert UUID.match(request_id)

    started = time.monotonic()
    result = stack.run("wait", request_id, "--timeout", "2")
    elapsed = time.monotonic() - started

    assert result.exit_code == 2, result.stderr
    *progress, error = result.stderr.splitlines()
    assert error.startswith("Error: timed out after 2 s") and request_id in error, result.stderr
    assert 2 <= elapsed < 6
    assert progress[0] == "queued" or progress[0].startswith("pinning"), result.stderr
    assert not any(line.startswith("pinned") for line in progress)
    # The service carries on; let its worker put the pin aside (STALL_SECONDS)
    # so that the stack stops promptly afterwards.
    deadline = time.monotonic() + 30
    while True:
        status = stack.run_json("status", request_id)
        if status["status"] == "pinning" and status["info"].get("status_details", "").endswith("continuing shortly"):
            break
        assert time.monotonic() < deadline, f"still {status}"
        time.sleep(0.5)
