"""The per-container token buckets: a tenant's and each token's budget, what a
refusal takes (nothing) and says (when to retry), and budgets refilling with
the clock. A fake clock; nothing sleeps."""

from __future__ import annotations

import pytest

from chalicelib.tenants.rate_limits import RateLimited, RateLimiter, RateLimits, TenantRateLimits
from chalicelib.tenants.repository import Tenant
from tests.api.conftest import FakeClock
from tests.support.memory.tenants import MemoryTenants

# The tenant: 4 a second, bursts of 10; each token: 2 a second, bursts of 5.
LIMITS = RateLimits(per_second=4, burst=10, token_per_second=2, token_burst=5)


def admitted(limiter: RateLimiter, tenant_id: str, token_id: str, requests: int) -> int:
    """How many of `requests` made at once were admitted."""
    count = 0
    for _ in range(requests):
        try:
            limiter.admit(tenant_id, token_id)
        except RateLimited:
            continue
        count += 1
    return count


def refusal(limiter: RateLimiter, tenant_id: str, token_id: str) -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        limiter.admit(tenant_id, token_id)
    return refused.value


def test_a_burst_beyond_a_tokens_budget_is_refused_with_the_seconds_to_wait() -> None:
    # given a token with a full bucket of 5, refilling 2 a second
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(LIMITS, clock=clock)
    # when 8 requests arrive at once, then 5 pass and 3 are refused
    assert admitted(limiter, "tn_a", "tok_1", 8) == 5
    # and the refusal names the token's limit and a whole number of seconds (1/2 s rounded up)
    refused = refusal(limiter, "tn_a", "tok_1")
    assert refused.retry_after_seconds == 1
    assert refused.details.endswith("this token's limit is 2 a second (bursts of 5); retry after 1 s")
    # when half a second passes, then exactly one more is admitted
    clock.advance(500)
    assert admitted(limiter, "tn_a", "tok_1", 3) == 1


def test_tokens_have_budgets_of_their_own_and_share_their_tenants() -> None:
    # given one tenant's three tokens and another tenant's token
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(LIMITS, clock=clock)
    # when the first two tokens each spend their whole budget
    assert admitted(limiter, "tn_a", "tok_1", 6) == 5
    assert admitted(limiter, "tn_a", "tok_2", 6) == 5
    # then the third token is refused: the tenant's 10 are spent, and the refusal says so
    refused = refusal(limiter, "tn_a", "tok_3")
    assert "tenant's limit is 4 a second (bursts of 10)" in refused.details
    assert refused.retry_after_seconds == 1  # 1/4 s rounded up
    # and another tenant's token is untouched
    assert admitted(limiter, "tn_b", "tok_9", 5) == 5


def test_a_refused_request_takes_nothing_from_either_budget() -> None:
    # given a token whose own bucket is empty while its tenant's is not
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(LIMITS, clock=clock)
    assert admitted(limiter, "tn_a", "tok_1", 5) == 5
    # when it keeps asking (each refused)
    assert admitted(limiter, "tn_a", "tok_1", 100) == 0
    # then the tenant's bucket still holds the 5 it had: another token gets exactly those
    assert admitted(limiter, "tn_a", "tok_2", 10) == 5


def test_budgets_refill_with_the_clock_up_to_the_burst() -> None:
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(LIMITS, clock=clock)
    assert admitted(limiter, "tn_a", "tok_1", 5) == 5
    # when an hour passes, then the bucket holds its burst again, not an hour's refill
    clock.advance(3_600_000)
    assert admitted(limiter, "tn_a", "tok_1", 50) == 5
    # and steady requests at the token's rate (one every 500 ms) are all admitted
    for _ in range(100):
        clock.advance(500)
        limiter.admit("tn_a", "tok_1")


def test_the_retry_after_covers_the_wait_for_one_whole_request() -> None:
    # given a token allowed 1 a second with bursts of 1 (its tenant unlimited)
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(RateLimits(0, 0, 1, 1), clock=clock)
    limiter.admit("tn_a", "tok_1")
    # when asked again 1 ms later, then it is told to wait 1 s (999 ms rounded up)
    clock.advance(1)
    assert refusal(limiter, "tn_a", "tok_1").retry_after_seconds == 1
    # and after waiting that long it is admitted
    clock.advance(999)
    limiter.admit("tn_a", "tok_1")


