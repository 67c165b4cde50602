"""Plans: the quotas a tenant's plan gives it, defined per stage.

A stage's plans are a small JSON object in its settings (USAGE_PLANS), e.g.

    {"free": {"pins": 1000, "bytes": 5368709120, "in_flight": 100, "filecoin_copies": 0},
     "unlimited": {}}

A limit left out is no limit. `filecoin_copies` is the most Filecoin copies
one request may have (chalicelib.usage.quotas). A tenant has a plan (None: the stage's
DEFAULT_PLAN) and may have overrides of single limits on top of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Protocol

LIMITS = ("pins", "bytes", "in_flight", "filecoin_copies")
GIB = 1024**3


class InvalidPlans(ValueError):
    """Plans or a quota that cannot be used."""


@dataclass(frozen=True)
class Quotas:
    """Limits; None is no limit. `pins` counts queued, pinning and pinned
    requests (failed ones hold nothing); `in_flight` queued and pinning."""

    pins: int | None = None
    bytes: int | None = None
    in_flight: int | None = None
    filecoin_copies: int | None = None

    def overridden(self, overrides: Mapping[str, int]) -> Quotas:
        return replace(self, **checked_limits(overrides))

    def as_dict(self) -> dict[str, int | None]:
        return {limit.name: getattr(self, limit.name) for limit in fields(self)}


DEFAULT_PLANS: Mapping[str, Quotas] = {
    "free": Quotas(pins=1_000, bytes=5 * GIB, in_flight=100, filecoin_copies=0),
    "pro": Quotas(pins=1_000_000, bytes=1024 * GIB, in_flight=10_000, filecoin_copies=2),
    "unlimited": Quotas(),
    # The local stack's (its DEFAULT_PLAN): every limit set, so every check runs, above what
    # its tests and benches pin (`cli.admin tenants quota` lowers one to meet it by hand);
    # 3 Filecoin copies a request, one on each of its fake providers.
    "demo": Quotas(pins=10_000, bytes=10 * GIB, in_flight=2_000, filecoin_copies=3),
}


def checked_limits(limits: Mapping[str, object]) -> dict[str, int]:
    """Limits by name, each a whole number >= 0; InvalidPlans otherwise."""
    unknown = sorted(set(limits) - set(LIMITS))
    if unknown:
        raise InvalidPlans(f"unknown limits {unknown}; limits are {list(LIMITS)}")
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidPlans(f"{name} must be a whole number >= 0, not {value!r}")
    return {name: int(str(value)) for name, value in limits.items()}


def parse_plans(text: str) -> dict[str, Quotas]:
    """The plans of USAGE_PLANS; empty text gives DEFAULT_PLANS."""
    if not text.strip():
        return dict(DEFAULT_PLANS)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidPlans(f"plans are not JSON: {error}") from None
    if not isinstance(raw, dict) or not all(isinstance(limits, dict) for limits in raw.values()):
        raise InvalidPlans('plans must be a JSON object of plans, each an object of limits: {"free": {"pins": 10}}')
    return {name: Quotas(**checked_limits(limits)) for name, limits in raw.items()}


@dataclass(frozen=True)
class TenantPlan:
    """A tenant's plan (None: the stage's default) and its own limits on top of it."""

    plan: str | None = None
    overrides: Mapping[str, int] = field(default_factory=dict)


class PlanRepository(Protocol):
    def get(self, tenant_id: str) -> TenantPlan:
        """The tenant's plan as stored; TenantPlan() when none was set."""

    def put(self, tenant_id: str, plan: TenantPlan) -> None:
        """Store the tenant's plan (the last one stored wins)."""
