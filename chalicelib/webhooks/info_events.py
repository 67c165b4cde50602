"""The cold-tier and Filecoin events of a request, read from what a write
changes in its `info`.

The archiver, the cooling sweep, a restore and the Filecoin tracker (all
background work) write those keys through the pin store's `update`; the
store inserts each event this finds beside the pin, in the same transaction
(chalicelib.storage.pin_keys.event_sort_key), so an event is written if and
only if its change is, in the request's partition: the stream gives it
after the request's earlier events. A pin write that leaves these keys as
they were (every write of the pinning path) finds none and adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.cold.archive_repository import ARCHIVED, FAILED
from chalicelib.cold.tiers import COLD, TIER_KEY

PIN_ARCHIVED = "pin.archived"
PIN_ARCHIVE_FAILED = "pin.archive_failed"
PIN_COLD = "pin.cold"
PIN_RESTORED = "pin.restored"
PIN_FILECOIN = "pin.filecoin"
INFO_EVENTS = (PIN_ARCHIVED, PIN_ARCHIVE_FAILED, PIN_COLD, PIN_RESTORED, PIN_FILECOIN)

# The request's `info` keys each event's data is made of.
_ARCHIVED_DATA = ("piece_cid", "car_bytes")
_FILECOIN_DATA = ("filecoin", "filecoin_copies")
# How much of an archive's error an event carries (the request's `info` keeps it whole).
MAX_ERROR_CHARS = 500


def _entered(before: Mapping[str, str], after: Mapping[str, str], key: str, value: str) -> bool:
    return after.get(key) == value and before.get(key) != value


def _picked(info: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    return {key: info[key] for key in keys if key in info}


def info_events(before: Mapping[str, str], after: Mapping[str, str]) -> list[tuple[str, dict[str, str]]]:
    """The events a change of a request's `info` from `before` to `after`
    is, in this order, each with its data."""
    events: list[tuple[str, dict[str, str]]] = []
    if _entered(before, after, "cold", ARCHIVED):
        events.append((PIN_ARCHIVED, _picked(after, _ARCHIVED_DATA)))
    if _entered(before, after, "cold", FAILED):
        events.append((PIN_ARCHIVE_FAILED, {"error": after.get("cold_error", "")[:MAX_ERROR_CHARS]}))
    if _entered(before, after, TIER_KEY, COLD):
        events.append((PIN_COLD, {}))
    if before.get(TIER_KEY) == COLD and after.get(TIER_KEY) != COLD:
        events.append((PIN_RESTORED, {}))
    filecoin = _picked(after, _FILECOIN_DATA)
    if filecoin and filecoin != _picked(before, _FILECOIN_DATA):
        events.append((PIN_FILECOIN, filecoin))
    return events
