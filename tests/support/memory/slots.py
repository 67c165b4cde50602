"""A SlotRepository in memory: each operation atomic, as DynamoDB's are."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class MemorySlots:
    # (tenant, slot) -> when its lease ends.
    held: dict[tuple[str, int], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, tenant_id: str, slot: int, until_ms: int, now_ms: int) -> bool:
        with self._lock:
            if self.held.get((tenant_id, slot), now_ms - 1) >= now_ms:
                return False
            self.held[(tenant_id, slot)] = until_ms
            return True

    def leases(self, tenant_id: str) -> Mapping[int, int]:
        with self._lock:
            return {slot: until for (tenant, slot), until in self.held.items() if tenant == tenant_id}

    def give_back(self, tenant_id: str, slot: int, until_ms: int) -> None:
        with self._lock:
            if self.held.get((tenant_id, slot)) == until_ms:
                del self.held[(tenant_id, slot)]
