"""A tenant's usage: pins by status now, bytes pinned (cold, in Filecoin)
now, and a month's bytes, API requests by class and retrieval egress.

Pins by status are the pin store's exact counts (the counter trees plus the
changes not folded yet); bytes come from the usage ledger; requests and
egress from the containers' flushed counts (chalicelib.usage.requests).
Nothing scans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.pins.model import STATUSES
from chalicelib.pins.timestamps import now_ms
from chalicelib.usage.ledger import MonthBytes, UsageLedger, month_bytes, month_dict
from chalicelib.usage.months import Month
from chalicelib.usage.requests import CLASSES, EGRESS, RequestCounts

# Every pin was created in [0, ALL_TIME_MS] (pin_keys.MAX_MS).
ALL_TIME_MS = 10**13 - 1


class PinCounts(Protocol):
    def count(self, tenant_id: str, statuses: frozenset[str], lo: int, hi: int) -> int:
        """Pins of `statuses` created in [lo, hi] ms, exact."""


@dataclass(frozen=True)
class TenantUsage:
    tenant_id: str
    pins: Mapping[str, int]  # now, by status
    bytes_pinned: int  # now
    month: MonthBytes
    requests: Mapping[str, int]  # the month's, by class and EGRESS
    cold_bytes: int = 0  # now: the archives' CARs of its requests
    cold_month: MonthBytes | None = None
    filecoin_bytes: int = 0  # now: its requests' pieces x the copies proving for each
    filecoin_month: MonthBytes | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "month": self.month.month.text,
            "pins": dict(self.pins),
            "bytes_pinned": self.bytes_pinned,
            "month_bytes": month_dict(self.month),
            "requests": {kind: self.requests.get(kind, 0) for kind in CLASSES},
            "egress_bytes": self.requests.get(EGRESS, 0),
            "cold_bytes": self.cold_bytes,
            "month_cold_bytes": month_dict(self.cold_month or MonthBytes(self.month.month, 0, 0, 0)),
            "filecoin_bytes": self.filecoin_bytes,
            "month_filecoin_bytes": month_dict(self.filecoin_month or MonthBytes(self.month.month, 0, 0, 0)),
        }


class UsageMeter:
    def __init__(
        self,
        counts: PinCounts,
        ledger: UsageLedger,
        clock: Callable[[], int] = now_ms,
        requests: RequestCounts | None = None,
    ) -> None:
        self._counts = counts
        self._ledger = ledger
        self._clock = clock
        # None: requests are not counted (every figure 0).
        self._requests = requests

    def pins(self, tenant_id: str, statuses: frozenset[str]) -> int:
        return self._counts.count(tenant_id, statuses, 0, ALL_TIME_MS)

    def bytes_pinned(self, tenant_id: str) -> int:
        return self._ledger.ledger(tenant_id).total

    def usage(self, tenant_id: str, month: Month | None = None) -> TenantUsage:
        now = self._clock()
        ledger = self._ledger.ledger(tenant_id)
        pins = {status: self.pins(tenant_id, frozenset({status})) for status in STATUSES}
        month = month or Month.of_ms(now)
        requests = {} if self._requests is None else self._requests.month(tenant_id, month)
        cold, filecoin = ledger.cold(), ledger.filecoin()
        return TenantUsage(
            tenant_id,
            pins,
            ledger.total,
            month_bytes(ledger, month, now),
            requests,
            cold.total,
            month_bytes(cold, month, now),
            filecoin.total,
            month_bytes(filecoin, month, now),
        )
