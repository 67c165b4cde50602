"""Operator actions on tenants and their tokens (the admin CLI's domain)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chalicelib.cold.tiers import checked_days, checked_tier
from chalicelib.pins.timestamps import now_ms
from chalicelib.tenants.rate_limits import RateLimits
from chalicelib.tenants.repository import ApiToken, Tenant, TenantRepository, TokenRepository
from chalicelib.tenants.scopes import DEFAULT_SCOPE, checked_scope
from chalicelib.tenants.tokens import hash_secret, new_secret


class UnknownTenant(LookupError):
    pass


class UnknownToken(LookupError):
    pass


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    tenant_id: str
    label: str
    secret: str  # shown once, never stored
    scope: str = DEFAULT_SCOPE


class TenantAdmin:
    def __init__(self, tenants: TenantRepository, tokens: TokenRepository, clock: Callable[[], int] = now_ms) -> None:
        self._tenants = tenants
        self._tokens = tokens
        self._clock = clock

    def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant("tn_" + secrets.token_hex(8), name=name, created_ms=self._clock())
        self._tenants.add(tenant)
        return tenant

    def tenants(self) -> Iterator[Tenant]:
        return self._tenants.all()

    def tenant(self, tenant_id: str) -> Tenant:
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise UnknownTenant(tenant_id)
        return tenant

    def set_tier(self, tenant_id: str, tier: str | None, cold_after_days: int | None = None) -> Tenant:
        """Set the tenant's storage tier (None: the stage's) and its cold-only
        days (None: the stage's); UnknownTier or ValueError for a bad one."""
        stored = self._tenants.set_tier(
            tenant_id,
            None if tier is None else checked_tier(tier),
            None if cold_after_days is None else checked_days(cold_after_days),
        )
        if stored is None:
            raise UnknownTenant(tenant_id)
        return stored

    def set_rate_limits(self, tenant_id: str, limits: RateLimits | None) -> Tenant:
        """Set the tenant's own request limits (None: the stage's); API
        containers apply them within their cache period."""
        stored = self._tenants.set_rate_limits(tenant_id, limits)
        if stored is None:
            raise UnknownTenant(tenant_id)
        return stored

    def issue_token(self, tenant_id: str, label: str, scope: str = DEFAULT_SCOPE) -> IssuedToken:
        """A new token of `scope` (UnknownScope for one not in chalicelib.tenants.scopes)."""
        checked_scope(scope)
        self.tenant(tenant_id)
        secret = new_secret()
        token = ApiToken(
            hash_secret(secret),
            token_id="tok_" + secrets.token_hex(6),
            tenant_id=tenant_id,
            label=label,
            created_ms=self._clock(),
            scope=scope,
        )
        self._tokens.add(token)
        return IssuedToken(token.token_id, tenant_id, label, secret, scope)

    def tokens(self, tenant_id: str) -> list[ApiToken]:
        return self._tokens.of_tenant(tenant_id)

    def revoke_token(self, tenant_id: str, token_id: str) -> ApiToken:
        token = next((token for token in self.tokens(tenant_id) if token.token_id == token_id), None)
        if token is None:
            raise UnknownToken(token_id)
        return token if token.revoked_ms is not None else self._tokens.revoke(token, self._clock())