def test_a_zero_rate_means_no_limit() -> None:
    limiter = RateLimiter(RateLimits(0, 0, 0, 0), clock=FakeClock(0))
    assert admitted(limiter, "tn_a", "tok_1", 10_000) == 10_000


def test_the_expected_containers_divide_every_budget() -> None:
    # given budgets split over 2 containers: the token's burst 5 -> 2.5, its rate 2 -> 1 a second
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(LIMITS, containers=2, clock=clock)
    assert admitted(limiter, "tn_a", "tok_1", 5) == 2
    # then the wait for the next whole request is at the halved rate: 0.5 of a request at 1/s
    clock.advance(499)
    assert admitted(limiter, "tn_a", "tok_1", 1) == 0
    clock.advance(1)
    assert admitted(limiter, "tn_a", "tok_1", 1) == 1


def test_a_tenants_own_limits_apply_once_the_cache_period_passes() -> None:
    # given a tenant on the stage's limits, its limits read through a 60 s cache
    clock = FakeClock(1_000_000)
    tenants = MemoryTenants()
    tenants.add(Tenant("tn_a", "alice", 1))
    limiter = RateLimiter(LIMITS, TenantRateLimits(tenants, cache_seconds=60, clock=clock), clock=clock)
    assert admitted(limiter, "tn_a", "tok_1", 6) == 5
    # when the operator raises the tenant's limits, then the old ones hold until the cache expires
    tenants.set_rate_limits("tn_a", RateLimits(100, 1000, 50, 200))
    clock.advance(59_999)
    assert limiter.limits_for("tn_a") == LIMITS
    # and after it the new limits apply from the next request: the bucket refills at the new rate up to the new burst
    clock.advance(1)
    assert limiter.limits_for("tn_a") == RateLimits(100, 1000, 50, 200)
    assert admitted(limiter, "tn_a", "tok_1", 1) == 1
    clock.advance(4_000)
    assert admitted(limiter, "tn_a", "tok_1", 300) == 200
    # and a tenant set back to the stage's limits gets them again
    tenants.set_rate_limits("tn_a", None)
    clock.advance(60_000)
    assert limiter.limits_for("tn_a") == LIMITS
    assert admitted(limiter, "tn_a", "tok_1", 300) == 5


def test_an_unknown_tenant_has_the_stage_limits() -> None:
    limits = TenantRateLimits(MemoryTenants(), cache_seconds=60, clock=FakeClock(0))
    assert limits("tn_missing") is None


@pytest.mark.parametrize(
    "values",
    [(-1, 10, 2, 5), (4, 0, 2, 5), (4, 10, 2, 0), (4, 10, -2, 5)],
    ids=["negative-rate", "rate-without-burst", "token-rate-without-burst", "negative-token-rate"],
)
def test_impossible_limits_are_refused(values: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError):
        RateLimits(*values)


def test_idle_buckets_are_dropped_to_bound_memory_without_losing_a_limit() -> None:
    # given a container keeping at most 10 buckets: 4 tokens (8 buckets) seen once, long ago,
    # and one token that spent its budget now
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(LIMITS, clock=clock, max_buckets=10)
    for index in range(4):
        limiter.admit(f"tn_{index}", f"tok_{index}")
    clock.advance(3_600_000)
    assert admitted(limiter, "tn_a", "tok_busy", 6) == 5
    # when new tokens arrive, more than the room left (the idle, refilled buckets are dropped)
    for index in range(3):
        limiter.admit("tn_new", f"tok_new_{index}")
    # then the busy token is still limited
    assert admitted(limiter, "tn_a", "tok_busy", 1) == 0


def test_a_rate_below_one_a_second_asks_for_a_longer_wait() -> None:
    # given a token's 1 a second split over 4 containers: a request every 4 s here
    clock = FakeClock(1_000_000)
    limiter = RateLimiter(RateLimits(0, 0, 1, 4), containers=4, clock=clock)
    limiter.admit("tn_a", "tok_1")
    # then the next one is told to wait the 4 s
    assert refusal(limiter, "tn_a", "tok_1").retry_after_seconds == 4
    clock.advance(3_999)
    assert refusal(limiter, "tn_a", "tok_1").retry_after_seconds == 1
    clock.advance(1)
    limiter.admit("tn_a", "tok_1")
