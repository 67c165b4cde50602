"""RequestCounts in a dict, with a write that can be made to fail."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from chalicelib.usage.months import Month


class MemoryRequestCounts:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, Month], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.writes = 0
        self.fail_next = False

    def add(self, tenant_id: str, month: Month, counts: Mapping[str, int]) -> None:
        self.writes += 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("throttled")
        for name, count in counts.items():
            self.stored[(tenant_id, month)][name] += count

    def month(self, tenant_id: str, month: Month) -> dict[str, int]:
        return dict(self.stored.get((tenant_id, month), {}))
