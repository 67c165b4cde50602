"""Bearer token -> tenant and scope, with a short per-container cache.

Each token costs at most one DynamoDB read per cache period in a warm
container, and a revoked token stops working within that period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.pins.timestamps import now_ms
from chalicelib.tenants.expiring import ExpiringCache
from chalicelib.tenants.repository import TokenRepository
from chalicelib.tenants.tokens import hash_secret

# Secrets are ~47 characters; anything far longer is not one of ours.
_MAX_SECRET_CHARS = 256


class Unauthenticated(Exception):
    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the tenant, the token and what it may do."""

    tenant_id: str
    token_id: str
    scope: str


class Authenticator:
    def __init__(self, tokens: TokenRepository, cache_seconds: int = 60, clock: Callable[[], int] = now_ms) -> None:
        self._tokens = tokens
        self._cache: ExpiringCache[str, Caller | None] = ExpiringCache(cache_seconds, clock)

    def tenant_for(self, authorization: str | None) -> str:
        """The tenant a request's `Authorization` header belongs to."""
        return self.caller_for(authorization).tenant_id

    def caller_for(self, authorization: str | None) -> Caller:
        """The tenant, token and scope of a request's `Authorization` header."""
        if not authorization:
            raise Unauthenticated("missing Authorization header (expected 'Bearer <token>')")
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        # Secrets are ASCII: anything else (a lone surrogate could not even be hashed) is no token of ours.
        if len(secret) > _MAX_SECRET_CHARS or not secret.isascii():
            raise Unauthenticated("access token is invalid or revoked")
        caller = self._cache.get(hash_secret(secret), self._read)
        if caller is None:
            raise Unauthenticated("access token is invalid or revoked")
        return caller

    def _read(self, token_hash: str) -> Caller | None:
        token = self._tokens.get(token_hash)
        if token is None or token.revoked_ms is not None:
            return None
        return Caller(token.tenant_id, token.token_id, token.scope)
