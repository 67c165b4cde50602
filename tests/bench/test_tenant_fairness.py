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


class _Reply:
    def __init__(self, status_code: int, headers: dict[str, str], body: dict[str, str] | None = None) -> None:
        self.status_code, self.headers, self._body, self.text = status_code, headers, body or {}, ""

    def json(self) -> dict[str, str]:
        return self._body


class _Api:
    """Answers POSTs with the replies given, in order."""

    def __init__(self, *replies: _Reply) -> None:
        self.replies, self.posts = list(replies), 0

    def post(self, url: str, json: object, timeout: float) -> _Reply:
        self.posts += 1
        return self.replies.pop(0)


def test_a_submit_past_the_rate_limit_or_busy_is_tried_again_after_the_time_asked() -> None:
    # given: an API that answers 429 (the token's rate limit), then 503, then accepts
    api = _Api(
        _Reply(429, {"Retry-After": "0"}),
        _Reply(503, {"Retry-After": "0"}),
        _Reply(202, {}, {"requestid": "r-1"}),
    )
    tenant = tenant_fairness.Tenant("http://127.0.0.1:9", "token")
    tenant.session = api  # type: ignore[assignment]

    # when: tenant A submits a pin
    request_id = tenant.submit("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", [])

    # then: it was tried until accepted
    assert request_id == "r-1" and api.posts == 3


def test_a_submit_refused_for_good_stops_the_benchmark() -> None:
    # given: an API that refuses the body
    tenant = tenant_fairness.Tenant("http://127.0.0.1:9", "token")
    tenant.session = _Api(_Reply(400, {}))  # type: ignore[assignment]

    # when/then: the benchmark stops, naming the answer
    with pytest.raises(SystemExit, match="answered 400"):
        tenant.submit("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", [])
