"""Who may make a request: the bearer token's tenant (401 otherwise), within
its rate limits (429) and with the scope the route needs (403).

Decided before a route reads anything about the request's ids, so a
refused request learns nothing about them and changes nothing."""

from __future__ import annotations

from chalicelib.api.errors import ApiError
from chalicelib.tenants.authenticator import Authenticator, Caller
from chalicelib.tenants.rate_limits import RateLimited, RateLimiter
from chalicelib.tenants.scopes import allows


def admit(authenticator: Authenticator, limiter: RateLimiter, authorization: str | None, needed: str) -> Caller:
    """The caller of a request needing the `needed` scope; Unauthenticated or ApiError otherwise."""
    caller = authenticator.caller_for(authorization)
    try:
        # Every authenticated request counts, a forbidden one too.
        limiter.admit(caller.tenant_id, caller.token_id)
    except RateLimited as limited:
        raise ApiError(
            429, "RATE_LIMITED", limited.details, {"Retry-After": str(limited.retry_after_seconds)}
        ) from None
    if not allows(caller.scope, needed):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"this token's scope is '{caller.scope}'; this request needs a token with the '{needed}' scope",
        )
    return caller
