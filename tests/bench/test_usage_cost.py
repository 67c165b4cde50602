"""usage_cost on two lifecycles: what it prints holds the targets (counts, no timing)."""

from __future__ import annotations

import pytest

from bench import usage_cost


def test_usage_adds_no_read_to_reads_and_one_item_per_status_change(capsys: pytest.CaptureFixture[str]) -> None:
    # given: every step run twice, before and after, on both plans
    results = usage_cost.measure(2)
    # when: it is reported
    met = usage_cost.report(results)
    before, unlimited, free = (results[mode] for mode in usage_cost.MODES)
    # then: GETs read as before, whatever the plan
    for read in ("GET /pins/{requestid}", "GET /pins?status=pinned"):
        assert unlimited[read].reads == before[read].reads == free[read].reads
    # and a tenant on the default (unlimited) plan costs no extra read on a warm create
    assert unlimited["POST /pins"].reads == before["POST /pins"].reads
    # and one usage item rides in the pinned write and in a replace or delete of a pinned pin, no extra write
    assert unlimited["worker: pinning, pinned"].usage_items == [1, 1]
    assert unlimited["POST /pins/{requestid} (replace a pinned pin)"].usage_items == [1, 1]
    assert unlimited["POST /pins"].usage_items == [0, 0]
    for step in ("POST /pins", "worker: pinning, pinned", "DELETE /pins/{requestid}"):
        assert unlimited[step].writes == before[step].writes
    # and the fold writes each lifecycle's CID's hold and at most one operator month item a lifecycle
    assert 1 <= unlimited[usage_cost.FOLD].usage_items[0] <= 2
    assert before[usage_cost.FOLD].usage_items == [0]
    assert met
    assert "verdict: MET" in capsys.readouterr().out
