"""Requests a tenant and each of its tokens may make: token buckets kept in
each warm container's memory, so limiting costs no DynamoDB request.

A request takes one token from its API token's bucket and one from its
tenant's; with either empty it is refused (taking from neither) and told
when the emptier one holds a token again. A bucket holds at most `burst`
and refills at `per_second`.

Each container limits what it serves: a client whose requests spread over
C containers gets up to C times the limit (docs/architecture.md, "Rate
limits", says why no shared counter and what bounds the whole service).
`containers` divides every budget, for an operator who expects a tenant's
requests to spread over that many containers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.pins.timestamps import now_ms
from chalicelib.tenants.expiring import ExpiringCache

if TYPE_CHECKING:
    from chalicelib.tenants.repository import TenantRepository

_MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class RateLimits:
    """Requests a second and burst of a tenant (all its tokens together) and
    of each of its tokens; 0 per second: no such limit."""

    per_second: int
    burst: int
    token_per_second: int
    token_burst: int

    def __post_init__(self) -> None:
        for name in ("per_second", "burst", "token_per_second", "token_burst"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")
        if (self.per_second and not self.burst) or (self.token_per_second and not self.token_burst):
            raise ValueError("a limited rate needs a burst of at least 1")


class RateLimited(Exception):
    def __init__(self, retry_after_seconds: int, details: str) -> None:
        super().__init__(details)
        self.retry_after_seconds = retry_after_seconds
        self.details = details


class _Bucket:
    __slots__ = ("level", "updated_ms", "per_ms", "burst")

    def __init__(self, per_second: float, burst: float, now: int) -> None:
        self.per_ms = per_second / 1000
        self.burst = burst
        self.level = burst
        self.updated_ms = now

    def refill(self, now: int, per_second: float, burst: float) -> None:
        # A changed limit applies from now; the level never exceeds the new burst.
        self.level = min(self.burst, self.level + max(0, now - self.updated_ms) * self.per_ms)
        self.per_ms, self.burst, self.updated_ms = per_second / 1000, burst, now
        self.level = min(self.level, burst)

    def wait_ms(self) -> float:
        return 0.0 if self.level >= 1 else (1 - self.level) / self.per_ms

    def full_at(self, now: int) -> bool:
        return self.level + max(0, now - self.updated_ms) * self.per_ms >= self.burst


class RateLimiter:
    def __init__(
        self,
        stage: RateLimits,
        overrides: Callable[[str], RateLimits | None] = lambda tenant_id: None,
        containers: int = 1,
        clock: Callable[[], int] = now_ms,
        max_buckets: int = _MAX_BUCKETS,
    ) -> None:
        if containers < 1:
            raise ValueError(f"containers must be at least 1, not {containers}")
        self._stage = stage
        self._overrides = overrides
        self._containers = containers
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def limits_for(self, tenant_id: str) -> RateLimits:
        return self._overrides(tenant_id) or self._stage

    def admit(self, tenant_id: str, token_id: str) -> None:
        """Takes one request from the token's and the tenant's budgets, or
        raises RateLimited (taking from neither)."""
        limits = self.limits_for(tenant_id)
        share = self._containers
        wanted = [
            ("token", ("token", token_id), limits.token_per_second / share, max(1.0, limits.token_burst / share)),
            ("tenant", ("tenant", tenant_id), limits.per_second / share, max(1.0, limits.burst / share)),
        ]
        now = self._clock()
        with self._lock:
            buckets = [(kind, self._bucket(key, rate, burst, now)) for kind, key, rate, burst in wanted if rate > 0]
            refused = [(bucket.wait_ms(), kind) for kind, bucket in buckets if bucket.level < 1]
            if not refused:
                for _, bucket in buckets:
                    bucket.level -= 1
                return
        wait_ms, kind = max(refused)
        seconds = max(1, math.ceil(wait_ms / 1000))
        raise RateLimited(seconds, _details(kind, limits, seconds))

    def _bucket(self, key: tuple[str, str], per_second: float, burst: float, now: int) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.refill(now, per_second, burst)
            return bucket
        if len(self._buckets) >= self._max_buckets:
            # A full bucket is the same as none: dropping those loses no limit.
            self._buckets = {k: b for k, b in self._buckets.items() if not b.full_at(now)}
            if len(self._buckets) >= self._max_buckets:
                self._buckets.clear()
        bucket = self._buckets[key] = _Bucket(per_second, burst, now)
        return bucket


def _details(kind: str, limits: RateLimits, seconds: int) -> str:
    if kind == "token":
        rate, burst = limits.token_per_second, limits.token_burst
    else:
        rate, burst = limits.per_second, limits.burst
    return f"too many requests: this {kind}'s limit is {rate} a second (bursts of {burst}); retry after {seconds} s"


class TenantRateLimits:
    """A tenant's own limits (set with `cli.admin tenants rate-limit`), read
    once per cache period per container; None: the stage's."""

    def __init__(self, tenants: TenantRepository, cache_seconds: int = 60, clock: Callable[[], int] = now_ms) -> None:
        self._tenants = tenants
        self._cache: ExpiringCache[str, RateLimits | None] = ExpiringCache(cache_seconds, clock)

    def __call__(self, tenant_id: str) -> RateLimits | None:
        return self._cache.get(tenant_id, self._read)

    def _read(self, tenant_id: str) -> RateLimits | None:
        tenant = self._tenants.get(tenant_id)
        return None if tenant is None else tenant.rate_limits
