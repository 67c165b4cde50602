"""TenantRepository and TokenRepository in dicts, for domain tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from chalicelib.tenants.rate_limits import RateLimits
from chalicelib.tenants.repository import AlreadyExists, ApiToken, Tenant


class MemoryTenants:
    def __init__(self) -> None:
        self.stored: dict[str, Tenant] = {}

    def add(self, tenant: Tenant) -> None:
        if tenant.tenant_id in self.stored:
            raise AlreadyExists(tenant.tenant_id)
        self.stored[tenant.tenant_id] = tenant

    def get(self, tenant_id: str) -> Tenant | None:
        return self.stored.get(tenant_id)

    def all(self) -> Iterator[Tenant]:
        return iter(sorted(self.stored.values(), key=lambda tenant: tenant.created_ms))

    def set_tier(self, tenant_id: str, tier: str | None, cold_after_days: int | None) -> Tenant | None:
        stored = self.stored.get(tenant_id)
        if stored is None:
            return None
        stored = self.stored[tenant_id] = replace(stored, tier=tier, cold_after_days=cold_after_days)
        return stored

    def set_rate_limits(self, tenant_id: str, limits: RateLimits | None) -> Tenant | None:
        stored = self.stored.get(tenant_id)
        if stored is None:
            return None
        stored = self.stored[tenant_id] = replace(stored, rate_limits=limits)
        return stored


class MemoryTokens:
    def __init__(self) -> None:
        self.stored: dict[str, ApiToken] = {}

    def add(self, token: ApiToken) -> None:
        if token.token_hash in self.stored:
            raise AlreadyExists(token.token_id)
        self.stored[token.token_hash] = token

    def get(self, token_hash: str) -> ApiToken | None:
        return self.stored.get(token_hash)

    def of_tenant(self, tenant_id: str) -> list[ApiToken]:
        tokens = (token for token in self.stored.values() if token.tenant_id == tenant_id)
        return sorted(tokens, key=lambda token: token.token_id)

    def revoke(self, token: ApiToken, revoked_ms: int) -> ApiToken:
        stored = self.stored.get(token.token_hash)
        if stored is None:
            return token
        if stored.revoked_ms is None:
            stored = self.stored[token.token_hash] = replace(stored, revoked_ms=revoked_ms)
        return stored
