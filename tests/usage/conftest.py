"""A pin service on in-memory repositories that record usage, with a settable clock."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chalicelib.fleet.node import Node
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.pins.cids import parse_cid
from chalicelib.pins.model import PinRequest
from chalicelib.pins.pin import Pin
from chalicelib.pins.service import PinService
from chalicelib.queue.outbox import Outbox
from chalicelib.usage.meter import UsageMeter
from chalicelib.usage.months import Month
from chalicelib.usage.plans import DEFAULT_PLANS
from chalicelib.usage.quotas import QuotaCheck, TenantQuotas
from tests.support.memory.nodes import MemoryNodes
from tests.support.memory.usage import MemoryPlans, MemoryUsagePins

CIDS = [
    parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    parse_cid("bafkreidivzimqfqtoqxkrpge6bjyhlvxqs3rhe73owtmdulaxr5do5in7u"),
    parse_cid("bafkreie5cvv4h45feb3zjlzzjpzlzjfmvv5vlhvq6qcb3whu2q6pxzuf7a"),
]
START_MS = Month(2026, 3).start_ms - 10 * 3_600_000  # ten hours before March


class Sent:
    def send(self, body: str, delay_seconds: int = 0) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now


@dataclass
class World:
    service: PinService
    store: MemoryUsagePins
    plans: MemoryPlans
    meter: UsageMeter
    quotas: TenantQuotas
    clock: Clock

    def create(self, tenant_id: str, cid: int = 0) -> Pin:
        self.clock.now += 1
        return self.service.create(tenant_id, PinRequest(cid=CIDS[cid]))

    def service_quotas(self) -> QuotaCheck:
        return QuotaCheck(self.quotas, self.meter)

    def pinned(self, pin: Pin, size: int) -> Pin:
        """What the worker writes: pinning, then pinned with the DAG's size."""
        stored = self.store.get(pin.tenant_id, pin.created_ms)
        assert stored is not None
        pinning = self.store.update(stored, status="pinning")
        return self.store.update(pinning, status="pinned", info={"dag_size": str(size)})


@pytest.fixture
def world() -> World:
    nodes = MemoryNodes()
    nodes.save(Node("node-a", "http://127.0.0.1:1", "peer-a", ("/ip4/203.0.113.1/tcp/4001/p2p/peer-a",)))
    clock = Clock()
    store, plans = MemoryUsagePins(clock), MemoryPlans()
    meter = UsageMeter(store, store, clock)
    quotas = TenantQuotas(plans, DEFAULT_PLANS, "unlimited", cache_seconds=0, clock=clock)
    registry = NodeRegistry(nodes, clock=clock)
    outbox = Outbox(store.outbox, Sent(), 1, clock)
    service = PinService(store, registry, outbox, 1, clock, quotas=QuotaCheck(quotas, meter))
    return World(service, store, plans, meter, quotas, clock)
