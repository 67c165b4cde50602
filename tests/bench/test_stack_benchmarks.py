"""The local-stack benchmarks run end to end on one small stack, one after the
other (no timing is asserted): a stack takes seconds to start and to stop, so
they share one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from bench import stack_latency, stack_ready, stack_throughput, tenant_fairness, webhook_latency
from bench.support import LocalStack, local_stack


def webhook_latencies(stack: LocalStack) -> dict[str, list[float]]:
    """bench.webhook_latency's two runs; its receiver unregistered after, so
    the pins of the benchmarks after it send no event to a stopped receiver."""
    latencies = webhook_latency.measure(stack, runs=2)
    api = requests.Session()
    api.headers.update(stack.auth())
    for endpoint in api.get(f"{stack.url}/webhooks", timeout=30).json()["results"]:
        assert api.delete(f"{stack.url}/webhooks/{endpoint['id']}", timeout=30).status_code == 204
    return latencies


def check_latency_and_throughput(latency: stack_latency.Results, throughput: dict[str, Any], printed: str) -> None:
    # every pin was pinned, and each side of every comparison was measured
    assert set(latency) == {"1 MiB", "2 MiB"}
    for service, direct in latency.values():
        assert len(service) == 1 and len(direct[1]) == 1 and len(direct[2]) == 1
    assert throughput["failed"] == 0 and throughput["pins_per_second"] > 0
    assert "ratio service / direct (both nodes)" in printed
    assert "6 / 6 / 0" in printed  # submitted / pinned / failed
    assert "6 of 6 requests traced in the log" in printed
    assert "pin queue: handed back to continue later, median / max" in printed


def check_webhooks(latencies: dict[str, list[float]], printed: str) -> None:
    # every status change reached the receiver, verified, and the table shows each event type
    assert {event: len(values) for event, values in latencies.items()} == {
        "pin.queued": 2,
        "pin.pinning": 2,
        "pin.pinned": 2,
        "pin.deleted": 2,
    }
    assert "status change -> event received and verified (ms)" in printed


def check_fairness(scenarios: list[tenant_fairness.Scenario], printed: str) -> None:
    # B was measured alone and under each backlog (its POSTs too), and A's quick backlog was followed
    for scenario in scenarios:
        assert len(scenario.alone) == 1 and len(scenario.loaded) == 1
        assert len(scenario.posts_alone) == 1 and len(scenario.posts_loaded) == 1
        assert 0 < scenario.posts_loaded[0] <= scenario.loaded[0]
        assert set(scenario.a_at_start) == {"queued", "pinning", "pinned", "failed"}
    assert scenarios[0].a_done_seconds is not None and scenarios[1].a_done_seconds is None
    # and the table compares B's medians with the target
    assert "target: 2 x alone + 1 s poll" in printed and "load, B's start / end" in printed
    assert "unfetchable: 5 pins of A" in printed and "quick: 5 pins of A" in printed


def test_stack_benchmarks_measure_a_running_stack_and_print_their_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: the local stack, started as `make dev` starts it
    with local_stack(tmp_path / "state") as stack:
        # when: each benchmark measures it with tiny sizes: latency and throughput (which wants nothing
        # else queued), webhooks, then tenant fairness last (A's unfetchable pins never finish;
        # its quick backlog first, followed until A has none left)
        latency = stack_latency.measure(stack, runs=1, large_runs=1, large_mib=2)
        throughput = stack_throughput.measure(stack, pins=6, concurrency=3)
        latency_tables = capsys.readouterr().out
        webhooks = webhook_latencies(stack)
        scenarios = [
            tenant_fairness.measure(stack, "quick", backlog=5, b_pins=1),
            tenant_fairness.measure(stack, "unfetchable", backlog=5, b_pins=1),
        ]
    webhook_latency.report(webhooks)
    webhook_table = capsys.readouterr().out
    tenant_fairness.report(scenarios)
    fairness_table = capsys.readouterr().out
    stack_ready.report({"fresh": [stack]}, overhead=None)
    start_tables = capsys.readouterr().out

    # then: each benchmark measured what it measures, and printed its table
    check_latency_and_throughput(latency, throughput, latency_tables)
    check_webhooks(webhooks, webhook_table)
    check_fairness(scenarios, fairness_table)
    # and: the start was timed to the ready line and broken down by the stack's own progress lines
    assert "spawn -> ready line" in start_tables
    assert "spawn -> Starting emulated AWS" in start_tables
