"""Spreads a busy tenant's new pins over more shards, with no operator.

Run for the tenants whose pins were just written, as the pins table's
stream reports them to the count folder (chalicelib.storage.change_stream),
at most once a tenant per EVERY_MS in a container: the pins a tenant created
in the last WINDOW_MS (from its counts, a few reads) give its creation rate,
and its plan is raised to the shards that rate needs. A quiet tenant costs
nothing. A raise takes effect LEAD_MS later (chalicelib.storage.shard_plan),
so the rate is planned with room to grow meanwhile. Plans never shrink: a
list reads every shard a range may use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chalicelib.busy import StorageBusy
from chalicelib.pins.model import STATUSES
from chalicelib.pins.timestamps import now_ms
from chalicelib.storage.pin_store import PinStore
from chalicelib.storage.shard_plan import MAX_SHARDS, PlanChanged

log = logging.getLogger("pinning.storage")

WINDOW_MS = 5 * 60_000
# A tenant writing all the time is planned this often (per container).
EVERY_MS = 60_000
# New pins a second one shard takes (Settings.shard_pins_per_second): half
# of what bench.capacity finds its busiest sort-key range holds at 1,000 write
# units a second, for the rate to double before the raise takes effect.
PINS_PER_SHARD_PER_S = 25.0


def shards_needed(pins_per_second: float, pins_per_shard_per_s: float = PINS_PER_SHARD_PER_S) -> int:
    return min(MAX_SHARDS, max(1, math.ceil(pins_per_second / pins_per_shard_per_s)))


@dataclass(frozen=True)
class Raised:
    tenant_id: str
    pins_per_second: float
    shards: int


class ShardPlanner:
    def __init__(
        self,
        store: PinStore,
        clock: Callable[[], int] = now_ms,
        window_ms: int = WINDOW_MS,
        pins_per_shard_per_s: float = PINS_PER_SHARD_PER_S,
        every_ms: int = EVERY_MS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._window_ms = window_ms
        self._pins_per_shard_per_s = pins_per_shard_per_s
        self._every_ms = every_ms
        self._planned_at: dict[str, int] = {}

    def plan(self, tenant_ids: Iterable[str]) -> list[Raised]:
        """Raises the plans of the tenants that need more shards, skipping
        those planned here less than EVERY_MS ago; one tenant's busy tables
        or concurrent raise never stops the others."""
        raised = []
        for tenant_id in tenant_ids:
            now = self._clock()
            if now - self._planned_at.get(tenant_id, now - self._every_ms) < self._every_ms:
                continue
            self._planned_at[tenant_id] = now
            try:
                change = self._plan(tenant_id)
            except (StorageBusy, PlanChanged) as error:
                log.warning("shard plan of %s left for the next run: %s", tenant_id, error)
                continue
            if change is not None:
                raised.append(change)
        return raised

    def _plan(self, tenant_id: str) -> Raised | None:
        now = self._clock()
        created = self._store.count(tenant_id, frozenset(STATUSES), now - self._window_ms, now)
        rate = created * 1000 / self._window_ms
        wanted = shards_needed(rate, self._pins_per_shard_per_s)
        if self._store.plans.raise_to(tenant_id, wanted) is None:
            return None
        log.info("tenant %s creates %.1f pins/s: its new pins go to %d shards", tenant_id, rate, wanted)
        return Raised(tenant_id, rate, wanted)
