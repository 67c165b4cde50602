"""Copies of real archives: the archiver records each holder's want, the
tracker and the copy maker stream the CAR from S3 (moto) to the providers,
a release ends them, the archive sweep ends every copy before it deletes."""

from __future__ import annotations

import time

from chalicelib.cold.archive_objects import ArchiveObjects
from chalicelib.cold.archive_sweep import ArchiveSweep
from chalicelib.filecoin.backend import CopyState
from chalicelib.filecoin.copies import CopyWants
from chalicelib.filecoin.copy_maker import CopyMaker
from chalicelib.filecoin.repository import Want
from chalicelib.filecoin.tracker import Tracker, TrackerSettings
from chalicelib.filecoin.wanted import WantedCopies
from chalicelib.pins.pin import Pin
from chalicelib.pins.request_ids import new_request_id
from chalicelib.queue.messages import ArchiveRequested, FilecoinCopyRequested, QueueMessage
from chalicelib.queue.outbox_repository import OutboxMessage
from chalicelib.worker.outcomes import Done
from tests.cold import test_archiver as archiving
from tests.support.memory.filecoin_backend import MemoryBackend
from tests.support.memory.filecoin_copies import MemoryCopies
from tests.support.memory.filecoin_tenants import MemoryTenantCopies

# The archiver's fixture: FakeKubo nodes holding DAGs, moto's S3, memory records.
cold = archiving.cold
NODES = archiving.NODES


def pinned(cold, cid: str, created_ms: int, meta: dict[str, str]) -> ArchiveRequested:
    request_id = new_request_id(created_ms)
    pin = Pin("alice", created_ms, request_id, "queued", cid, cid, meta=meta, node_ids=NODES)
    cold.pins.create(pin, OutboxMessage("shard#0", f"{created_ms}#e", "{}", created_ms))
    cold.pins.update(cold.pins.get("alice", created_ms), status="pinned", info={"replicas": ",".join(NODES)})
    return ArchiveRequested("alice", request_id, created_ms, cid, NODES)


class Filecoin:
    def __init__(self, cold) -> None:
        self.copies = MemoryCopies()
        self.backend = MemoryBackend.with_providers("f01", "f02", "f03")
        self.queue: list[QueueMessage] = []
        self.settings = TrackerSettings(spend_cap=10**9, term_epochs=10)
        wants = CopyWants(self.copies, WantedCopies(MemoryTenantCopies(), stage_copies=1), cold.clock)
        # The wiring gives it at construction; the archiver's fixture built one without.
        cold.archiver._copies = wants
        self.tracker = Tracker(
            self.copies, self.backend, cold.archives, cold.pins, self.queue.append, self.settings, cold.clock
        )
        objects = ArchiveObjects(cold.s3, archiving.BUCKET)
        self.maker = CopyMaker(self.copies, self.backend, cold.archives, objects, cold.clock)
        self.cold = cold

    def turn(self) -> None:
        """A tracker run, the copy messages delivered, the providers proving, a minute later."""
        self.tracker.run(time.monotonic() + 30, 100)
        sent, self.queue[:] = list(self.queue), []
        for message in sent:
            assert isinstance(message, FilecoinCopyRequested)
            assert self.maker.make(message, time.monotonic() + 30) == Done()
        self.backend.prove_all()
        self.cold.clock.ms += 60_000


def test_an_archived_pin_gets_its_copies_from_the_archived_car_and_a_release_ends_them(cold):
    # Given a pinned request wanting 2 copies of a DAG, and a Filecoin backend
    filecoin = Filecoin(cold)
    cid, car, _ = archiving.a_dag(cold, 300 * 1024)
    message = pinned(cold, cid, 1000, {"filecoin.copies": "2"})
    # When it is archived, then its want is recorded and the CID is due
    assert cold.archiver.archive(message, "m1", archiving.deadline()) == Done()
    assert filecoin.copies.records(cid).wants == [Want("alice", message.request_id, 2)]
    assert filecoin.copies.records(cid).state.due_ms == cold.clock.ms
    # When the tracker and the copy maker have their turns
    for _ in range(3):
        filecoin.turn()
    # Then two providers received the CAR exactly as archived, and prove it
    assert list(filecoin.backend.stored_bytes.values()) == [car, car]
    proving = [r for r in filecoin.copies.copies(cid) if r.receipt.state is CopyState.PROVING]
    assert len({r.provider_id for r in proving}) == 2
    state = cold.archives.state(cid)
    assert {r.receipt.piece_cid for r in proving} == {state.car.piece_cid_v2}
    # And the request shows them beside its archive, still pinned
    pin = cold.pins.get("alice", 1000)
    assert (pin.status, pin.info["cold"], pin.info["filecoin"], pin.info["filecoin_copies"]) == (
        "pinned",
        "archived",
        "proving",
        "2/2",
    )
    # When the request lets go of the archive (its unpin), then its copies end
    cold.archiver.release(cid, "alice", message.request_id)
    assert filecoin.copies.records(cid).wants == []
    filecoin.turn()
    assert {r.receipt.state for r in filecoin.copies.copies(cid)} == {CopyState.ENDED}


def test_a_second_request_for_an_archived_cid_records_its_want_too(cold):
    filecoin = Filecoin(cold)
    cid, _, _ = archiving.a_dag(cold, 1024)
    first = pinned(cold, cid, 1000, {})
    cold.archiver.archive(first, "m1", archiving.deadline())
    second = pinned(cold, cid, 2000, {"filecoin.copies": "3"})
    assert cold.archiver.archive(second, "m2", archiving.deadline()) == Done()
    assert sorted(w.copies for w in filecoin.copies.records(cid).wants) == [1, 3]


def test_the_sweep_ends_every_copy_before_it_deletes_the_archive(cold):
    filecoin = Filecoin(cold)
    cid, _, _ = archiving.a_dag(cold, 1024)
    message = pinned(cold, cid, 1000, {"filecoin.copies": "2"})
    cold.archiver.archive(message, "m1", archiving.deadline())
    filecoin.turn()
    filecoin.turn()
    cold.archiver.release(cid, "alice", message.request_id)
    cold.clock.ms += (archiving.GRACE + 1) * 1000
    sweep = ArchiveSweep(
        cold.archives, cold.s3, archiving.BUCKET, "archives/", archiving.GRACE, 10, cold.clock, filecoin.tracker.end_all
    )
    # When the backend cannot end them, then the archive stays
    filecoin.backend.down = True
    assert sweep.run() == 0
    assert cold.archives.state(cid) is not None
    # When it can, then the copies end first and the archive goes
    filecoin.backend.down = False
    assert sweep.run() == 1
    assert cold.archives.state(cid) is None
    assert {r.state for r in filecoin.backend.held.values()} == {CopyState.ENDED}
