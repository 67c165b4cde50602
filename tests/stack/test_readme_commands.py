"""The shell blocks of README.md run as written against a served stack, as a
newcomer pastes them: in a checkout whose `.dev/` is the stack's state dir,
with no setting in the environment but what the blocks source themselves.
Blocks that need what this machine lacks are skipped by name, with the
reason, and checked by `bash -n` like every block of docs/deploy.md."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.served_stack import REPO_ROOT, served_stack

README = REPO_ROOT / "README.md"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
START_TIMEOUT_S = 90
BLOCK_TIMEOUT_S = 120
# What the blocks must find only in the files they source.
SETTINGS = ("PINNING_SERVICE_URL", "PINNING_SERVICE_TOKEN", "KUBO_RPC_URL", "STAGE", "TABLE_PREFIX", "PIN_QUEUE_URL")


@dataclass(frozen=True)
class Block:
    """A README block, known by a line only it has."""

    name: str
    marker: str


# Run against the stack, in this order (a reader's order).
QUICKSTART = Block("quickstart", 'AUTH="Authorization: Bearer $PINNING_SERVICE_TOKEN"')
PINS_CLI = Block("cli.pins", "cli.pins add .dev/hello.txt --no-wait")
ADMIN = Block("cli.admin", 'cli.admin tenants create "Acme Inc"')
OWN_NODE = Block("cli.admin nodes", "cli.admin nodes register my-node")
RUN = (QUICKSTART, PINS_CLI, ADMIN, OWN_NODE)
SKIPPED = {
    Block("make", "make dev "): "starts the stack in the foreground until Ctrl-C (tests/devstack covers it)",
    Block(
        "ipfs", "ipfs pin remote service add"
    ): "needs Kubo's ipfs command and daemon, which this project does not install",
    Block("deploy", "make deploy STAGE=prod"): "needs AWS credentials and the network",
}


def shell_blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def the_block(block: Block) -> str:
    (found,) = [text for text in shell_blocks(README) if block.marker in text]
    return found


@pytest.mark.parametrize("path", [README, DEPLOY_DOC], ids=lambda path: path.name)
def test_every_shell_block_is_valid_bash(path):
    blocks = shell_blocks(path)
    assert blocks
    for text in blocks:
        checked = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
        assert checked.returncode == 0, f"{checked.stderr}\n{text}"


def test_every_readme_block_is_either_run_or_skipped_for_a_stated_reason():
    known = [*RUN, *SKIPPED]
    for text in shell_blocks(README):
        owners = [block.name for block in known if block.marker in text]
        assert len(owners) == 1, f"README block matched by {owners}, not by exactly one of the test's blocks:\n{text}"


@pytest.mark.parametrize("block", SKIPPED, ids=lambda block: block.name)
def test_blocks_this_machine_cannot_run(block):
    the_block(block)
    pytest.skip(SKIPPED[block])


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A checkout of the repository (its entries linked, so the venv is the real one) whose `.dev/` is the state
    dir of a served stack."""
    root = tmp_path_factory.mktemp("checkout")
    for entry in REPO_ROOT.iterdir():
        if entry.name not in (".dev", ".git"):
            (root / entry.name).symlink_to(entry)
    state_dir = root / ".dev"
    state_dir.mkdir(mode=0o700)
    with served_stack(state_dir, ["--user-node-port", "auto"], start_timeout=START_TIMEOUT_S, stop_timeout=20):
        yield root


def run(block: Block, root: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS and not name.startswith("AWS_")}
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", the_block(block)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )


def test_the_readme_blocks_run_as_written_and_leave_nothing_outside_dev(checkout):
    before = sorted(path.name for path in checkout.iterdir())
    results = {}
    for block in RUN:
        results[block] = result = run(block, checkout)
        assert result.returncode == 0, f"{block.name} failed:\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"

    # The quickstart's last command deletes the replacing pin: 202.
    assert results[QUICKSTART].stdout.splitlines()[-1] == "202"
    # `wait` exits 0 only once pinned; the listing of pinned pins shows the request.
    assert "pinned" in results[PINS_CLI].stdout
    assert "revoked" in results[ADMIN].stdout
    assert "removed node my-node" in results[OWN_NODE].stdout
    assert sorted(path.name for path in checkout.iterdir()) == before
