"""Archives pinned DAGs into S3: one CARv1, its block index and its piece CID per CID.

An `archive` message (sent by the pin worker once a request is pinned) makes
its request a holder of the CID's archive (chalicelib.cold.archive_repository).
The first holder's message archives: under a lease on the archive, it streams
`dag/export` from a node of the request into an S3 multipart upload, parts
of PART_BYTES buffered one at a time, hashing (SHA-256) and computing the
piece commitment (CommP) over the same chunks; then it uploads the block
index beside it, completes the upload only once the export loop ended
cleanly (the whole DAG, every block verified: a cut export aborts it), and
records the archive with its figures. Any later holder finds it archived
and only shows it in its request's `info`. An attempt that fails (a cut or
slow export, S3, a DAG too large for the turn's time) ends its lease, notes
why, and raises: SQS delivers the message again. The `archive_attempts`th
failure fails the archive; `info` says so, `status` never changes.

A request's hold is let go when it is deleted (its unpin) or replaced; the
last one orphans the archive, which chalicelib.cold.archive_sweep deletes
after a grace.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from chalicelib.busy import StorageBusy
from chalicelib.cold.archive_repository import (
    ARCHIVED,
    ARCHIVING,
    FAILED,
    ArchivedCar,
    ArchiveHolder,
    ArchiveLease,
    ArchiveRepository,
    ArchiveState,
    Held,
    Left,
)
from chalicelib.cold.cids import UnsupportedHash
from chalicelib.cold.commp import CommP
from chalicelib.cold.restorer import LONGEST_TURN_SECONDS
from chalicelib.config import Settings
from chalicelib.fleet.node import Node
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.kubo.client import KuboClient
from chalicelib.kubo.dag_links import UnsupportedCodec
from chalicelib.kubo.errors import KuboError
from chalicelib.metrics import emit_metrics
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import PinRepository, StaleRecord
from chalicelib.pins.sizes import format_bytes
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import ArchiveRequested
from chalicelib.worker.outcomes import STALE_ATTEMPTS, Done, Later, Outcome

if TYPE_CHECKING:  # Filecoin copies load only where a backend is wired
    from chalicelib.filecoin.copies import CopyWants

logger = logging.getLogger("pinning.archiver")

# S3 multipart parts (all but the last): one is buffered at a time. S3 wants
# at least 5 MiB; 8 MiB keeps a 80 GiB CAR within its 10,000 parts.
PART_BYTES = 8 * 1024 * 1024
# Reads of the holder count for one release (see chalicelib.fleet.holds.RECOUNTS).
RECOUNTS = 10
# A lease outlives its turn by this much: an archiver that died frees the CID soon after.
LEASE_SLACK_MS = 60_000
# The tag of every CAR (set at upload): the bucket's lifecycle rules move
# tagged objects only, so block indexes stay readable in S3 Standard.
CAR_TAGGING = "archive=car"
# The request's `info` keys the archive owns (strings, as the spec wants).
COLD_KEYS = ("cold", "piece_cid", "piece_cid_v2", "car_sha256", "car_bytes", "padded_piece_size", "cold_error")


class ObjectStore(Protocol):
    """The S3 calls the archiver and the sweep make (a botocore S3 client)."""

    def create_multipart_upload(self, *, Bucket: str, Key: str, Tagging: str = ...) -> Mapping[str, Any]: ...
    def upload_part(
        self, *, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes
    ) -> Mapping[str, Any]: ...
    def complete_multipart_upload(
        self, *, Bucket: str, Key: str, UploadId: str, MultipartUpload: Mapping[str, Any]
    ) -> Mapping[str, Any]: ...
    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> Mapping[str, Any]: ...
    def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> Mapping[str, Any]: ...
    def delete_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...


KuboFactory = Callable[[Node], KuboClient]


class AttemptFailed(Exception):
    """This attempt at archiving failed; `final` when no retry can succeed."""

    def __init__(self, reason: str, final: bool = False) -> None:
        super().__init__(reason)
        self.final = final


def archive_keys(prefix: str, cid: str) -> tuple[str, str]:
    """The S3 keys of the CAR and of its block index (`cid`: CIDv1, base32)."""
    return f"{prefix}{cid}.car", f"{prefix}{cid}.idx"


def cold_info(state: ArchiveState) -> dict[str, str]:
    """What a request's `info` says of its archive."""
    if state.state == ARCHIVED and state.car is not None:
        car = state.car
        return {
            "cold": ARCHIVED,
            "piece_cid": car.piece_cid_v1,
            "piece_cid_v2": car.piece_cid_v2,
            "car_sha256": car.car_sha256,
            "car_bytes": str(car.car_bytes),
            "padded_piece_size": str(car.padded_size),
        }
    if state.state == FAILED:
        return {"cold": FAILED, "cold_error": state.last_error or "unknown"}
    return {"cold": ARCHIVING}


