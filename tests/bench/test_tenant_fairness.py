"""The tenant fairness benchmark runs end to end on one small local stack (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import tenant_fairness
from bench.support import local_stack


def test_tenant_fairness_measures_both_tenants_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given: the local stack, started as `make dev` starts it
    with local_stack(tmp_path / "state") as stack:
        # when: tenant A queues a small backlog of each kind while tenant B pins
        # (quick first: A's unfetchable pins never finish, and the quick one is followed until A has none left)
        scenarios = [
            tenant_fairness.measure(stack, "quick", backlog=10, b_pins=1),
            tenant_fairness.measure(stack, "unfetchable", backlog=10, b_pins=1),
        ]
    tenant_fairness.report(scenarios)
    printed = capsys.readouterr().out

    # then: B was measured alone and under each backlog (its POSTs too), and A's quick backlog was followed
    for scenario in scenarios:
        assert len(scenario.alone) == 1 and len(scenario.loaded) == 1
        assert len(scenario.posts_alone) == 1 and len(scenario.posts_loaded) == 1
        assert 0 < scenario.posts_loaded[0] <= scenario.loaded[0]
        assert set(scenario.a_at_start) == {"queued", "pinning", "pinned", "failed"}
    assert scenarios[0].a_done_seconds is not None and scenarios[1].a_done_seconds is None
    # and: the table compares B's medians with the target
    assert "target: 2 x alone + 1 s poll" in printed and "load, B's start / end" in printed
    assert "unfetchable: 10 pins of A" in printed and "quick: 10 pins of A" in printed
