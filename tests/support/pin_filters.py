"""What the API's list filters mean, pin by pin: the reference that the API
tests' model and the in-memory pin repository both follow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from chalicelib.pins.model import PinQuery

NS_PER_MS = 1_000_000


class Listed(Protocol):
    """What the filters read of a pin (chalicelib's Pin, or a test's record of one)."""

    @property
    def created_ms(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def cid_key(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def meta(self) -> Mapping[str, str]: ...


def name_matches(name: str | None, wanted: str | None, match: str) -> bool:
    if wanted is None:
        return True
    if name is None:
        return False
    if match == "exact":
        return name == wanted
    if match == "iexact":
        return name.casefold() == wanted.casefold()
    if match == "partial":
        return wanted in name
    return wanted.casefold() in name.casefold()


def meta_matches(meta: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(meta.get(key) == value for key, value in wanted.items())


def within_time_bounds(created_ns: int, before_ns: int | None, after_ns: int | None) -> bool:
    """Strictly between `after` and `before`, where given."""
    return (before_ns is None or created_ns < before_ns) and (after_ns is None or created_ns > after_ns)


def in_range(query: PinQuery, pin: Listed) -> bool:
    """Of the query's statuses and inside its time bounds: what the pin counts answer."""
    return pin.status in query.statuses and within_time_bounds(
        pin.created_ms * NS_PER_MS, query.before_ns, query.after_ns
    )


def selects(query: PinQuery, pin: Listed) -> bool:
    """The query lists the pin."""
    return (
        in_range(query, pin)
        and (not query.cid_keys or pin.cid_key in query.cid_keys)
        and name_matches(pin.name, query.name, query.match)
        and meta_matches(pin.meta, query.meta)
    )
