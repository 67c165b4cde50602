"""What a token may do: its scope, stored on the token (absent: `write`).

- `read`: list and get pins (GET /pins, GET /pins/{requestid}).
- `write`: the whole Pinning Service API (read, create, replace, delete) and
  retrieval; every token issued before scopes existed has it.
- `retrieve`: GET/HEAD /ipfs/{cid} only, e.g. for an app that serves content.
"""

from __future__ import annotations

READ = "read"
WRITE = "write"
RETRIEVE = "retrieve"
SCOPES = (READ, WRITE, RETRIEVE)
DEFAULT_SCOPE = WRITE

# What each scope grants: `write` includes the other two.
_GRANTS: dict[str, frozenset[str]] = {
    READ: frozenset({READ}),
    WRITE: frozenset({READ, WRITE, RETRIEVE}),
    RETRIEVE: frozenset({RETRIEVE}),
}


class UnknownScope(ValueError):
    def __init__(self, scope: str) -> None:
        super().__init__(f"unknown scope {scope!r}; use one of: {', '.join(SCOPES)}")


def checked_scope(scope: str) -> str:
    if scope not in _GRANTS:
        raise UnknownScope(scope)
    return scope


def allows(scope: str, needed: str) -> bool:
    """Whether a token of `scope` may make a request that needs `needed`."""
    return needed in _GRANTS.get(scope, frozenset())