class MultipartUpload:
    """An S3 multipart upload fed chunks of any size; holds at most one part
    (plus the chunk being added). Nothing is visible in the bucket before
    `complete`; `abort` drops the parts sent."""

    def __init__(self, s3: ObjectStore, bucket: str, key: str, part_bytes: int = PART_BYTES, tagging: str = "") -> None:
        self._s3, self._bucket, self._key, self._part_bytes = s3, bucket, key, part_bytes
        tags = {"Tagging": tagging} if tagging else {}
        self._upload_id: str = s3.create_multipart_upload(Bucket=bucket, Key=key, **tags)["UploadId"]
        self._parts: list[dict[str, Any]] = []
        self._buffer = bytearray()

    def write(self, chunk: bytes) -> None:
        self._buffer += chunk
        while len(self._buffer) >= self._part_bytes:
            self._send(bytes(self._buffer[: self._part_bytes]))
            del self._buffer[: self._part_bytes]

    def complete(self) -> None:
        if self._buffer or not self._parts:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        self._s3.complete_multipart_upload(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
        )

    def abort(self) -> None:
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        except Exception:  # the bucket's lifecycle rule aborts what is left after a day
            logger.warning("abort of a multipart upload failed", exc_info=True, extra={"key": self._key})

    def _send(self, part: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._s3.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=part
        )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})


