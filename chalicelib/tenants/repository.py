"""Tenants and their API tokens as stored, and where they are kept.

Tenants and tokens are created if absent and a token's revocation is set if
absent: no record is read-modify-written, so none carries a version. A
tenant's storage tier is set in place (the last setting wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from chalicelib.tenants.rate_limits import RateLimits
from chalicelib.tenants.scopes import DEFAULT_SCOPE


class AlreadyExists(Exception):
    """A record with this key is stored already (a random id drawn twice)."""


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_ms: int
    # The tenant's storage tier and cold-after days (chalicelib.cold.tiers); None: the stage's.
    tier: str | None = None
    cold_after_days: int | None = None
    # The tenant's own request limits (chalicelib.tenants.rate_limits); None: the stage's.
    rate_limits: RateLimits | None = None


@dataclass(frozen=True)
class ApiToken:
    # SHA-256 of the secret: the secret itself is never stored.
    token_hash: str
    token_id: str
    tenant_id: str
    label: str
    created_ms: int
    revoked_ms: int | None = None
    # What the token may do (chalicelib.tenants.scopes).
    scope: str = DEFAULT_SCOPE


class TenantRepository(Protocol):
    def add(self, tenant: Tenant) -> None:
        """Store a new tenant; AlreadyExists when its id is taken."""

    def get(self, tenant_id: str) -> Tenant | None: ...

    def all(self) -> Iterator[Tenant]:
        """Every tenant, oldest first."""

    def set_tier(self, tenant_id: str, tier: str | None, cold_after_days: int | None) -> Tenant | None:
        """Store the tenant's tier and days (None: the stage's); the tenant
        as now stored, or None (nothing written) when there is no such tenant."""

    def set_rate_limits(self, tenant_id: str, limits: RateLimits | None) -> Tenant | None:
        """Store the tenant's own request limits (None: the stage's); the
        tenant as now stored, or None (nothing written) when there is no such tenant."""


class TokenRepository(Protocol):
    def add(self, token: ApiToken) -> None:
        """Store a new token; AlreadyExists when its hash is taken."""

    def get(self, token_hash: str) -> ApiToken | None: ...

    def of_tenant(self, tenant_id: str) -> list[ApiToken]:
        """The tenant's tokens, revoked ones included (eventually consistent)."""

    def revoke(self, token: ApiToken, revoked_ms: int) -> ApiToken:
        """Mark the token revoked at `revoked_ms` unless it is already, and
        return it as stored (a second revocation keeps the first time)."""
