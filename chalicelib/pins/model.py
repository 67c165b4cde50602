"""What a client asks for: a pin request and a listing query, with the
service's limits. Parsing the wire format is the API layer's job; the rules
about what is acceptable live here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an annotation only: the vocabulary below loads without multiformats
    from chalicelib.pins.cids import ContentId

STATUSES: tuple[str, ...] = ("queued", "pinning", "pinned", "failed")
MATCHES: tuple[str, ...] = ("exact", "iexact", "partial", "ipartial")

MAX_NAME_CHARS = 255
MAX_ORIGINS = 20
MAX_META_KEYS = 1000
MAX_META_KEY_CHARS = 255
MAX_META_VALUE_CHARS = 4096
MAX_META_JSON_BYTES = 16 * 1024
MAX_QUERY_CIDS = 10
MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
# A documented meta key (the spec has no field for it): the Filecoin copies a
# request wants (chalicelib.filecoin.wanted), a whole number 0..FILECOIN_MAX_COPIES.
FILECOIN_COPIES_KEY = "filecoin.copies"
FILECOIN_MAX_COPIES = 10


class InvalidRequest(ValueError):
    """A client's request the service refuses; `reason` is machine-readable."""

    def __init__(self, reason: str, details: str) -> None:
        super().__init__(details)
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class PinRequest:
    cid: ContentId
    name: str | None = None
    origins: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PinQuery:
    statuses: frozenset[str] = frozenset({"pinned"})
    cid_keys: tuple[str, ...] = ()
    name: str | None = None
    match: str = "exact"
    meta: Mapping[str, str] = field(default_factory=dict)
    # Strict bounds in nanoseconds since the epoch.
    before_ns: int | None = None
    after_ns: int | None = None
    limit: int = DEFAULT_LIMIT


def check_text(text: str, reason: str, what: str) -> str:
    """Unicode text: JSON's \\ud800-style escapes give lone surrogates, which
    UTF-8 cannot encode, so no table, queue or response could carry them."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidRequest(reason, f"{what} holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape)") from None
    return text


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidRequest("INVALID_NAME", "name must be a string")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest("INVALID_NAME", f"name is longer than {MAX_NAME_CHARS} characters")
    return check_text(name, "INVALID_NAME", "name")


def check_meta(meta: object) -> dict[str, str]:
    if not isinstance(meta, dict):
        raise InvalidRequest("INVALID_META", "meta must be a JSON object of strings")
    if len(meta) > MAX_META_KEYS:
        raise InvalidRequest("INVALID_META", f"meta has more than {MAX_META_KEYS} keys")
    for key, value in meta.items():
        if not key or len(key) > MAX_META_KEY_CHARS:
            raise InvalidRequest("INVALID_META", f"meta keys must be 1 to {MAX_META_KEY_CHARS} characters")
        if not isinstance(value, str):
            raise InvalidRequest("INVALID_META", f"meta value of {key!r} is not a string")
        if len(value) > MAX_META_VALUE_CHARS:
            raise InvalidRequest(
                "INVALID_META", f"meta value of {key!r} is longer than {MAX_META_VALUE_CHARS} characters"
            )
    if FILECOIN_COPIES_KEY in meta and filecoin_copies_of(meta) is None:
        raise InvalidRequest(
            "INVALID_META",
            f"meta value of {FILECOIN_COPIES_KEY!r} must be a whole number from 0 to {FILECOIN_MAX_COPIES}",
        )
    serialised = check_text(json.dumps(meta, ensure_ascii=False, separators=(",", ":")), "INVALID_META", "meta")
    if len(serialised.encode()) > MAX_META_JSON_BYTES:
        raise InvalidRequest("INVALID_META", f"meta is larger than {MAX_META_JSON_BYTES} bytes as JSON")
    return dict(meta)


def filecoin_copies_of(meta: Mapping[str, str]) -> int | None:
    """The copies `meta` asks for under FILECOIN_COPIES_KEY; None when it
    asks for none or says something else."""
    value = meta.get(FILECOIN_COPIES_KEY)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return None
    copies = int(value)
    return copies if copies <= FILECOIN_MAX_COPIES else None
