"""API token secrets: long random strings shown once; only a hash is kept."""

from __future__ import annotations

import hashlib
import secrets

_PREFIX = "pst_"


def new_secret() -> str:
    # The prefix lets secret scanners recognise a leaked token.
    return _PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
