"""Calendar months (UTC): what usage is read and billed by."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_MONTH = re.compile(r"(\d{4})-(\d{2})")


class InvalidMonth(ValueError):
    """Not a month as YYYY-MM."""


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        found = _MONTH.fullmatch(text)
        if found is None or not 1 <= int(found[2]) <= 12 or int(found[1]) < 1970:
            raise InvalidMonth(f"month must be YYYY-MM from 1970-01 on, not {text[:40]!r}")
        return cls(int(found[1]), int(found[2]))

    @classmethod
    def of_ms(cls, ms: int) -> Month:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return cls(moment.year, moment.month)

    @property
    def text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start_ms(self) -> int:
        return int(datetime(self.year, self.month, 1, tzinfo=UTC).timestamp()) * 1000

    @property
    def end_ms(self) -> int:
        """The first millisecond of the next month."""
        return self.next().start_ms

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)
