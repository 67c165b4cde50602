"""residual_filters on tiny tenants: partial names and meta measured through
the API by pins in range, refused over the limit, and the client's work
measured by replaying recorded responses (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import residual_filters
from bench.support import partition_scoped_moto_queries


@pytest.fixture(autouse=True)
def moto_as_the_bench_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Query on its partition only, as `run` has it; moto's own Query again after the test."""
    from moto.dynamodb.models.table import Table

    monkeypatch.setattr(Table, "query", Table.query)
    partition_scoped_moto_queries()


def test_a_short_run_measures_each_filter_by_range_refuses_over_the_limit_and_replays(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: 41 Kubo-shaped pins and 11 with 16 KB of meta, a limit of 15 pins
    # when: each filter is measured over 10, 20 and 40 pins (each answer checked against a brute-force one)
    outcome = residual_filters.measure_ranges((10, 20, 40), (5, 10), 15)
    residual_filters.report(outcome)
    printed = capsys.readouterr().out

    # then: every filter answered every range, and a partial name read at least every pin of it
    assert [(m.label, m.in_range, m.status) for m in outcome.rows] == [
        (label, n, 200) for label in residual_filters.FILTERS for n in (10, 20, 40)
    ]
    assert all(m.items >= m.in_range for m in outcome.rows if m.label in residual_filters.SCANS)
    # and: just over the limit, every filter is refused
    assert [m.status for m in outcome.refused] == [422] * len(residual_filters.FILTERS)
    # and: the client's work was measured for every filter, from replayed responses
    assert set(outcome.client_s) == set(residual_filters.ALL_FILTERS) and all(s > 0 for s in outcome.client_s.values())
    assert "extrapolated" in printed
