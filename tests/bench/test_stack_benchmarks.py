"""The local-stack benchmarks run end to end on one small stack (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import stack_latency, stack_ready, stack_throughput
from bench.support import local_stack


def test_stack_benchmarks_measure_a_running_stack_and_print_their_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: the local stack, started as `make dev` starts it
    with local_stack(tmp_path / "state") as stack:
        # when: each benchmark measures it with tiny sizes
        latency = stack_latency.measure(stack, runs=1, large_runs=1, large_mib=2)
        throughput = stack_throughput.measure(stack, pins=6, concurrency=3)
    stack_ready.report({"fresh": [stack]}, overhead=None)
    printed = capsys.readouterr().out

    # then: every pin was pinned, and each side of every comparison was measured
    assert set(latency) == {"1 MiB", "2 MiB"}
    for service, direct in latency.values():
        assert len(service) == 1 and len(direct[1]) == 1 and len(direct[2]) == 1
    assert throughput["failed"] == 0 and throughput["pins_per_second"] > 0
    assert "ratio service / direct (both nodes)" in printed
    assert "6 / 6 / 0" in printed  # submitted / pinned / failed
    assert "6 of 6 requests traced in the log" in printed
    assert "pin queue: handed back to continue later, median / max" in printed
    # and: the start was timed to the ready line and broken down by the stack's own progress lines
    assert "spawn -> ready line" in printed
    assert "spawn -> Starting emulated AWS" in printed
