"""What rate limiting and scope checks cost per request (issue 14).

DynamoDB: the requests 100 GET /pins/{requestid} make through the API with
the stage's limits and without any, counted on the service's client, at 0.5 s
and 1.2 s apart on the limiter's clock (a tenant's own limits are read once
per tenant, container and TOKEN_CACHE_SECONDS). CPU: process time of the
limiter's admit() alone (one token; 10,000 tokens of 1,000 tenants), of the
whole access check (token from the authenticator's cache, limits, scope),
and of a whole GET through Chalice's test client with and without limits
(medians of rounds).

    .venv/bin/python -m bench.rate_limit_cost [--quick]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from bench.support import (
    DynamoMeter,
    api_client,
    build_stack,
    cheap_moto_transactions,
    cid_for,
    fake_credentials,
    median,
    print_table,
    quick_flag,
    verdict,
)

NO_LIMITS = (0, 0, 0, 0)


class CpuSizes(NamedTuple):
    """Calls and rounds of the CPU rows: the access check's and limiter's, the whole GET's."""

    calls: int
    rounds: int
    http_calls: int
    http_rounds: int


FULL = CpuSizes(200_000, 5, 300, 7)
QUICK = CpuSizes(20_000, 3, 100, 3)


class FakeClock:
    def __init__(self, start_ms: int = 1_748_736_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms


def cpu_us(call: Callable[[int], Any], calls: int, rounds: int) -> float:
    """Median over `rounds` of the process time of one call, in microseconds."""
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for index in range(calls):
            call(index)
        samples.append((time.process_time() - started) / calls * 1e6)
    return median(samples)


def dynamo_rows(services: Any, api: Any, request_id: str, meter: DynamoMeter) -> list[list[Any]]:
    """DynamoDB requests of 100 GETs, limits off and on, at two spacings."""
    from chalicelib.tenants.rate_limits import RateLimiter, RateLimits, TenantRateLimits

    settings = services.settings
    stage = RateLimits(
        settings.rate_limit_per_second,
        settings.rate_limit_burst,
        settings.rate_limit_token_per_second,
        settings.rate_limit_token_burst,
    )
    rows = []
    for label, limits, step_ms in [
        ("no limits, 0.5 s apart", RateLimits(*NO_LIMITS), 500),
        ("stage limits, 0.5 s apart (50 s)", stage, 500),
        ("stage limits, 1.2 s apart (120 s)", stage, 1_200),
    ]:
        # A fresh container's limiter: nothing cached.
        clock = FakeClock()
        overrides = TenantRateLimits(services.tenants, settings.token_cache_seconds, clock)
        limited = limits != RateLimits(*NO_LIMITS)
        services.rate_limiter = RateLimiter(limits, overrides if limited else lambda tenant_id: None, clock=clock)
        mark = meter.mark()
        for _ in range(100):
            api.ok("GET", f"/pins/{request_id}", 200)
            clock.ms += step_ms
        tally = meter.since(mark).without("-api-tokens")
        rows.append([label, 100, tally.requests, tally.only("-tenants").reads, tally.writes])
    return rows


def cpu_rows(services: Any, api: Any, request_id: str, sizes: CpuSizes) -> list[list[Any]]:
    from chalicelib.api.access import admit
    from chalicelib.tenants.rate_limits import RateLimiter, RateLimits
    from chalicelib.tenants.scopes import READ

    calls, rounds, http_calls, http_rounds = sizes
    big = RateLimits(10**6, 10**6, 10**6, 10**6)  # never refuses: every call takes the admitting path
    one = RateLimiter(big)
    many = RateLimiter(big)
    authorization = f"Bearer {api.token}"
    authenticator = services.authenticator
    authenticator.caller_for(authorization)  # cached, as in a warm container
    rows = [
        ["limiter admit(), one token", cpu_us(lambda i: one.admit("tn_1", "tok_1"), calls, rounds)],
        [
            "limiter admit(), 10,000 tokens of 1,000 tenants",
            cpu_us(lambda i: many.admit(f"tn_{i % 1000}", f"tok_{i % 10_000}"), calls, rounds),
        ],
        [
            "access check: cached token, limits, scope",
            cpu_us(lambda i: admit(authenticator, one, authorization, READ), calls, rounds),
        ],
    ]
    for label, limits in [
        ("GET /pins/{requestid}, no limits", RateLimits(*NO_LIMITS)),
        ("GET /pins/{requestid}, limited", big),
    ]:
        services.rate_limiter = RateLimiter(limits)
        rows.append([label, cpu_us(lambda i: api.ok("GET", f"/pins/{request_id}", 200), http_calls, http_rounds)])
    return rows


def run(quick: bool, cpu_sizes: CpuSizes | None = None) -> dict[str, Any]:
    """Both tables; the CPU rows at `cpu_sizes` if given (a test's), else QUICK or FULL."""
    fake_credentials()
    cheap_moto_transactions()
    from moto import mock_aws

    with mock_aws():
        stack = build_stack("ratecost")
        meter = DynamoMeter()
        with api_client(stack.services, stack.token) as api:
            request_id = api.ok("POST", "/pins", 202, body={"cid": cid_for("rate-limit-cost")})["requestid"]
            api.ok("GET", f"/pins/{request_id}", 200)  # token and CID library warm
            meter.attach()
            dynamo = dynamo_rows(stack.services, api, request_id, meter)
            cpu = cpu_rows(stack.services, api, request_id, cpu_sizes or (QUICK if quick else FULL))

    off, on_50, on_120 = dynamo
    extra_writes = max(row[4] for row in dynamo) - off[4]
    met = extra_writes == 0 and on_50[3] == 1 and on_120[3] == 2 and on_50[2] - off[2] == 1
    print("\nrate_limit_cost: 100 GET /pins/{requestid} per row, warm container (token cached), moto in-process")
    print_table(
        "DynamoDB requests beyond the token's (its reads are bench.request_cost's)",
        ["scenario", "GETs", "DynamoDB requests", "tenant reads", "writes"],
        dynamo,
        note="tenant reads: the tenant's own limits (tenants GetItem), once per tenant, container and 60 s",
    )
    http_off, http_on = cpu[3][1], cpu[4][1]
    print_table(
        "CPU per call (process time, median of rounds)",
        ["what", "us per call"],
        [[label, f"{value:.1f}"] for label, value in cpu],
        note=f"a whole GET through Chalice's test client: {http_on - http_off:+.1f} us with limits "
        "(the rounds' noise is of the same order)",
    )
    print(
        "verdict: "
        + verdict(met, f"no DynamoDB write added; {on_50[2] - off[2]} read per tenant per 60 s")
        + f"; access check {cpu[2][1]:.1f} us, limiter {cpu[0][1]:.1f} us per request"
    )
    return {"dynamo": dynamo, "cpu": cpu, "met": met}


def main(argv: Sequence[str] | None = None) -> None:
    run(quick_flag(argv))


if __name__ == "__main__":
    main()
