"""Rate limits through the API: a burst beyond a token's or its tenant's
budget answers 429 RATE_LIMITED with an integer Retry-After and changes
nothing; each token has its own budget, a tenant's tokens share the
tenant's; budgets refill with the clock; a tenant's own limits (cli.admin)
replace the stage's. The limiter's clock is the test's; nothing sleeps."""

from __future__ import annotations

import pytest

from chalicelib.tenants.rate_limits import RateLimiter, RateLimits, TenantRateLimits
from tests.api.conftest import FakeClock
from tests.api.helpers import ALL_STATUSES, assert_failure, header
from tests.support.cids import cid_v1

# Each token: 1 a second, bursts of 3; the tenant: 2 a second, bursts of 5.
SMALL = RateLimits(per_second=2, burst=5, token_per_second=1, token_burst=3)


@pytest.fixture
def clock(services) -> FakeClock:
    """The API's limiter, on SMALL limits (the stage's) and a clock the test moves."""
    clock = FakeClock(1_700_000_000_000)
    services.rate_limiter = RateLimiter(SMALL, TenantRateLimits(services.tenants, 60, clock), clock=clock)
    return clock


def assert_rate_limited(reply, seconds: int) -> None:
    assert_failure(reply, 429, "RATE_LIMITED")
    assert header(reply, "Retry-After") == str(seconds)


def test_a_burst_beyond_the_limit_is_refused_with_retry_after_and_changes_nothing(api, clock, pin_queue):
    # given a token that spent its burst of 3 on two pins and a listing
    first = api.pin(cid_v1("limited-1"))
    second = api.pin(cid_v1("limited-2"))
    assert api.list(status=ALL_STATUSES)["count"] == 2
    pin_queue.drain()

    # when it goes on at once, then every kind of request is 429 with Retry-After: 1 (a token in 1 s)
    for method, path, body in [
        ("POST", "/pins", {"cid": cid_v1("limited-3")}),
        ("GET", "/pins", None),
        ("GET", f"/pins/{first['requestid']}", None),
        ("POST", f"/pins/{first['requestid']}", {"cid": cid_v1("limited-replacement")}),
        ("DELETE", f"/pins/{second['requestid']}", None),
    ]:
        assert_rate_limited(api.request(method, path, json_body=body), 1)

    # and nothing was created, replaced, deleted or queued
    assert pin_queue.drain() == []
    clock.advance(1_000)
    assert api.list(status=ALL_STATUSES) == {"count": 2, "results": [second, first]}


def test_the_retry_after_is_the_whole_seconds_until_the_budget_has_a_request(api, clock, services, tenant_id):
    # given the tenant's own limits: each token 1 a second with bursts of 1 (the tenant unlimited)
    services.admin.set_rate_limits(tenant_id, RateLimits(0, 0, 1, 1))
    clock.advance(60_000)  # past the cache period
    api.list()
    # when asked again 0.5 s later, then it is told to retry in 1 s (0.5 s rounded up)
    clock.advance(500)
    assert_rate_limited(api.request("GET", "/pins"), 1)
    clock.advance(500)
    assert api.request("GET", "/pins").status == 200


def test_each_token_has_its_own_budget(api, clock, services, tenant_id):
    # given two tokens of one tenant, the first spent
    phone = api.as_token(services.admin.issue_token(tenant_id, "phone").secret)
    for _ in range(3):
        api.list()
    assert_rate_limited(api.request("GET", "/pins"), 1)
    # then the second still gets its own (within the tenant's 5)
    assert phone.request("GET", "/pins").status == 200


def test_a_tenants_tokens_share_its_budget_and_other_tenants_are_untouched(
    api, clock, services, tenant_id, other_tenant
):
    # given three tokens of one tenant spending 2 + 3 of the tenant's 5
    phone = api.as_token(services.admin.issue_token(tenant_id, "phone").secret)
    tablet = api.as_token(services.admin.issue_token(tenant_id, "tablet").secret)
    for _ in range(2):
        api.list()
    for _ in range(3):
        phone.list()

    # then the third token, whose own budget is whole, is refused: the tenant's is spent
    reply = tablet.request("GET", "/pins")
    assert_rate_limited(reply, 1)
    assert "tenant's limit is 2 a second" in reply.json["error"]["details"]
    # and another tenant is not limited by it
    assert other_tenant.api.request("GET", "/pins").status == 200


def test_limits_reset_with_the_clock(api, clock):
    for _ in range(3):
        api.list()
    assert_rate_limited(api.request("GET", "/pins"), 1)
    # when the token's bucket has refilled (3 s at 1 a second), then a full burst passes again
    clock.advance(3_000)
    for _ in range(3):
        assert api.request("GET", "/pins").status == 200
    assert_rate_limited(api.request("GET", "/pins"), 1)


def test_a_tenants_own_limits_replace_the_stages(api, clock, services, tenant_id, other_tenant):
    # given the operator raised alice's limits (bob keeps the stage's)
    services.admin.set_rate_limits(tenant_id, RateLimits(100, 50, 50, 20))
    # when the containers' cache period has passed
    clock.advance(60_000)
    api.list()
    clock.advance(1_000)
    # then alice's token makes 20 requests at once, and bob still only 3
    for _ in range(20):
        assert api.request("GET", "/pins").status == 200
    assert_rate_limited(api.request("GET", "/pins"), 1)
    for _ in range(3):
        other_tenant.api.list()
    assert_rate_limited(other_tenant.api.request("GET", "/pins"), 1)


def test_unauthenticated_requests_are_401_not_429(api, clock):
    # given a spent token
    for _ in range(3):
        api.list()
    # then a bad token is still told it is unauthorized
    assert_failure(api.as_token("pst_nope").request("GET", "/pins"), 401, "UNAUTHORIZED")


def test_a_browser_page_may_read_the_retry_after(api, clock):
    # given a spent token
    for _ in range(3):
        api.list()
    # when a page of another origin is refused
    reply = api.request("GET", "/pins", headers={"Origin": "https://app.example"})
    # then CORS lets it read when to retry
    assert_rate_limited(reply, 1)
    exposed = header(reply, "Access-Control-Expose-Headers") or ""
    assert "retry-after" in [name.strip().lower() for name in exposed.split(",")]