class Archiver:
    def __init__(
        self,
        settings: Settings,
        archives: ArchiveRepository,
        s3: ObjectStore,
        registry: NodeRegistry,
        kubo: KuboFactory,
        store: PinRepository,
        clock: Callable[[], int] = now_ms,
        part_bytes: int = PART_BYTES,
        metrics: TextIO | None = None,
        cools_at: Callable[[str], int | None] = lambda tenant_id: None,
        copies: CopyWants | None = None,
    ) -> None:
        if not settings.archive_bucket:
            raise ValueError("ARCHIVE_BUCKET is not configured")
        self._settings = settings
        self._bucket = settings.archive_bucket
        self._archives = archives
        self._s3 = s3
        self._registry = registry
        self._kubo = kubo
        self._store = store
        self._clock = clock
        self._part_bytes = part_bytes
        self._metrics = metrics if metrics is not None else (sys.stdout if settings.emit_metrics else None)
        # When a hold the tenant's request takes now is due to cool (chalicelib.cold.tiering); None: never.
        self._cools_at = cools_at
        # Records each archived holder's Filecoin copies wanted; None: no copies are made.
        self._copies = copies

    # -- holds -----------------------------------------------------------------

    def archive(self, message: ArchiveRequested, token: str, deadline: float) -> Outcome:
        """Hold the CID's archive for the request, archive it unless done,
        and show it in the request's `info`. Raises on a failed attempt."""
        holder = ArchiveHolder(message.cid, message.tenant_id, message.request_id)
        if self._archives.hold(holder, self._cools_at(message.tenant_id)) is Held.DELETING:
            return Later(self._settings.continue_delay_seconds, f"the archive of {message.cid} is being deleted")
        pin = self._current(message)
        if pin is None:
            # Deleted or replaced before its hold was taken: its unpin found nothing to let go.
            self.release(message.cid, message.tenant_id, message.request_id)
            return Done()
        state = self._archives.state(message.cid)
        if state is None:  # the sweep forgot it between the hold and here: hold again later
            return Later(self._settings.continue_delay_seconds, f"the archive of {message.cid} was just deleted")
        if state.state == ARCHIVING:
            outcome = self._archive_once(state, pin, message, token, deadline)
            if outcome is not None:
                return outcome
            state = self._archives.state(message.cid) or state
        return self._show(message, state, pin.meta)

    def release(self, cid: str, tenant_id: str, request_id: str) -> None:
        """Let go of the request's hold (idempotent); the last holder orphans the archive."""
        holder = ArchiveHolder(cid, tenant_id, request_id)
        for _ in range(RECOUNTS):
            state = self._archives.state(cid)
            if state is None:
                return
            # A stored holder is counted: a count below 1 would be wrong.
            left = self._archives.leave(holder, max(state.holders, 1), self._clock())
            if left is Left.LAST:
                logger.info("archive orphaned", extra={"cid": cid})
            if left is not Left.RECOUNT:
                if self._copies is not None:
                    self._copies.let_go(cid, tenant_id, request_id)
                return
        raise StorageBusy(f"the holders of the archive of {cid} kept changing")

    def give_up(self, message: ArchiveRequested) -> None:
        """Every delivery failed (the dead-letter queue): the archive fails."""
        reason = "gave up after repeated failures"
        state = self._archives.state(message.cid)
        if state is not None and state.last_error:
            reason += f" (last: {state.last_error})"
        if self._archives.record_failure(message.cid, None, reason, failed=True):
            self._failed(message.cid, reason)
        state = self._archives.state(message.cid)
        if state is not None:
            self._write_info(message, cold_info(state))

    # -- archiving -------------------------------------------------------------

    def _archive_once(
        self, state: ArchiveState, pin: Pin, message: ArchiveRequested, token: str, deadline: float
    ) -> Outcome | None:
        """One attempt under the lease; None once the archive's state is final
        (archived or failed), else what comes next. Raises AttemptFailed to be
        delivered again."""
        if state.car is None and "cold" not in pin.info:
            self._write_info(message, cold_info(state))
        seconds_left = deadline - time.monotonic()
        lease = ArchiveLease(token, self._clock() + int(seconds_left * 1000) + LEASE_SLACK_MS)
        leased = self._archives.take_lease(message.cid, lease, self._clock())
        if leased is None:
            current = self._archives.state(message.cid)
            if current is not None and current.state != ARCHIVING:
                return None
            return Later(self._settings.continue_delay_seconds, f"another worker is archiving {message.cid}")
        if leased.attempts > self._settings.archive_attempts:
            self._fail(message.cid, token, f"gave up after {leased.attempts - 1} attempts (last: {leased.last_error})")
            return None
        try:
            car = self._upload(message, pin, deadline)
        except Exception as error:  # S3's and storage's too: each ends the attempt
            reason = str(error) if isinstance(error, AttemptFailed) else f"{type(error).__name__}: {error}"
            if getattr(error, "final", False) or leased.attempts >= self._settings.archive_attempts:
                self._fail(message.cid, token, reason)
                return None
            self._archives.record_failure(message.cid, token, reason, failed=False)
            logger.warning("archive attempt failed; retrying", extra={"cid": message.cid, "error": reason})
            raise
        self._archives.record_archived(message.cid, token, car)
        logger.info("archived", extra={"cid": message.cid, "car_bytes": car.car_bytes, "piece_cid": car.piece_cid_v1})
        return None

    def _upload(self, message: ArchiveRequested, pin: Pin, deadline: float) -> ArchivedCar:
        """The DAG's CAR and index uploaded from the first node of the request
        that exports it whole."""
        self._check_time(pin, deadline)
        nodes = {node.node_id: node for node in self._registry.nodes() if node.healthy}
        sources = [nodes[node_id] for node_id in message.node_ids if node_id in nodes]
        if not sources:
            raise AttemptFailed(f"no healthy node of the request ({', '.join(message.node_ids)})")
        errors = []
        for node in sources:
            try:
                return self._upload_from(node, message.cid, deadline)
            except KuboError as error:
                errors.append(f"{node.node_id}: {error}")
            except (UnsupportedHash, UnsupportedCodec) as error:
                raise AttemptFailed(f"the DAG cannot be verified here: {error}", final=True) from error
        raise AttemptFailed("dag/export failed on every node: " + "; ".join(errors))

    def _check_time(self, pin: Pin, deadline: float) -> None:
        """Begin only a DAG this turn can archive at the measured speed; one
        that no whole turn could archive fails at once (no retry will fit it)."""
        size = pin.info.get("dag_size", "")
        speed_bytes = self._settings.archive_bytes_per_second
        longest = (LONGEST_TURN_SECONDS - self._settings.invocation_margin_seconds) * speed_bytes
        if size.isdigit() and int(size) > longest:
            raise AttemptFailed(
                f"too large to archive in one turn: {format_bytes(int(size))} > {format_bytes(longest)}", final=True
            )
        seconds_left = deadline - time.monotonic()
        if seconds_left <= 0:
            raise AttemptFailed("no time left in this turn")
        if size.isdigit() and int(size) > seconds_left * speed_bytes:
            speed = format_bytes(speed_bytes)
            raise AttemptFailed(
                f"the DAG ({format_bytes(int(size))}) takes longer to archive at {speed}/s"
                f" than the {seconds_left:.0f} s a turn has left"
            )

    def _upload_from(self, node: Node, cid: str, deadline: float) -> ArchivedCar:
        car_key, index_key = archive_keys(self._settings.archive_prefix, cid)
        sha256, commp = hashlib.sha256(), CommP()
        upload = MultipartUpload(self._s3, self._bucket, car_key, self._part_bytes, tagging=CAR_TAGGING)
        try:
            with self._kubo(node).dag_export(cid, seconds=max(0.0, deadline - time.monotonic())) as export:
                for chunk in export:
                    sha256.update(chunk)
                    commp.update(chunk)
                    upload.write(chunk)
            # The loop ended cleanly: the whole DAG, every block verified.
            self._s3.put_object(Bucket=self._bucket, Key=index_key, Body=export.index.to_bytes())
            upload.complete()
        except BaseException:
            upload.abort()
            raise
        piece = commp.digest()
        return ArchivedCar(
            car_key=car_key,
            index_key=index_key,
            car_bytes=export.car_bytes,
            car_sha256=sha256.hexdigest(),
            piece_cid_v1=piece.cid_v1,
            piece_cid_v2=piece.cid_v2,
            padded_size=piece.padded_size,
            archived_ms=self._clock(),
        )

    def _fail(self, cid: str, token: str, reason: str) -> None:
        if self._archives.record_failure(cid, token, reason, failed=True):
            self._failed(cid, reason)

    def _failed(self, cid: str, reason: str) -> None:
        logger.error("archive failed", extra={"cid": cid, "reason": reason})
        if self._metrics is not None:
            emit_archive_failed(self._settings.stage, self._metrics)

    # -- info ------------------------------------------------------------------

    def _show(self, message: ArchiveRequested, state: ArchiveState, meta: Mapping[str, str]) -> Outcome:
        if self._copies is not None and state.state == ARCHIVED:
            # Archived now, or held once it was: the request's Filecoin copies are wanted.
            self._copies.held(message.cid, message.tenant_id, message.request_id, meta)
        if self._write_info(message, cold_info(state)):
            return Done()
        return Later(self._settings.continue_delay_seconds, "the pin kept changing while its archive was shown")

    def _current(self, message: ArchiveRequested) -> Pin | None:
        pin = self._store.get(message.tenant_id, message.created_ms)
        return pin if pin is not None and pin.request_id == message.request_id else None

    def _write_info(self, message: ArchiveRequested, cold: Mapping[str, str]) -> bool:
        """Merge `cold` into the request's `info` (a pinned request's only:
        cold states never change its status); False when the pin kept changing."""
        return merge_info(self._store, message.tenant_id, message.created_ms, message.request_id, COLD_KEYS, cold)


def merge_info(
    store: PinRepository,
    tenant_id: str,
    created_ms: int,
    request_id: str,
    owned: tuple[str, ...],
    values: Mapping[str, str],
) -> bool:
    """Put `values` in place of the `owned` keys of a pinned request's `info`
    (the archive's, the Filecoin copies': they never change its status);
    False when the pin kept changing. A request gone or not pinned: True."""
    for _ in range(STALE_ATTEMPTS):
        pin = store.get(tenant_id, created_ms)
        if pin is None or pin.request_id != request_id or pin.status != "pinned":
            return True
        info = {key: value for key, value in pin.info.items() if key not in owned}
        info.update(values)
        if info == dict(pin.info):
            return True
        try:
            store.update(pin, info=info)
        except StaleRecord:
            continue
        return True
    return False


def emit_archive_failed(stage: str, out: TextIO) -> None:
    """One failed archive as a CloudWatch embedded-metric line."""
    emit_metrics({"ArchiveFailed": (1, "Count")}, stage, out)
