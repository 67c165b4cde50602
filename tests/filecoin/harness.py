"""The Filecoin copies on memory repositories and a memory backend: archived
CIDs with pinned requests holding them, the tracker, the copy maker, and the
queue between them (messages a test delivers when it chooses)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from chalicelib.cold.archive_repository import ArchivedCar, ArchiveHolder, ArchiveLease
from chalicelib.filecoin.backend import CopyState
from chalicelib.filecoin.copies import CopyWants
from chalicelib.filecoin.copy_maker import CopyMaker
from chalicelib.filecoin.repository import CopyRecord
from chalicelib.filecoin.selection import ProviderRule
from chalicelib.filecoin.tracker import Tracker, TrackerSettings, TrackReport
from chalicelib.filecoin.wanted import WantedCopies
from chalicelib.pins.pin import Pin
from chalicelib.pins.request_ids import new_request_id
from chalicelib.queue.messages import FilecoinCopyRequested, QueueMessage
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.worker.outcomes import Outcome
from tests.support.memory.archives import MemoryArchives
from tests.support.memory.filecoin_backend import MemoryBackend
from tests.support.memory.filecoin_copies import MemoryCopies
from tests.support.memory.filecoin_tenants import MemoryTenantCopies
from tests.support.memory.pins import MemoryPinRepository

START = 1_780_000_000_000
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
PROVIDERS = ("f01", "f02", "f03", "f04", "f05")


class Clock:
    def __init__(self) -> None:
        self.ms = START

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@dataclass
class Cars:
    """The archive's CARs as the copy maker streams them."""

    def car_chunks(self, car: ArchivedCar) -> Iterator[bytes]:
        yield f"CAR of {car.car_key}".encode()


@dataclass
class Copies:
    backend: MemoryBackend
    copies: MemoryCopies
    archives: MemoryArchives
    pins: MemoryPinRepository
    tenants: MemoryTenantCopies
    clock: Clock
    settings: TrackerSettings
    queue: list[QueueMessage] = field(default_factory=list)

    @property
    def tracker(self) -> Tracker:
        return Tracker(
            self.copies, self.backend, self.archives, self.pins, self.queue.append, self.settings, self.clock
        )

    @property
    def maker(self) -> CopyMaker:
        return CopyMaker(self.copies, self.backend, self.archives, Cars(), self.clock)

    @property
    def wants(self) -> CopyWants:
        return CopyWants(self.copies, WantedCopies(self.tenants, stage_copies=2), self.clock)

    def archived_request(self, cid: str = CID, tenant_id: str = "alice", meta: dict[str, str] | None = None) -> Pin:
        """A pinned request whose CID is archived, and its want recorded as the archiver records it."""
        self.clock.advance(0.001)
        created_ms = self.clock.ms
        request_id = new_request_id(created_ms)
        pin = Pin(tenant_id, created_ms, request_id, "queued", cid, cid, meta=meta or {})
        self.pins.create(pin, OutboxMessage("shard#0", f"{created_ms}#e", "{}", created_ms))
        pinned = self.pins.update(self.pins.get(tenant_id, created_ms), status="pinned", info={"cold": "archived"})
        self.archives.hold(ArchiveHolder(cid, tenant_id, request_id))
        if self.archives.take_lease(cid, ArchiveLease("m", created_ms + 1000), created_ms):
            car = ArchivedCar(f"{cid}.car", f"{cid}.idx", 10, "ab", f"baga-{cid}", f"bafkzcib-{cid}", 128, created_ms)
            self.archives.record_archived(cid, "m", car)
        self.wants.held(cid, tenant_id, request_id, pinned.meta)
        return pinned

    def run(self, limit: int = 100) -> TrackReport:
        return self.tracker.run(time.monotonic() + 60, limit)

    def deliver(self) -> list[Outcome]:
        """Every queued copy message, to the copy maker."""
        sent, self.queue[:] = list(self.queue), []
        return [
            self.maker.make(message, time.monotonic() + 60)
            for message in sent
            if isinstance(message, FilecoinCopyRequested)
        ]

    def settle(self, rounds: int = 3) -> None:
        """Tracker runs and deliveries until the copies have moved (providers proving what they hold)."""
        for _ in range(rounds):
            self.run()
            self.deliver()
            self.backend.prove_all()
            self.clock.advance(self.settings.adding_check_seconds)

    def records(self, cid: str = CID) -> list[CopyRecord]:
        return self.copies.copies(cid)

    def live(self, cid: str = CID) -> list[str]:
        return [r.provider_id for r in self.records(cid) if r.receipt.state.live]

    def in_state(self, state: CopyState, cid: str = CID) -> list[str]:
        return [r.provider_id for r in self.records(cid) if r.receipt.state is state]

    def info(self, pin: Pin) -> dict[str, str]:
        stored = self.pins.get(pin.tenant_id, pin.created_ms)
        assert stored is not None
        return {key: value for key, value in stored.info.items() if key.startswith("filecoin")}


def build(providers: tuple[str, ...] = PROVIDERS, **settings: object) -> Copies:
    defaults: dict[str, object] = {"spend_cap": 10**12, "term_epochs": 100, "rule": ProviderRule()}
    defaults.update(settings)
    return Copies(
        backend=MemoryBackend.with_providers(*providers),
        copies=MemoryCopies(),
        archives=MemoryArchives(),
        pins=MemoryPinRepository(),
        tenants=MemoryTenantCopies({"alice": None, "bob": None}),
        clock=Clock(),
        settings=TrackerSettings(**defaults),  # type: ignore[arg-type]
    )
