"""A month's bytes from the ledger: opening, ending and byte-hours, across
month boundaries, the same whether the changes are folded or not."""

from __future__ import annotations

import pytest

from chalicelib.usage.ledger import BytesChange, BytesLedger, FoldedMonth, month_bytes
from chalicelib.usage.months import InvalidMonth, Month

HOUR = 3_600_000
MARCH, APRIL, MAY = Month(2026, 3), Month(2026, 4), Month(2026, 5)


def folded(changes: list[BytesChange]) -> BytesLedger:
    months: dict[Month, FoldedMonth] = {}
    for change in changes:
        months[change.month] = months.get(change.month, FoldedMonth()).plus(change)
    return BytesLedger(months)


CHANGES = [
    BytesChange(MARCH.end_ms - 2 * HOUR, 1000),  # two hours before April
    BytesChange(APRIL.start_ms + 3 * HOUR, 500),
    BytesChange(APRIL.end_ms - HOUR, -1000),  # one hour before May
]


@pytest.mark.parametrize("ledger", [BytesLedger({}, CHANGES), folded(CHANGES)], ids=["unfolded", "folded"])
def test_months_cut_at_their_boundaries(ledger):
    # given 1000 bytes pinned two hours before April, 500 more in April, 1000 gone an hour before May
    # when each month is read after May began
    later = MAY.start_ms + HOUR
    march, april, may = (month_bytes(ledger, month, later) for month in (MARCH, APRIL, MAY))
    # then March holds two hours of 1000 bytes
    assert (march.opening, march.ending, march.byte_ms) == (0, 1000, 2000 * HOUR)
    # and April all its hours of 1000, 500 since its third hour less the last hour of 1000
    april_hours = (APRIL.end_ms - APRIL.start_ms) // HOUR
    assert (april.opening, april.ending) == (1000, 500)
    assert april.byte_hours == 1000 * april_hours + 500 * (april_hours - 3) - 1000
    # and May so far one hour of 500
    assert (may.opening, may.ending, may.byte_hours) == (500, 500, 500)
    assert ledger.total == 500


def test_the_running_month_counts_up_to_now_and_a_future_month_nothing():
    # given 1000 bytes pinned an hour into April
    ledger = BytesLedger({}, [BytesChange(APRIL.start_ms + HOUR, 1000)])
    # when April is read two hours later, and May then
    now = APRIL.start_ms + 3 * HOUR
    # then April has two hours of it, May none yet
    assert month_bytes(ledger, APRIL, now).byte_hours == 2000
    assert month_bytes(ledger, MAY, now).byte_ms == 0
    assert month_bytes(ledger, MAY, now).ending == 1000


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "26-01", "1969-12", "2026-01x", ""])
def test_a_bad_month_is_refused(text):
    with pytest.raises(InvalidMonth):
        Month.parse(text)


def test_december_turns_into_january():
    assert Month.parse("2025-12").next() == Month(2026, 1)
    assert Month.of_ms(Month(2026, 1).start_ms) == Month(2026, 1)
    assert Month.of_ms(Month(2026, 1).start_ms - 1) == Month(2025, 12)
