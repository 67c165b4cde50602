"""The tenant fairness benchmark's client: a submit tried again when asked, stopped when refused for good
(its run on a local stack: tests/bench/test_stack_benchmarks.py)."""

from __future__ import annotations

import pytest

from bench import tenant_fairness


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
