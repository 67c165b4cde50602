"""`get` on the real local stack (`python -m devstack`, loopback only): the
quickstart's add then get, served hot by a fleet node, and a file over the
stack's synchronous limit, which the service answers with a redirect to its
archive in moto's S3 (once archived: until then a 503 to retry)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import pins
from cli.pins import cli
from tests.cli.test_pins_cli import CLEAN_ENV, free_port
from tests.support.served_stack import served_stack

# Small enough that a 600 KiB file is redirected to the archive.
MAX_BYTES = 64 * 1024
STACK_ENV = {"STALL_SECONDS": "5", "RETRIEVAL_MAX_BYTES": str(MAX_BYTES)}
ARCHIVED_WITHIN_S = 60


@dataclass
class Stack:
    env_file: Path
    log: Path

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--env-file", str(self.env_file), *args], env=CLEAN_ENV, catch_exceptions=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("pins-get-stack")
    args = ["--user-node-port", str(free_port()), "--fleet-size", "2"]
    with served_stack(state_dir, args, env=STACK_ENV, start_timeout=90, stop_timeout=15) as served:
        yield Stack(state_dir / "local.env", served.log)


def added(stack: Stack, path: Path) -> str:
    """`add` (waits until pinned); the CID."""
    result = stack.run("--json", "add", str(path), "--timeout", "60")
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    return str(json.loads(result.stdout)["pin"]["cid"])


def test_given_a_small_file_added_when_got_then_the_same_bytes_come_back(stack: Stack, tmp_path: Path) -> None:
    # given a small file added and pinned through the quickstart's `add`
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello from get " + os.urandom(8).hex().encode())
    cid = added(stack, source)

    # when got back
    result = stack.run("get", cid, "-o", str(tmp_path / "back.txt"))

    # then the bytes are the file's
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "back.txt").read_bytes() == source.read_bytes()


def test_given_a_file_over_the_synchronous_limit_when_got_then_it_comes_from_the_archive(
    stack: Stack, tmp_path: Path
) -> None:
    # given a 600 KiB file (three chunks) added and pinned: over RETRIEVAL_MAX_BYTES
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(600 * 1024))
    cid = added(stack, source)

    # when got, again while the service says to retry (503: archiving)
    deadline = time.monotonic() + ARCHIVED_WITHIN_S
    while True:
        result = stack.run("get", cid, "-o", str(tmp_path / "back.bin"), "--quiet")
        if result.exit_code != pins.EXIT_UNAVAILABLE or time.monotonic() > deadline:
            break
        assert "retry after" in result.stderr
        time.sleep(1)

    # then the file came back whole, through the redirect to the archive
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    assert f'GET /ipfs/{cid} HTTP/1.1" 307' in stack.log.read_text(encoding="utf-8", errors="replace")
