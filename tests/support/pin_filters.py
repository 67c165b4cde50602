"""What the API's list filters mean, pin by pin: the reference that the API
tests' model and the in-memory pin repository both follow."""

from __future__ import annotations

from collections.abc import Mapping


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
