"""How many shards a tenant's pins are spread over, from when.

A shard is one partition key; each takes at most 1,000 write units a second,
so a tenant that writes more needs more of them, and a small tenant is best
served by one (a list page merges one stream per shard). The plan is a list
of steps, `from_ms -> shards`, whose shard counts only grow: a pin created at
t lives in shard `t % shards_at(t)`, found again from its id alone.

Every container caches plans for CACHE_SECONDS. A new step takes effect
LEAD_MS after it is written, later than any container's cache can hold the
old plan, so no container ever writes a pin to a shard that another
container's lists do not read yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pynamodb.exceptions import PutError

from chalicelib.storage.busy import busy_as_storage_busy
from chalicelib.storage.cancellations import condition_failed
from chalicelib.storage.pin_item import PinItem
from chalicelib.storage.pin_keys import plan_key

CACHE_SECONDS = 60.0
# Two cache lifetimes, and a minute for clocks that disagree.
LEAD_MS = int(2 * CACHE_SECONDS * 1000) + 60_000
MAX_SHARDS = 1024
_PLAN_SORT_KEY = "plan"


class PlanChanged(Exception):
    """Another writer changed the plan since it was read."""


@dataclass(frozen=True)
class ShardPlan:
    steps: tuple[tuple[int, int], ...] = ()  # (from_ms, shards), both ascending

    def shards_at(self, created_ms: int) -> int:
        shards = 1
        for from_ms, count in self.steps:
            if from_ms > created_ms:
                break
            shards = count
        return shards

    def shard_of(self, created_ms: int) -> int:
        return created_ms % self.shards_at(created_ms)

    def shards_until(self, hi_ms: int) -> range:
        """Every shard a pin created at or before `hi_ms` may be in (counts only grow)."""
        return range(self.shards_at(hi_ms))

    def raised(self, shards: int, from_ms: int) -> ShardPlan:
        return ShardPlan((*self.steps, (from_ms, shards)))

    def encode(self) -> list[str]:
        return [f"{from_ms}:{shards}" for from_ms, shards in self.steps]

    @classmethod
    def decode(cls, steps: list[str] | None) -> ShardPlan:
        parsed = (step.split(":") for step in steps or ())
        return cls(tuple((int(from_ms), int(shards)) for from_ms, shards in parsed))


class ShardPlans:
    """Tenants' plans, read through a per-container cache, and raised."""

    def __init__(
        self,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._now_ms = now_ms
        self._cached: dict[str, tuple[float, ShardPlan]] = {}
        self._lock = threading.Lock()

    def of(self, tenant_id: str) -> ShardPlan:
        with self._lock:
            cached = self._cached.get(tenant_id)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        plan = self.read(tenant_id)
        with self._lock:
            self._cached[tenant_id] = (self._clock() + self._cache_seconds, plan)
        return plan

    def raise_to(self, tenant_id: str, shards: int) -> ShardPlan | None:
        """Spread the tenant's pins created from LEAD_MS from now over `shards`;
        returns the new plan, or None when it is at or above that already.
        Raises PlanChanged when another writer raised it meanwhile."""
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"shards must be 1 to {MAX_SHARDS}")
        current = self.read(tenant_id)
        from_ms = self._now_ms() + LEAD_MS
        if current.shards_at(from_ms) >= shards:
            return None
        raised = current.raised(shards, max(from_ms, *(step for step, _ in current.steps), 0))
        unchanged = PinItem.steps.does_not_exist() if not current.steps else PinItem.steps == current.encode()
        with busy_as_storage_busy():
            try:
                PinItem(plan_key(tenant_id), _PLAN_SORT_KEY, steps=raised.encode()).save(condition=unchanged)
            except PutError as error:
                if condition_failed(error):
                    raise PlanChanged(tenant_id) from error
                raise
        with self._lock:
            self._cached.pop(tenant_id, None)
        return raised

    @staticmethod
    def read(tenant_id: str) -> ShardPlan:
        """The plan as stored now, past the cache."""
        with busy_as_storage_busy():
            try:
                item = PinItem.get(plan_key(tenant_id), _PLAN_SORT_KEY, consistent_read=True)
            except PinItem.DoesNotExist:
                return ShardPlan()
        return ShardPlan.decode(item.steps)
