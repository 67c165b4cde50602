"""Unique bytes stored, for the operator: each CID's bytes counted once,
however many requests of however many tenants hold it.

A request holds its CID's bytes while it is pinned with its DAG's size
known (pin_bytes.holds). Every write that starts or ends a hold already
records a bytes change (chalicelib.storage.usage_changes); it also names
the CID and the hold's +1/-1. The usage folder applies a shard's changes to
each CID's hold (its refcount, the bytes it was first held with, when its
current or last period of being held began and ended), in the fold's own
transaction, conditioned on the hold's version. Only a period's beginning
and end move the operator's bytes: they are booked as bytes changes of the
operator's month items, so a month of them has the tenants' arithmetic
(opening, ending, byte-hours: chalicelib.usage.ledger).

Folds of different shards may apply a CID's changes out of time order.
Refcounts and unique bytes are exact whatever the order. The periods too
when holds overlap: a hold older than the period's beginning moves the
beginning back, one folded after the period ended, from within it, reopens
it (booked from the end on), and a period ends no earlier than the latest
end folded in it. Only a gap between two periods shorter than the folds'
lag, the later period's start folded before the earlier's end, is counted
as held.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from chalicelib.pins.timestamps import now_ms
from chalicelib.usage.ledger import BytesChange, BytesLedger, MonthBytes, month_bytes, month_dict
from chalicelib.usage.months import Month

# Operator month items per month: the folds of all tenants ADD to them, so
# they are spread by CID to keep any one from being a hot key.
OPERATOR_SHARDS = 8


@dataclass(frozen=True)
class HoldChange:
    """A request began (+1) or stopped (-1) holding the CID, of `size` bytes, at `at_ms`."""

    cid: str
    at_ms: int
    refs: int
    size: int


@dataclass(frozen=True)
class CidHold:
    """A CID's holds: how many requests hold it, its bytes, its period of
    being held (`until`: the end of the last period, or while held the
    latest end folded in this one, which the period ends no earlier than),
    and the version its writes are conditioned on (0: never written)."""

    refs: int = 0
    size: int = 0
    since: int | None = None
    until: int | None = None
    version: int = 0


def operator_shard(cid: str) -> int:
    return zlib.crc32(cid.encode()) % OPERATOR_SHARDS


def held_after(hold: CidHold, changes: Iterable[HoldChange]) -> tuple[CidHold, list[BytesChange]]:
    """The CID's hold after `changes` (applied oldest first, a start before
    an end at the same moment), one version on, and the operator's bytes
    changes they book."""
    booked: list[BytesChange] = []
    for change in sorted(changes, key=lambda one: (one.at_ms, -one.refs)):
        hold = _step(hold, change, booked)
    return replace(hold, version=hold.version + 1), booked


def _step(hold: CidHold, change: HoldChange, booked: list[BytesChange]) -> CidHold:
    refs, at = hold.refs + change.refs, change.at_ms
    was, now = hold.refs > 0, refs > 0
    if not was and now:
        if hold.since is not None and hold.until is not None and at < hold.until:
            # A holder from within the last period, folded after its end: the period goes on.
            booked.append(BytesChange(hold.until, hold.size))
            return _moved_back(replace(hold, refs=refs), at, booked)
        booked.append(BytesChange(at, change.size))
        return CidHold(refs, change.size, at, None, hold.version)
    if was and not now:
        end = max(at, hold.until or at)
        booked.append(BytesChange(end, -hold.size))
        return replace(hold, refs=refs, until=end)
    if now and change.refs > 0:
        return _moved_back(replace(hold, refs=refs), at, booked)
    if now:
        # An end folded while others hold the CID: the period ends no earlier.
        return replace(hold, refs=refs, until=max(at, hold.until or at))
    return replace(hold, refs=refs)


def _moved_back(hold: CidHold, at: int, booked: list[BytesChange]) -> CidHold:
    """The period begins at `at` if that is earlier than it did."""
    if hold.since is None or at >= hold.since:
        return hold
    booked += [BytesChange(at, hold.size), BytesChange(hold.since, -hold.size)]
    return replace(hold, since=at)


class OperatorLedger(Protocol):
    def operator_ledger(self) -> BytesLedger:
        """The operator's months of unique bytes as folded (changes not folded
        yet are in every tenant's shards: reading them would scan)."""


@dataclass(frozen=True)
class OperatorUsage:
    unique_bytes: int  # as of the last folds
    month: MonthBytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month.month.text,
            "unique_bytes": self.unique_bytes,
            "month_unique_bytes": month_dict(self.month),
        }


def operator_usage(ledger: OperatorLedger, month: Month | None = None, now: int | None = None) -> OperatorUsage:
    now = now_ms() if now is None else now
    folded = ledger.operator_ledger()
    return OperatorUsage(folded.total, month_bytes(folded, month or Month.of_ms(now), now))
