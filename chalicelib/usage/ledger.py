"""A tenant's bytes pinned over time, and what a month of it comes to.

Every write that changes a tenant's bytes pinned records a change (when, how
many bytes); changes are folded later into one total per month and shard
(chalicelib.storage.usage_folder), each keeping its net bytes and its
byte-milliseconds to the month's end, sum(delta * (end - at)). A month's
byte-hours then follow from sums alone, whatever order changes are folded in:

    byte_ms(M) = opening(M) * len(M) + sum over M's changes of delta * (end(M) - at)

and a month still running is cut at `now` by taking off net(M) * (end - now).
A reader gets the folded months and the changes not folded yet, each change
in exactly one of them (the repositories say how), so the arithmetic is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import Protocol

from chalicelib.usage.months import Month

MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class BytesChange:
    at_ms: int
    delta: int  # bytes pinned
    cold: int = 0  # archived bytes (the requests' archives' CARs)
    filecoin: int = 0  # bytes in Filecoin (chalicelib.usage.pin_bytes.filecoin_bytes)

    @property
    def month(self) -> Month:
        return Month.of_ms(self.at_ms)

    @property
    def byte_ms_to_end(self) -> int:
        return self.delta * (self.month.end_ms - self.at_ms)

    @property
    def cold_change(self) -> BytesChange:
        return BytesChange(self.at_ms, self.cold)

    @property
    def filecoin_change(self) -> BytesChange:
        return BytesChange(self.at_ms, self.filecoin)


@dataclass(frozen=True)
class FoldedMonth:
    """A month's folded changes: their net bytes and byte-milliseconds to the
    month's end, pinned, cold (archived) and in Filecoin."""

    net: int = 0
    byte_ms: int = 0
    cold_net: int = 0
    cold_byte_ms: int = 0
    filecoin_net: int = 0
    filecoin_byte_ms: int = 0

    def plus(self, change: BytesChange) -> FoldedMonth:
        cold, filecoin = change.cold_change, change.filecoin_change
        return FoldedMonth(
            self.net + change.delta,
            self.byte_ms + change.byte_ms_to_end,
            self.cold_net + cold.delta,
            self.cold_byte_ms + cold.byte_ms_to_end,
            self.filecoin_net + filecoin.delta,
            self.filecoin_byte_ms + filecoin.byte_ms_to_end,
        )

    def added(self, other: FoldedMonth) -> FoldedMonth:
        return FoldedMonth(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))

    @property
    def cold(self) -> FoldedMonth:
        return FoldedMonth(self.cold_net, self.cold_byte_ms)

    @property
    def filecoin(self) -> FoldedMonth:
        return FoldedMonth(self.filecoin_net, self.filecoin_byte_ms)


@dataclass(frozen=True)
class BytesLedger:
    folded: Mapping[Month, FoldedMonth]
    unfolded: Sequence[BytesChange] = ()

    def by_month(self) -> dict[Month, FoldedMonth]:
        """Every change, folded or not, summed per month."""
        months = dict(self.folded)
        for change in self.unfolded:
            months[change.month] = months.get(change.month, FoldedMonth()).plus(change)
        return months

    @property
    def total(self) -> int:
        return sum(month.net for month in self.by_month().values())

    def cold(self) -> BytesLedger:
        """The archived bytes' ledger, for the same arithmetic."""
        return BytesLedger(
            {month: folded.cold for month, folded in self.folded.items()},
            [change.cold_change for change in self.unfolded],
        )

    def filecoin(self) -> BytesLedger:
        """The Filecoin bytes' ledger, for the same arithmetic."""
        return BytesLedger(
            {month: folded.filecoin for month, folded in self.folded.items()},
            [change.filecoin_change for change in self.unfolded],
        )


@dataclass(frozen=True)
class MonthBytes:
    month: Month
    opening: int  # bytes pinned as the month began
    ending: int  # as it ended, or now for the running month
    byte_ms: int  # bytes pinned integrated over the month (up to now)

    @property
    def byte_hours(self) -> int:
        return self.byte_ms // MS_PER_HOUR


def month_bytes(ledger: BytesLedger, month: Month, now_ms: int) -> MonthBytes:
    months = ledger.by_month()
    opening = sum(totals.net for when, totals in months.items() if when < month)
    within = months.get(month, FoldedMonth())
    ending = opening + within.net
    end = min(month.end_ms, now_ms)
    if end <= month.start_ms:
        return MonthBytes(month, opening, opening, 0)
    byte_ms = opening * (end - month.start_ms) + within.byte_ms - within.net * (month.end_ms - end)
    return MonthBytes(month, opening, ending, byte_ms)


def month_dict(month: MonthBytes) -> dict[str, int]:
    return {"opening": month.opening, "ending": month.ending, "byte_hours": month.byte_hours}


class UsageLedger(Protocol):
    def ledger(self, tenant_id: str) -> BytesLedger:
        """The tenant's folded months and the changes not folded yet, each change in one of them."""
