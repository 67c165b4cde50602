"""list_cost on tiny tenants: every case measured through the API on both
sizes and both shard counts, and the emulator's shortcut changing no figure
(no timing is asserted)."""

from __future__ import annotations

import contextlib

import pytest

from bench import list_cost
from bench.support import partition_scoped_moto_queries


@pytest.fixture(autouse=True)
def moto_as_the_bench_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Query on its partition only, as `run` has it; moto's own Query again after the test."""
    from moto.dynamodb.models.table import Table

    monkeypatch.setattr(Table, "query", Table.query)
    partition_scoped_moto_queries()


def figures(outcome: list_cost.Outcome) -> list[tuple[int, str, list[tuple[int, int, float]]]]:
    """Items, requests and ~RCU of every request, by shard count and case."""
    measured = [
        (shards, entry) for group in (outcome.main, outcome.rare_meta) for shards, r in group.items() for entry in r
    ]
    measured += [(1, entry) for entry in outcome.other]
    return [
        (shards, case.label, [(t.items_read, t.requests, t.rcu) for t in small.tallies + large.tallies])
        for shards, (case, small, large) in measured
    ]


def test_a_short_run_answers_every_case_and_the_emulator_shortcut_changes_no_figure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: tenants of 10 and 30 pins, each on 1 shard and on 4
    # when: every case is measured (each answer is checked against a brute-force one, or the run stops)
    outcome = list_cost.measure_sizes(10, 30)
    list_cost.report(outcome)
    printed = capsys.readouterr().out

    # then: the main and rare meta cases ran on 1 and 4 shards, the others on 1
    assert {shards: len(results) for shards, results in outcome.main.items()} == {1: 7, 4: 7}
    assert set(outcome.rare_meta) == {1, 4} and len(outcome.other) == len(list_cost.OTHER_CASES)
    # and: the rare pair is read, its pins found, at both sizes
    for results in outcome.rare_meta.values():
        ((_, small, large),) = results
        assert small.count > 0 and large.count > 0 and small.rarest_pair > 0
    assert "on 1 vs 4 shards" in printed and "verdict:" in printed

    # when: the same run reads through moto's own Query, not narrowed to the key range (one test, not two:
    # the run above takes seconds, and two tests would each make it on a worker of their own)
    monkeypatch.setattr(list_cost, "range_scoped_moto_queries", contextlib.nullcontext)
    # then: every request read the same items, in the same requests, for the same ~RCU
    assert figures(list_cost.measure_sizes(10, 30)) == figures(outcome)
