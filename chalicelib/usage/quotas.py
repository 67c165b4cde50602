"""Quotas at work: a create or replace beyond one is refused, a pin that
would take its tenant past its bytes fails, Filecoin copies are counted.

Accuracy (docs/architecture.md, "Usage and quotas"): the pins and in-flight
quotas compare the exact counts (the counter trees plus the changes not
folded yet) read before the write. No item is shared by a tenant's creates
(one would serialise them all), so creates racing for the last places may
each see the count before the others commit: a quota can be passed by at
most the tenant's creates in flight at that moment, never by more, and the
next create sees all of them. Bytes are known only once a pin's DAG is
fetched: a create is refused while the tenant is at its bytes quota, and a
pin that would take it past the quota fails (its content released) with
the reason in `info.status_details`; pins finishing at the same moment may
pass it together, as above.

The filecoin_copies quota is the most copies one request may have: a
create or replace whose meta asks for more is refused; the copies a request
wants otherwise (its tenant's or the stage's setting) and those of requests
made before the plan was lowered are capped by the Filecoin tracker at the
CID's next visit (chalicelib.filecoin.tracker), which says so in `info`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chalicelib.pins.model import filecoin_copies_of
from chalicelib.pins.pin import Pin
from chalicelib.pins.sizes import format_bytes
from chalicelib.pins.timestamps import now_ms
from chalicelib.tenants.expiring import ExpiringCache
from chalicelib.usage.meter import UsageMeter
from chalicelib.usage.pin_bytes import pinned_bytes
from chalicelib.usage.plans import InvalidPlans, PlanRepository, Quotas, TenantPlan

COUNTED = frozenset({"queued", "pinning", "pinned"})
IN_FLIGHT = frozenset({"queued", "pinning"})


class QuotaExceeded(Exception):
    """A request beyond a quota: 409 with the spec's own reason."""

    reason = "INSUFFICIENT_FUNDS"

    def __init__(self, limit: str, quota: int, usage: int, details: str | None = None) -> None:
        self.limit = limit
        self.quota = quota
        self.usage = usage
        self.details = details or f"the {limit} quota is {quota} and {usage} are in use"
        super().__init__(self.details)


class TenantQuotas:
    """Each tenant's quotas (its plan's, with its overrides), read once per
    cache period per container: a change reaches every container within
    `cache_seconds`."""

    def __init__(
        self,
        stored: PlanRepository,
        plans: Mapping[str, Quotas],
        default_plan: str,
        cache_seconds: int = 60,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if default_plan not in plans:
            raise InvalidPlans(f"the default plan {default_plan!r} is not one of {sorted(plans)}")
        self.plans = plans
        self.default_plan = default_plan
        self.stored = stored
        self._cache: ExpiringCache[str, Quotas] = ExpiringCache(cache_seconds, clock)

    def plan_of(self, stored: TenantPlan) -> str:
        return stored.plan or self.default_plan

    def quotas_of(self, stored: TenantPlan) -> Quotas:
        # A plan since removed from the stage's settings limits nothing rather than failing every request.
        return self.plans.get(self.plan_of(stored), Quotas()).overridden(stored.overrides)

    def of(self, tenant_id: str) -> Quotas:
        return self._cache.get(tenant_id, lambda tenant: self.quotas_of(self.stored.get(tenant)))


class QuotaCheck:
    def __init__(self, quotas: TenantQuotas, meter: UsageMeter) -> None:
        self._quotas = quotas
        self._meter = meter

    def check_create(self, tenant_id: str, replacing: Pin | None = None, meta: Mapping[str, str] | None = None) -> None:
        """Raises QuotaExceeded when the new request (replacing `replacing`,
        as read; its `meta`) would pass a quota. Reads only for the limits the tenant has."""
        asked = None if meta is None else filecoin_copies_of(meta)
        if asked is not None:
            self.check_filecoin_copies(tenant_id, asked)
        quotas = self._quotas.of(tenant_id)
        # A replace takes the place of the old request: it adds one only where the old one did not count.
        adds_pin = replacing is None or replacing.status not in COUNTED
        adds_in_flight = replacing is None or replacing.status not in IN_FLIGHT
        if quotas.pins is not None and adds_pin:
            self._check_count(tenant_id, "pins", quotas.pins, COUNTED)
        if quotas.in_flight is not None and adds_in_flight:
            self._check_count(tenant_id, "in_flight", quotas.in_flight, IN_FLIGHT)
        if quotas.bytes is not None:
            freed = 0 if replacing is None else pinned_bytes(replacing.status, replacing.info)
            used = self._meter.bytes_pinned(tenant_id) - freed
            if used >= quotas.bytes:
                raise QuotaExceeded("bytes", quotas.bytes, used, _bytes_details(quotas.bytes, used))

    def _check_count(self, tenant_id: str, limit: str, quota: int, statuses: frozenset[str]) -> None:
        used = self._meter.pins(tenant_id, statuses)
        if used >= quota:
            raise QuotaExceeded(limit, quota, used)

    def over_bytes(self, tenant_id: str, adding: int) -> str | None:
        """Why a pin of `adding` bytes may not become pinned (None: it may)."""
        quota = self._quotas.of(tenant_id).bytes
        if quota is None:
            return None
        used = self._meter.bytes_pinned(tenant_id)
        if used + adding <= quota:
            return None
        return (
            f"over the bytes quota: {format_bytes(used)} pinned + {format_bytes(adding)} "
            f"> {format_bytes(quota)} ({quota} bytes)"
        )

    def filecoin_copies_quota(self, tenant_id: str) -> int | None:
        """The most Filecoin copies a request of the tenant may have (None: no limit)."""
        return self._quotas.of(tenant_id).filecoin_copies

    def check_filecoin_copies(self, tenant_id: str, copies: int) -> None:
        """Raises QuotaExceeded when a request of the tenant asks for more
        Filecoin copies than its filecoin_copies quota allows."""
        quota = self.filecoin_copies_quota(tenant_id)
        if quota is not None and copies > quota:
            details = f"the filecoin_copies quota is {quota} per request and {copies} were asked"
            raise QuotaExceeded("filecoin_copies", quota, copies, details)


def _bytes_details(quota: int, used: int) -> str:
    return f"the bytes quota is {format_bytes(quota)} ({quota} bytes) and {used} bytes are pinned"
