"""rate_limit_cost --quick, its CPU rows at tiny sizes: limiting adds no
DynamoDB write and one tenant read per tenant per cache period, and every
CPU figure is measured (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import rate_limit_cost


def test_a_quick_run_counts_the_dynamodb_work_and_measures_each_cpu_figure(capsys: pytest.CaptureFixture[str]) -> None:
    # when the benchmark runs its quick sizes, a few calls of each CPU row (the figures are not checked)
    outcome = rate_limit_cost.run(quick=True, cpu_sizes=rate_limit_cost.CpuSizes(2_000, 1, 10, 1))
    printed = capsys.readouterr().out

    # then 100 GETs cost the same requests with limits as without, plus the tenant's reads: 1 in 50 s, 2 in 120 s
    off, on_50, on_120 = outcome["dynamo"]
    assert [row[3] for row in outcome["dynamo"]] == [0, 1, 2]
    assert (on_50[2] - off[2], on_120[2] - off[2]) == (1, 2)
    # and no write at all
    assert [row[4] for row in outcome["dynamo"]] == [0, 0, 0]
    # and every CPU figure was measured, and the verdict printed
    assert len(outcome["cpu"]) == 5 and all(value > 0 for _, value in outcome["cpu"])
    assert outcome["met"] and "verdict: MET" in printed
