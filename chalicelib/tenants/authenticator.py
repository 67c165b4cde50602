"""Bearer token -> tenant, with a short per-container cache.

Each token costs at most one DynamoDB read per cache period in a warm
container, and a revoked token stops working within that period.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from chalicelib.pins.timestamps import now_ms
from chalicelib.tenants.repository import TokenRepository
from chalicelib.tenants.tokens import hash_secret

# Secrets are ~47 characters; anything far longer is not one of ours.
_MAX_SECRET_CHARS = 256
_MAX_CACHED = 10_000


class Unauthenticated(Exception):
    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class Authenticator:
    def __init__(self, tokens: TokenRepository, cache_seconds: int = 60, clock: Callable[[], int] = now_ms) -> None:
        self._tokens = tokens
        self._ttl_ms = cache_seconds * 1000
        self._clock = clock
        self._cache: dict[str, tuple[int, str | None]] = {}
        self._lock = threading.Lock()

    def tenant_for(self, authorization: str | None) -> str:
        """The tenant a request's `Authorization` header belongs to."""
        if not authorization:
            raise Unauthenticated("missing Authorization header (expected 'Bearer <token>')")
        scheme, _, secret = authorization.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        # Secrets are ASCII: anything else (a lone surrogate could not even be hashed) is no token of ours.
        if len(secret) > _MAX_SECRET_CHARS or not secret.isascii():
            raise Unauthenticated("access token is invalid or revoked")
        tenant_id = self._lookup(hash_secret(secret))
        if tenant_id is None:
            raise Unauthenticated("access token is invalid or revoked")
        return tenant_id

    def _lookup(self, token_hash: str) -> str | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(token_hash)
        if cached is not None and now - cached[0] < self._ttl_ms:
            return cached[1]
        tenant_id = self._read(token_hash)
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[token_hash] = (now, tenant_id)
        return tenant_id

    def _read(self, token_hash: str) -> str | None:
        token = self._tokens.get(token_hash)
        return None if token is None or token.revoked_ms is not None else token.tenant_id
