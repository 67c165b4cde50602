"""Storage tiers: where a tenant's pinned content is kept.

- `hot+cold` (the default): on the fleet's nodes and archived in S3.
- `cold-only`: archived, and its hot copies released once it went
  `cold_after_days` without retrieval since it was archived (or last
  retrieved); retrieving or pinning it again makes it hot again
  (chalicelib.cold.tiering). The request stays `pinned`: the archive holds it.
- `hot-only`: on the nodes alone; no archive is made or held for it.

The stage sets the default (STORAGE_TIER, COLD_ONLY_AFTER_DAYS); a tenant
may override either (`python -m cli.admin tenants tier`). A tier applies to
what happens next: a request archived, retrieved or pinned again after a
change follows the new tier.

A request's `info` says where it lives: `tier` is `cold` while only the
archive holds it (`replicas` empty), `cooling` while its hot copies are being
released, absent while it is hot; a hot-only request's `cold` is `off`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chalicelib.pins.timestamps import now_ms
from chalicelib.tenants.expiring import ExpiringCache
from chalicelib.tenants.repository import Tenant, TenantRepository

HOT_COLD = "hot+cold"
COLD_ONLY = "cold-only"
HOT_ONLY = "hot-only"
TIERS = (HOT_COLD, COLD_ONLY, HOT_ONLY)

DAY_MS = 24 * 3600 * 1000

# The request's `info` keys and values this module owns.
TIER_KEY = "tier"
# Only the archive holds it; a restore (RestoreRequested) makes it hot again
# and writes its `info` without this key.
COLD = "cold"
# The cooling sweep is releasing its hot holds: a restore of the request
# must come back later (else it would take holds the sweep then lets go).
COOLING = "cooling"
# `info.cold` of a hot-only request: no archive is kept.
COLD_OFF = "off"
COLD_DETAILS = "held in the cold archive; restored to hot nodes when retrieved or re-pinned"


class UnknownTier(ValueError):
    def __init__(self, tier: str) -> None:
        super().__init__(f"unknown storage tier {tier!r} (one of {', '.join(TIERS)})")


def checked_tier(tier: str) -> str:
    """`tier` if it names one; UnknownTier otherwise."""
    if tier not in TIERS:
        raise UnknownTier(tier)
    return tier


def checked_days(days: int) -> int:
    if days < 1:
        raise ValueError(f"cold-after days must be at least 1, not {days}")
    return days


@dataclass(frozen=True)
class TierPolicy:
    tier: str
    cold_after_days: int

    @property
    def archives(self) -> bool:
        """Whether the tenant's pinned requests are archived."""
        return self.tier != HOT_ONLY

    @property
    def cools(self) -> bool:
        """Whether their hot copies are released after `cold_after_days` unretrieved."""
        return self.tier == COLD_ONLY

    @property
    def cold_after_ms(self) -> int:
        return self.cold_after_days * DAY_MS


def policy_of(tenant: Tenant | None, tier: str, cold_after_days: int) -> TierPolicy:
    """The tenant's own tier and days where it set them, else the stage's."""
    if tenant is None:
        return TierPolicy(tier, cold_after_days)
    return TierPolicy(tenant.tier or tier, tenant.cold_after_days or cold_after_days)


def tier_of_info(info: Mapping[str, str]) -> str | None:
    """COLD or COOLING for a request that is (being made) cold, else None."""
    return info.get(TIER_KEY)


class TierPolicies:
    """Each tenant's policy, read once per cache period per container: the
    worker asks for each pinned request, and a change reaches every
    container within `cache_seconds`."""

    def __init__(
        self,
        tenants: TenantRepository,
        tier: str,
        cold_after_days: int,
        cache_seconds: int = 60,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._tenants = tenants
        self._tier = checked_tier(tier)
        self._days = checked_days(cold_after_days)
        self._cache: ExpiringCache[str, TierPolicy] = ExpiringCache(cache_seconds, clock)

    def policy_for(self, tenant_id: str) -> TierPolicy:
        return self._cache.get(tenant_id, self._read)

    def _read(self, tenant_id: str) -> TierPolicy:
        return policy_of(self._tenants.get(tenant_id), self._tier, self._days)
