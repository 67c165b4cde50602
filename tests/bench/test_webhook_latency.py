"""bench.webhook_latency end to end on one local stack (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import webhook_latency
from bench.support import local_stack


def test_the_webhook_latency_benchmark_receives_every_event_and_prints_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the local stack, started as `make dev` starts it
    with local_stack(tmp_path / "state") as stack:
        # When the benchmark pins and deletes twice through it, a receiver registered
        latencies = webhook_latency.measure(stack, runs=2)
    webhook_latency.report(latencies)
    printed = capsys.readouterr().out
    # Then every status change reached the receiver, verified, and the table shows each event type
    assert {event: len(values) for event, values in latencies.items()} == {
        "pin.queued": 2,
        "pin.pinning": 2,
        "pin.pinned": 2,
        "pin.deleted": 2,
    }
    assert "status change -> event received and verified (ms)" in printed
