"""Restores a CID from its cold archive onto fleet nodes, and the one way the
drain, the reconciler and the pin worker put a CID on a node: copied from a
live hot copy, or restored from the archive when no hot copy is left.

**No live hot copy.** The nodes that should hold the CID (a request's other
replicas, its placement nodes) are asked `pin/ls` at once; a node marked
unhealthy, or one that does not answer, holds no copy. Only when none holds
it is the archive looked at (one read of its state): an `archived` CID is
then restored rather than fetched from the network, where nothing may
provide it and a `pin/add` would only stall. Without an archive (or without
a cold tier) the copy goes as it always did: the holders and the origins
dialed, then `pin/add`.

**A restore.** The archive's CAR is streamed from S3 (never held whole)
through a `CarReader` that verifies every block against its CID, into
`dag/import` on each target node (pinning the root). Only bytes of blocks
already verified go out: the reader holds back the section it has not seen
whole. The header's root must be the CID, and the CAR must hold the whole
DAG (`DagCompleteness`) before its last bytes and the multipart body's end
are sent. Any mismatch raises inside the upload, which cuts the HTTP body:
Kubo then stores nothing it pins (its import fails on the cut body). Such a
refusal is final for the archive (`RestoreRefused`, logged, the
`RestoreFailed` metric, alarmed); the copy then falls back to the network.
Each restored node is confirmed with `pin/ls` (the `Restored` metric).

**Not now.** An archive in Deep Archive (or Flexible Retrieval) is thawed
first: reading it asks S3 for a readable copy (`ArchiveObjects`) and the
caller comes back after the announced wait, capped to SQS's 15-minute
delay, as often as it takes. A DAG whose CAR takes longer to import at
`RESTORE_BYTES_PER_SECOND` than the turn has left is not begun
(`LongRestore`). A CAR no Lambda turn (15 minutes less the margin) could
import is refused.

**A long turn.** The pin worker's turns (30 s) and the reconciler's (a
minute) never fit a CAR above ~1 GiB, however often they come back: the
drain, the reconciler and the pin path hand such a restore off to a
`restore` message (`hand_off`), which the archive function works in its
15-minute turns. One hand-off is in flight per request: the request's
`info` records when it was sent (`restore_handed_off_ms`), no other is
sent while that is fresh, and the restore message refreshes it while it
waits (a thaw) and drops it once done; a message lost for good is sent
again once its note is stale.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TextIO

from chalicelib.cold.archive_objects import ArchiveObjects, ArchiveThawing
from chalicelib.cold.archive_repository import ARCHIVED, ArchivedCar, ArchiveRepository
from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import CarError, CarReader
from chalicelib.cold.cids import BlockMismatch, UnsupportedHash, cid_from_text
from chalicelib.config import Settings
from chalicelib.fleet.node import Node
from chalicelib.kubo.client import KuboClient
from chalicelib.kubo.dag_links import DagCompleteness, DagError
from chalicelib.kubo.errors import KuboError, KuboServerError
from chalicelib.metrics import emit_metrics
from chalicelib.pins.sizes import format_bytes

logger = logging.getLogger("pinning.restorer")

# SQS delays a message 15 minutes at most: a longer wait is several.
MAX_DELAY_SECONDS = 15 * 60
# Lambda's longest run: a CAR that cannot be imported within it never will be.
LONGEST_TURN_SECONDS = 15 * 60

KuboFactory = Callable[[Node], KuboClient]
# Pins the CID on the node, dialing the multiaddrs given first (the worker's pin path).
Copy = Callable[[Node, Sequence[str]], None]
# The archive's failures that no retry mends.
_BAD_ARCHIVE = (CarError, BlockMismatch, UnsupportedHash, DagError)


class RestoreRefused(Exception):
    """The archive cannot be restored: a block that does not match its CID,
    another root, a DAG not whole, a CAR too large for any turn."""


class RestoreWait(Exception):
    """Not now: come back after `delay_seconds`; `details` says why, for `info`."""

    def __init__(self, details: str, delay_seconds: int) -> None:
        super().__init__(details)
        self.details = details
        self.delay_seconds = delay_seconds


class LongRestore(RestoreWait):
    """Not in this turn, whose time left is too short for the CAR; a long
    turn (the archive function's) imports it in about `import_seconds`."""

    def __init__(self, details: str, delay_seconds: int, car_bytes: int, import_seconds: int) -> None:
        super().__init__(details, delay_seconds)
        self.car_bytes = car_bytes
        self.import_seconds = import_seconds


def restored_details(node_ids: Sequence[str]) -> str:
    """What a request's `info.status_details` says of a restore."""
    return f"restored from the cold archive to {', '.join(node_ids)}"


# A request's `info`: when (ms) its restore was handed off to a long turn.
HANDED_OFF = "restore_handed_off_ms"
# A hand-off noted this recently is in flight: its message may wait behind a
# long turn, then run one; its thaw waits refresh the note (15 minutes apart at most).
HAND_OFF_FRESH_MS = 2 * (LONGEST_TURN_SECONDS + MAX_DELAY_SECONDS) * 1000


@dataclass(frozen=True)
class HandOff:
    """A restore handed off to a long turn: the request's `info` saying so,
    whether to send the restore message (none in flight), when to look again."""

    info: dict[str, str]
    send: bool
    delay_seconds: int
    details: str


def hand_off(info: Mapping[str, str], wait: LongRestore, now_ms: int) -> HandOff:
    """Hand `wait`'s restore to a long turn, unless a hand-off is in flight."""
    since = info.get(HANDED_OFF, "")
    send = not (since.isdigit() and now_ms - int(since) < HAND_OFF_FRESH_MS)
    details = f"restoring {format_bytes(wait.car_bytes)} from the cold archive in a long turn"
    noted = {**info, "status_details": details}
    if send:
        noted[HANDED_OFF] = str(now_ms)
    # Looked at again once the import could be over (SQS delays 15 minutes at most).
    return HandOff(noted, send, min(max(wait.import_seconds, 1), MAX_DELAY_SECONDS), details)


def verified_car(cid: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The CAR's bytes as they come, held back until the blocks they hold are
    verified; the last ones only once the CAR proved to be the whole DAG
    under `cid`. Raises RestoreRefused otherwise (before its bytes go out)."""
    root = cid_from_text(cid)
    reader = CarReader()
    dag: DagCompleteness | None = None
    pending = bytearray()
    try:
        for chunk in chunks:
            pending += chunk
            blocks = reader.feed(chunk)
            if dag is None and reader.header is not None:
                if [found.key for found in reader.header.roots] != [root.key]:
                    roots = ", ".join(str(found) for found in reader.header.roots)
                    raise RestoreRefused(f"the archive of {cid} is a CAR of other roots ({roots})")
                dag = DagCompleteness(reader.header.roots, BlockIndex())
            for block in blocks:
                assert dag is not None  # the header comes before any block
                dag.add(block.cid, block.offset, block.data)
            # What the reader still holds is a section not yet seen whole.
            ready = len(pending) - reader.bytes_held
            if ready > 0:
                yield bytes(pending[:ready])
                del pending[:ready]
        reader.close()
        missing = dag.missing if dag is not None else [root]
        if missing:
            raise RestoreRefused(f"the archive of {cid} lacks {len(missing)} block(s) of the DAG (first {missing[0]})")
    except _BAD_ARCHIVE as error:
        raise RestoreRefused(f"the archive of {cid} failed verification: {error}") from error


class Restorer:
    def __init__(
        self,
        settings: Settings,
        archives: ArchiveRepository,
        objects: ArchiveObjects,
        kubo: KuboFactory,
        metrics: TextIO | None = None,
    ) -> None:
        self._settings = settings
        self._archives = archives
        self._objects = objects
        self._kubo = kubo
        self._metrics = metrics if metrics is not None else (sys.stdout if settings.emit_metrics else None)

    def live_copies(self, cid: str, holders: Sequence[Node]) -> list[Node]:
        """The holders whose node pins `cid` now; one that is unhealthy or does not answer holds none."""
        healthy = [node for node in holders if node.healthy]
        if not healthy:
            return []
        with ThreadPoolExecutor(max_workers=len(healthy)) as pool:
            pinned = list(pool.map(lambda node: self._pins(node, cid), healthy))
        return [node for node, has in zip(healthy, pinned, strict=True) if has]

    def archive_of(self, cid: str) -> ArchivedCar | None:
        """The CID's archive, once archived."""
        state = self._archives.state(cid)
        return state.car if state is not None and state.state == ARCHIVED else None

    def check_time(self, car: ArchivedCar, deadline: float) -> None:
        """Begin only a restore the turn can finish at the measured speed."""
        speed = self._settings.restore_bytes_per_second
        longest = LONGEST_TURN_SECONDS - self._settings.invocation_margin_seconds
        if car.car_bytes > longest * speed:
            raise self._refused(
                car.car_key,
                f"too large to restore in one turn: its CAR ({format_bytes(car.car_bytes)}) takes longer to import"
                f" at {format_bytes(speed)}/s than the longest worker turn ({longest} s)",
            )
        seconds_left = deadline - time.monotonic()
        if car.car_bytes > seconds_left * speed:
            raise LongRestore(
                f"restoring from the cold archive: its CAR ({format_bytes(car.car_bytes)}) takes longer to import"
                f" at {format_bytes(speed)}/s than the {max(seconds_left, 0):.0f} s this turn has left;"
                " continuing in a new turn",
                self._settings.continue_delay_seconds,
                car.car_bytes,
                -(-car.car_bytes // speed),
            )

    def restore(self, node: Node, cid: str, car: ArchivedCar, deadline: float) -> None:
        """Import the archive's CAR into `node`, pinning its root. Raises
        RestoreRefused (a bad archive), RestoreWait (thawing), KuboError and
        S3's errors (worth a retry)."""
        started = time.monotonic()
        chunks = self._objects.car_chunks(car)
        try:
            # The first read asks S3 for a thaw when needed: before any request to the node.
            first = next(chunks, b"")
        except ArchiveThawing as thawing:
            raise RestoreWait(
                f"waiting for the cold archive to thaw ({thawing.storage_class}: S3 restores a readable copy"
                f" in about {thawing.retry_after_seconds // 3600} h)",
                min(thawing.retry_after_seconds, MAX_DELAY_SECONDS),
            ) from thawing
        kubo = self._kubo(node)
        try:
            imported = kubo.dag_import(
                verified_car(cid, _chain(first, chunks)), seconds=max(0.0, deadline - time.monotonic())
            )
        except RestoreRefused as refused:
            raise self._refused(car.car_key, str(refused)) from refused
        finally:
            if isinstance(chunks, Generator):  # hang up on S3 at once, however the import ended
                chunks.close()
        key = cid_from_text(cid).key
        if key not in {cid_from_text(root).key for root in imported.roots} or not kubo.is_pinned(cid):
            raise KuboServerError(f"dag/import of the archive of {cid} did not pin it on {node.node_id}")
        logger.warning(
            "restored from the cold archive",
            extra={
                "cid": cid,
                "node_id": node.node_id,
                "car_bytes": car.car_bytes,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        self._emit("Restored")

    def _pins(self, node: Node, cid: str) -> bool:
        try:
            return self._kubo(node).is_pinned(cid)
        except KuboError:
            return False

    def _refused(self, key: str, reason: str) -> RestoreRefused:
        logger.error("restore from the cold archive refused", extra={"key": key, "reason": reason})
        self._emit("RestoreFailed")
        return RestoreRefused(reason)

    def _emit(self, name: str) -> None:
        if self._metrics is not None:
            emit_metrics({name: (1, "Count")}, self._settings.stage, self._metrics)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


@dataclass(frozen=True)
class Replicated:
    """How `copy_or_restore` went."""

    # Per target that did not get it: what went wrong (a copy's errors, a restore's).
    errors: list[BaseException] = field(default_factory=list)
    # The targets restored from the cold archive.
    restored: list[str] = field(default_factory=list)
    # The holders found pinning it; None when nobody asked (no cold tier).
    live: list[Node] | None = None
    # Not now (a thaw, the turn's time): nothing was copied.
    wait: RestoreWait | None = None
    # The archive could not be restored: the targets were copied from the network instead.
    refused: RestoreRefused | None = None


def copy_or_restore(
    restorer: Restorer | None,
    cid: str,
    targets: Sequence[Node],
    holders: Sequence[Node],
    origins: Sequence[str],
    deadline: float,
    copy: Copy,
) -> Replicated:
    """Put `cid` on every target at once: copied (`copy`, dialing the live
    holders then `origins`), or restored from the archive when no holder
    pins it. Targets found pinning it already are left as they are."""
    if restorer is None:
        sources = [address for node in holders for address in node.multiaddrs] + list(origins)
        return Replicated(_failures(_each(targets, lambda node: copy(node, sources))))
    live = restorer.live_copies(cid, list({node.node_id: node for node in [*holders, *targets]}.values()))
    live_ids = {node.node_id for node in live}
    missing = [node for node in targets if node.node_id not in live_ids]
    car = restorer.archive_of(cid) if missing and not live else None
    refused = None
    if car is not None:
        restored = _restore_each(restorer, cid, car, missing, deadline)
        if not isinstance(restored, RestoreRefused):
            return replace(restored, live=live)
        refused = restored
    sources = [address for node in live for address in node.multiaddrs] + list(origins)
    return Replicated(_failures(_each(missing, lambda node: copy(node, sources))), live=live, refused=refused)


def _restore_each(
    restorer: Restorer, cid: str, car: ArchivedCar, targets: Sequence[Node], deadline: float
) -> Replicated | RestoreRefused:
    """Restore on every target at once. A wait or a refusal (the same archive
    on every target) stands for all; a refusal is returned, for the copy to
    fall back to the network."""
    try:
        restorer.check_time(car, deadline)
    except RestoreWait as wait:
        return Replicated(wait=wait)
    except RestoreRefused as refused:
        return refused
    errors = _each(targets, lambda node: restorer.restore(node, cid, car, deadline))
    for error in errors:
        if isinstance(error, (RestoreWait, RestoreRefused)):
            return Replicated(wait=error) if isinstance(error, RestoreWait) else error
    restored = [node.node_id for node, error in zip(targets, errors, strict=True) if error is None]
    return Replicated(_failures(errors), restored=restored)


def _failures(errors: list[BaseException | None]) -> list[BaseException]:
    return [error for error in errors if error is not None]


def _each(targets: Sequence[Node], work: Callable[[Node], None]) -> list[BaseException | None]:
    """`work` on every target at once; per target, what went wrong (None: nothing)."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = [pool.submit(work, node) for node in targets]
        return [future.exception() for future in futures]
