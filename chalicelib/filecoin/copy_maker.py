"""Makes one Filecoin copy: a `filecoin_copy` message's work, in the archive
function's long turns (a piece may be GiBs).

The tracker recorded the copy PENDING and sent the message. Here: the copy
is still PENDING (else a delivery made it already, or the tracker ended it:
nothing to do); its attempt is counted (a versioned write: of two
deliveries at once, one goes on); the CID's archived CAR is streamed from S3
into the backend's `store`; the receipt is recorded and the CID made due,
so the tracker follows it. A provider that refuses fails the copy (the
tracker repairs it with another); an unreachable one raises, and SQS
delivers the message again (`store` makes no second copy of a retried piece).
A copy the tracker ended meanwhile (no longer wanted) is ended at the
provider once made.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Protocol, TextIO

from chalicelib.cold.archive_objects import ArchiveThawing
from chalicelib.cold.archive_repository import ARCHIVED, ArchivedCar, ArchiveRepository
from chalicelib.filecoin.backend import CopyRefused, CopyState, FilecoinBackend, Piece, Receipt
from chalicelib.filecoin.repository import CopyRecord, CopyRepository
from chalicelib.metrics import emit_metrics
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import FilecoinCopyRequested
from chalicelib.worker.outcomes import Done, Later, Outcome

logger = logging.getLogger("pinning.filecoin")

# SQS delays a message by at most 15 minutes.
LONGEST_DELAY_SECONDS = 900


class CarReader(Protocol):
    """Streams an archived CAR (chalicelib.cold.archive_objects.ArchiveObjects)."""

    def car_chunks(self, car: ArchivedCar) -> Iterator[bytes]: ...


class ArchivedPiece:
    """The CID's CAR as the backend reads it: streamed from the archive."""

    def __init__(self, objects: CarReader, car: ArchivedCar) -> None:
        self._objects = objects
        self._car = car

    def chunks(self) -> Iterator[bytes]:
        return self._objects.car_chunks(self._car)


class CopyMaker:
    def __init__(
        self,
        copies: CopyRepository,
        backend: FilecoinBackend,
        archives: ArchiveRepository,
        objects: CarReader,
        clock: Callable[[], int] = now_ms,
        # Where a refused copy's metric line goes (Lambda's log stream); None: nowhere.
        metrics: TextIO | None = None,
        stage: str = "dev",
    ) -> None:
        self._copies = copies
        self._backend = backend
        self._archives = archives
        self._objects = objects
        self._clock = clock
        self._metrics = metrics
        self._stage = stage

    def make(self, message: FilecoinCopyRequested, deadline: float) -> Outcome:
        """Store the copy, unless it is made or ended; raises BackendUnavailable to be delivered again."""
        record = self._copies.copy(message.cid, message.provider_id, message.n)
        if record is None or record.receipt.state is not CopyState.PENDING:
            return Done()
        archive = self._archives.state(message.cid)
        if archive is None or archive.state != ARCHIVED or archive.car is None:
            self._fail(record, "the CID's archive is gone")
            return Done()
        provider = next((p for p in self._backend.providers() if p.provider_id == message.provider_id), None)
        if provider is None:
            self._fail(record, "the provider is no longer listed")
            return Done()
        started = replace(record, attempt=record.attempt + 1, updated_ms=self._clock(), version=record.version + 1)
        if not self._copies.save_copy(started):
            return Done()  # another delivery began it, or the tracker ended it
        car = archive.car
        piece = Piece(message.cid, car.piece_cid_v2, car.piece_cid_v1, car.padded_size, car.car_bytes)
        try:
            receipt = self._backend.store(provider, piece, ArchivedPiece(self._objects, car), deadline)
        except CopyRefused as error:
            self._fail(started, f"refused: {error}")
            return Done()
        except ArchiveThawing as error:
            # The CAR is in a cold storage class: back once S3 has a readable copy.
            return Later(min(error.retry_after_seconds, LONGEST_DELAY_SECONDS), str(error))
        self._record(started, receipt)
        return Done()

    def give_up(self, message: FilecoinCopyRequested) -> None:
        """Every delivery failed (the dead-letter queue): the copy fails, and is repaired elsewhere."""
        record = self._copies.copy(message.cid, message.provider_id, message.n)
        if record is not None and record.receipt.state is CopyState.PENDING:
            self._fail(record, "gave up after repeated failures")

    def _record(self, started: CopyRecord, receipt: Receipt) -> None:
        now = self._clock()
        made = replace(started, receipt=receipt, updated_ms=now, checked_ms=now, version=started.version + 1)
        if not self._copies.save_copy(made):
            current = self._copies.copy(started.cid, started.provider_id, started.n)
            if current is None or current.receipt.state is not CopyState.ENDED:
                raise RuntimeError(f"copy {started.key} of {started.cid} changed while it was made")
            # Ended as no longer wanted while it was uploaded: end what was made.
            ended = replace(self._backend.end(receipt), state=CopyState.ENDED, detail=current.receipt.detail)
            made = replace(current, receipt=ended, updated_ms=now, version=current.version + 1)
            self._copies.save_copy(made)
        logger.info(
            "Filecoin copy stored",
            extra={"cid": started.cid, "provider": started.provider_id, "state": made.receipt.state.value},
        )
        self._copies.mark_due(started.cid, now)

    def _fail(self, record: CopyRecord, why: str) -> None:
        failed = replace(
            record,
            receipt=replace(record.receipt, state=CopyState.FAILED, detail=why),
            updated_ms=self._clock(),
            version=record.version + 1,
        )
        if self._copies.save_copy(failed):
            logger.warning(
                "Filecoin copy failed", extra={"cid": record.cid, "provider": record.provider_id, "why": why}
            )
            if self._metrics is not None:
                emit_metrics({"FilecoinCopiesFailed": (1, "Count")}, self._stage, self._metrics)
        self._copies.mark_due(record.cid, self._clock())
