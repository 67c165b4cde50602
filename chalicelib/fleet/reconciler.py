"""The fleet reconciler: what each node pins, compared with the holds
recorded for it, and repaired both ways.

Like IPFS Cluster's recover loop, it runs on a schedule, but it also looks
the other way. Each run takes every healthy node at once (a node that does
not answer is skipped; the others go on) and, per node, within its bounds:

- **Holds -> Kubo (missing).** A page of the node's holders (the node index)
  at a time from the node's cursor; a held CID Kubo does not pin is owed when
  one of its holders is a `pinned` request naming the node among its
  replicas (a request still pinning, or re-replicating to the node, is its
  worker's business). It is pinned again through the worker's pin path,
  dialing the request's other replicas, within the run's time: a repair left
  unfinished is kept in the cursor and tried first next run. (The hold is
  read again just before; a release landing between that read and the pin
  leaves a pin no hold covers, which the other side takes back.) With a
  cold tier, the other replicas are asked first whether they still pin it:
  when none does and the CID has an archive, it is restored from the
  archive (chalicelib.cold.restorer) and the request's `info` says so (or
  says it waits for the archive's thaw: the repair stays for the next runs).
  A CAR too large for the run's time is handed off to a `restore` message
  (`hand_off`: the archive function's 15-minute turns), one per request
  however many nodes miss it; the repair stays until the node pins it.
- **Kubo -> holds (leaked).** Kubo's recursive pins, streamed from the
  position the last run reached; each is tallied (its state and its holder
  items, strongly consistent). A count that disagrees with its holder items
  is corrected. A pin with no hold is noted unheld, at the pin's `changes`;
  only a later run that finds it still so, with no hold taken or given up
  since and the grace period past, unpins it, under a removal lease taken in
  the same conditional write. A pin in progress always holds its hold (the
  worker takes it before pinning), a hold being taken meanwhile moves the
  changes, and a worker finding the lease waits as it waits for any
  removal: the reconciler never races a pin, a replace or a re-replication.
- **Orphaned holds.** Each holder of those pages whose request is gone or
  failed (its unpin, or the release after a failure, was lost: a worker
  always lets such holds go) is noted on its hold. Only a run that finds it
  still so, the same hold noted, `pin_deadline + grace` after the note, lets
  it go, through the workers' release (PinHolds): the pin is removed when it
  was the last holder, under the removal lease. The wait is for a replace:
  the request it replaced is gone at once, but its holds stay until the new
  one is pinned or failed, at most the pin deadline after the replace (which
  was before the note), then a turn and a redelivery. A run that finds the
  request back forgets the note; a hold given up and taken again is noted anew.

Both sides' progress (the holders' cursor, the listing's position) is saved
per node, so a node with more pins than a run covers is gone over in several.
The listing's position is an index into Kubo's order (its pin index, by
CID), moved up by the pins a run removes: pins others add or remove
meanwhile may shift a few past this pass, never past the next.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from itertools import groupby, islice
from typing import Protocol, TextIO

from chalicelib.cold.restorer import LongRestore, Restorer, copy_or_restore, hand_off, restored_details
from chalicelib.fleet.hold_repository import Cursor, Holder, Lease
from chalicelib.fleet.holds import PinHolds
from chalicelib.fleet.node import Node
from chalicelib.fleet.reconcile_repository import ReconcileCursor, ReconcileRepository, Sighting
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.kubo.errors import KuboError
from chalicelib.metrics import emit_metrics
from chalicelib.pins.cids import InvalidCid, parse_cid
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import PinRepository, StaleRecord
from chalicelib.pins.request_ids import created_ms_of
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import RestoreRequested

logger = logging.getLogger("pinning.fleet")

# Holders per Query of the node index.
PAGE = 100
# Unfinished repairs a node's cursor keeps; while it is full, no more holds are compared.
MAX_REPAIRS = 100
# The reconciler's removal lease: one pin/rm, which the client's timeout bounds.
LEASE_SECONDS = 5 * 60

# The worker's pin path (PinWorker.copy_to): pin a CID on a node, dialing
# sources first, before a deadline (time.monotonic()).
CopyTo = Callable[[Node, str, Sequence[str], float], None]


class NodePins(Protocol):
    """What the reconciler asks of a node (chalicelib.kubo.client.KuboClient)."""

    def is_pinned(self, cid: str) -> bool: ...

    def recursive_pins(self) -> Generator[str, None, None]: ...

    def pin_rm(self, cid: str) -> None: ...

    def dag_size(self, cid: str) -> int: ...


@dataclass
class ReconcileReport:
    """What a run found and did (summed over the nodes)."""

    nodes: int = 0
    # Nodes not gone over: unhealthy at the last check, or failing to answer now.
    skipped: int = 0
    missing_found: int = 0
    repaired: int = 0
    # Pins seen with no hold (each run that sees one counts it).
    leaked_found: int = 0
    reclaimed: int = 0
    # Kubo's size of each reclaimed DAG (dag/stat, from the node's blocks):
    # what the node's next GC frees at most (blocks other pins share stay).
    bytes_reclaimed: int = 0
    counts_corrected: int = 0
    # Holds of requests gone or failed (each run that sees one counts it), and those let go.
    orphans_found: int = 0
    orphans_released: int = 0

    def add(self, other: ReconcileReport) -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# CloudWatch metric name and unit of each of the report's counts (infra/ alarms on some).
METRICS = {
    "missing_found": ("MissingPinsFound", "Count"),
    "repaired": ("MissingPinsRepaired", "Count"),
    "leaked_found": ("LeakedPinsFound", "Count"),
    "reclaimed": ("LeakedPinsReclaimed", "Count"),
    "bytes_reclaimed": ("BytesReclaimed", "Bytes"),
    "counts_corrected": ("HolderCountsCorrected", "Count"),
    "orphans_found": ("OrphanHoldsFound", "Count"),
    "orphans_released": ("OrphanHoldsReleased", "Count"),
    "skipped": ("ReconcilerSkippedNodes", "Count"),
}


def emit_reconcile_metrics(report: ReconcileReport, stage: str, out: TextIO) -> None:
    """The run's counts as one CloudWatch embedded-metric line."""
    values = report.as_dict()
    emit_metrics({name: (values[field], unit) for field, (name, unit) in METRICS.items()}, stage, out)


class FleetReconciler:
    def __init__(
        self,
        registry: NodeRegistry,
        holds: PinHolds,
        pins: ReconcileRepository,
        store: PinRepository,
        kubo: Callable[[Node], NodePins],
        copy_to: CopyTo,
        *,
        grace_seconds: int,
        pin_deadline_seconds: int,
        pins_per_run: int,
        clock: Callable[[], int] = now_ms,
        release_archive: Callable[[str, str, str], None] | None = None,
        restorer: Restorer | None = None,
        hand_off: Callable[[RestoreRequested], None] | None = None,
    ) -> None:
        self.registry = registry
        self.holds = holds
        self.pins = pins
        self.store = store
        self.kubo = kubo
        self.copy_to = copy_to
        self.grace_ms = grace_seconds * 1000
        # How long a hold stays orphaned before it goes (see the module's docstring).
        self.orphan_wait_ms = (pin_deadline_seconds + grace_seconds) * 1000
        self.pins_per_run = pins_per_run
        self.clock = clock
        # The cold tier's hold of a request (cid, tenant, request), let go with
        # its orphaned hot holds; None when the stage keeps no archives.
        self.release_archive = release_archive
        # Restores from the cold archive what no replica holds any more; None without a cold tier.
        self.restorer = restorer
        # Sends a restore too long for a run to the long turns; None: the repair waits for a longer run.
        self.hand_off = hand_off

    def run(self, deadline: float) -> ReconcileReport:
        """One bounded run over every node, done by `deadline` (time.monotonic())."""
        fleet = self.registry.nodes(fresh=True)
        healthy = [node for node in fleet if node.healthy]
        report = ReconcileReport(nodes=len(fleet), skipped=len(fleet) - len(healthy))
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(healthy)))) as pool:
            for found in pool.map(lambda node: _NodeRun(self, node, fleet, deadline).run(), healthy):
                report.add(found)
        return report


class _NodeRun:
    """One run's work on one node."""

    def __init__(self, reconciler: FleetReconciler, node: Node, fleet: Sequence[Node], deadline: float) -> None:
        self.r = reconciler
        self.node = node
        self.fleet = fleet
        self.kubo = reconciler.kubo(node)
        self.deadline = deadline
        # Comparing takes at most half the run (and at least a page and a
        # pin: the function's margin covers them); repairs have the rest.
        self.compare_until = time.monotonic() + (deadline - time.monotonic()) / 2
        self.report = ReconcileReport()

    def run(self) -> ReconcileReport:
        node_id = self.node.node_id
        try:
            cursor = self.r.pins.cursor(node_id)
            repairs, held_after = list(cursor.repairs), cursor.held_after
            if len(repairs) < MAX_REPAIRS:
                found, held_after = self._compare_held(cursor.held_after, MAX_REPAIRS - len(repairs))
                repairs += [holder for holder in found if holder not in repairs]
            listed = self._compare_listed(cursor.listed)
            # Saved before repairing: a run cut short still tries them next time.
            self.r.pins.save_cursor(node_id, ReconcileCursor(held_after, listed, tuple(repairs)))
            unfinished = self._repair(repairs)
            if unfinished != repairs:
                self.r.pins.save_cursor(node_id, ReconcileCursor(held_after, listed, tuple(unfinished)))
        except KuboError as error:
            # Whatever was done stands; the node's cursor stays where it was.
            logger.warning("reconciler skipped a node", extra={"node_id": node_id, "error": str(error)})
            self.report.skipped += 1
        return self.report

    def _more_time(self) -> bool:
        return time.monotonic() < self.compare_until

    # -- holds -> Kubo: missing ------------------------------------------------

    def _compare_held(self, after: Cursor | None, room: int) -> tuple[list[Holder], Cursor | None]:
        """Owed pins Kubo lacks (pages stop once `room` are found), from
        pages of the node's holders; and where the next run goes on (None:
        from the start, a pass is over)."""
        owed: list[Holder] = []
        compared = 0
        # At least one page a run, however short its time: every pass ends.
        while compared < self.r.pins_per_run and len(owed) < room and (not compared or self._more_time()):
            limit = min(PAGE, self.r.pins_per_run - compared)
            page, after = self.r.holds.holders_on(self.node.node_id, after, limit)
            compared += len(page)
            # One read of each holder's request, for both questions asked of it.
            requests = {holder: self._request(holder) for holder in page}
            for cid_key, holders in groupby(page, key=lambda holder: holder.cid_key):
                if not self.kubo.is_pinned(cid_key):
                    owing = next((h for h in holders if self._owed_here(requests[h]) is not None), None)
                    owed += [owing] if owing is not None else []
            if page:
                self._compare_orphans(requests)
            if after is None:
                break
        return owed, after

    def _request(self, holder: Holder) -> Pin | None:
        """The holder's request, if it still exists (not another request of its millisecond)."""
        created_ms = created_ms_of(holder.request_id)
        pin = None if created_ms is None else self.r.store.get(holder.tenant_id, created_ms)
        return pin if pin is not None and pin.request_id == holder.request_id else None

    def _owed_here(self, pin: Pin | None) -> Pin | None:
        """The request, when it is pinned with this node among its replicas."""
        if pin is None or pin.status != "pinned":
            return None
        return pin if self.node.node_id in pin.info.get("replicas", "").split(",") else None

    # -- orphaned holds --------------------------------------------------------

    def _compare_orphans(self, requests: dict[Holder, Pin | None]) -> None:
        """Note, forget or let go of the page's holds by whether their
        requests (as just read) are gone or failed."""
        node_id = self.node.node_id
        noted = self.r.pins.orphans(node_id, list(requests))
        now = self.r.clock()
        for holder, pin in requests.items():
            since = noted.get(holder)
            if pin is not None and pin.status != "failed":
                if since is not None:
                    self.r.pins.forget_orphan(node_id, holder)  # back: a later orphaning waits anew
                continue
            self.report.orphans_found += 1
            if since is None:
                self.r.pins.note_orphan(node_id, holder, now)
            elif now - since >= self.r.orphan_wait_ms:
                self._release_orphan(holder, since)

    def _release_orphan(self, holder: Holder, since_ms: int) -> None:
        """Give up the hold as its request's worker would; unpin when it was the last."""
        node_id, cid_key = self.node.node_id, holder.cid_key
        token = f"reconciler-{uuid.uuid4()}"
        # False also when a worker let it go at the same moment: the hold is gone all the same.
        last = self.r.holds.release(node_id, cid_key, holder.tenant_id, holder.request_id, token)
        if self.r.release_archive is not None:
            # The request is gone: its archive hold too (idempotent, once per request however many nodes).
            self.r.release_archive(cid_key, holder.tenant_id, holder.request_id)
        self.report.orphans_released += 1
        size = 0
        if last:
            size = self._size(cid_key)
            # A failing pin/rm leaves the lease to expire, then the pin to the leaked side.
            self.kubo.pin_rm(cid_key)
            self.r.holds.released(node_id, cid_key, token)
            self.report.bytes_reclaimed += size
        logger.warning(
            "orphaned hold released",
            extra={
                "node_id": node_id,
                "cid": cid_key,
                "tenant_id": holder.tenant_id,
                "request_id": holder.request_id,
                "orphaned_since_ms": since_ms,
                "unpinned": last,
                "dag_size": size,
            },
        )

    def _repair(self, repairs: list[Holder]) -> list[Holder]:
        """Pin what is owed, in the run's time; the repairs left unfinished."""
        unfinished = []
        for holder in repairs:
            if time.monotonic() >= self.deadline or not self._repair_one(holder):
                unfinished.append(holder)
        return unfinished

    def _repair_one(self, holder: Holder) -> bool:
        """False when the pin is still owed and missing."""
        node_id, cid_key = self.node.node_id, holder.cid_key
        pin = self._owed_here(self._request(holder))
        if pin is None or not self.r.holds.holding(node_id, cid_key, holder.tenant_id, holder.request_id):
            return True  # no longer owed (deleted, replaced, moved)
        if self.kubo.is_pinned(cid_key):
            return True
        self.report.missing_found += 1
        replicas = pin.info["replicas"].split(",")
        others = [node for node in self.fleet if node.node_id in replicas and node.node_id != node_id]
        done = copy_or_restore(
            self.r.restorer,
            cid_key,
            [self.node],
            others,
            (),
            self.deadline,
            lambda node, sources: self.r.copy_to(node, cid_key, sources, self.deadline),
        )
        context = {"node_id": node_id, "cid": cid_key, "request_id": holder.request_id}
        if isinstance(done.wait, LongRestore) and self.r.hand_off is not None:
            self._hand_off(pin, done.wait, context)
            return False  # until the restore message's import makes it pinned here
        if done.wait is not None or done.errors:
            # A node's, S3's or the archive's error alike: this node's other repairs go on.
            why = done.wait.details if done.wait is not None else str(done.errors[0])
            if done.wait is not None:
                self._note(pin, why)
            logger.warning("missing pin not repaired yet; tried again next run", extra={**context, "error": why})
            return False
        self.report.repaired += 1
        if done.restored:
            self._note(pin, restored_details(done.restored))
        logger.warning("missing pin repaired", extra={**context, "restored": bool(done.restored)})
        return True

    def _hand_off(self, pin: Pin, wait: LongRestore, context: dict[str, str]) -> None:
        """Send the request's restore to a long turn, unless one is in flight:
        of the nodes' runs reading the same pin, the one whose note is written sends."""
        assert self.r.hand_off is not None
        handed = hand_off(pin.info, wait, self.r.clock())
        try:
            if handed.info != dict(pin.info):
                self.r.store.update(pin, info=handed.info)
        except StaleRecord:
            return  # written meanwhile (another node's run noting it): the next run looks again
        if handed.send:
            self.r.hand_off(RestoreRequested(pin.tenant_id, pin.request_id, pin.created_ms, pin.cid_key, "repair"))
        logger.warning("missing pin handed to a long turn", extra={**context, "sent": handed.send})

    def _note(self, pin: Pin, details: str) -> None:
        """Say in the request's `info` what its repair came to (the request stays `pinned`)."""
        try:
            self.r.store.update(pin, info={**pin.info, "status_details": details})
        except StaleRecord:
            pass  # written meanwhile: whoever did said something newer

    # -- Kubo -> holds: leaked, and counts -------------------------------------

    def _compare_listed(self, start: int) -> int:
        """Compare Kubo's pins after position `start` with their holds; the
        position the next run starts from (0: a pass is over)."""
        batch, more = self._listed_after(start)
        reclaimed = self.report.reclaimed
        done = 0
        for listed in batch:
            # At least one pin a run, as above.
            if done and not self._more_time():
                break
            self._compare_pin(listed)
            done += 1
        if done == len(batch) and not more:
            return 0
        # The pins this run unpinned were before the next one: it moved up as many.
        return start + done - (self.report.reclaimed - reclaimed)

    def _listed_after(self, start: int) -> tuple[list[str], bool]:
        """The run's share of Kubo's pins after position `start`, and whether
        more follow. Read before any is compared, and the listing closed:
        Kubo releases whose pinner streams its index under its lock (boxo
        before it listed from a snapshot) make every pin and unpin on the
        node, the reconciler's own too, wait while a listing is open."""
        listing = self.kubo.recursive_pins()
        try:
            batch = list(islice(listing, start, start + self.r.pins_per_run + 1))
        finally:
            listing.close()
        return batch[: self.r.pins_per_run], len(batch) > self.r.pins_per_run

    def _compare_pin(self, listed: str) -> None:
        node_id, cid_key = self.node.node_id, _key(listed)
        tally = self.r.pins.tally(node_id, cid_key)
        if tally.holders != tally.held_by:
            if not self.r.pins.recount(node_id, cid_key, tally):
                return  # a hold came or went meanwhile: the next pass looks again
            self.report.counts_corrected += 1
            logger.warning(
                "holder count corrected",
                extra={"node_id": node_id, "cid": cid_key, "count": tally.holders, "holders": tally.held_by},
            )
            tally = replace(tally, holders=tally.held_by, changes=tally.changes + 1)
        if tally.held_by:
            return
        self.report.leaked_found += 1
        now = self.r.clock()
        if tally.lease is not None and tally.lease.active(now):
            return  # being removed (by its last holder, or a retry of that)
        if tally.unheld is None or tally.unheld.changes != tally.changes:
            # First seen unheld (or held and let go since the last sighting).
            self.r.pins.sight(node_id, cid_key, tally, now)
        elif now - tally.unheld.since_ms >= self.r.grace_ms:
            self._reclaim(listed, cid_key, tally.unheld)

    def _reclaim(self, listed: str, cid_key: str, sighting: Sighting) -> None:
        node_id = self.node.node_id
        size = self._size(listed)
        now = self.r.clock()
        token = f"reconciler-{uuid.uuid4()}"
        if not self.r.pins.take_unheld(node_id, cid_key, sighting, Lease(token, now + LEASE_SECONDS * 1000), now):
            return  # held, or being removed, since it was read
        # A failing pin/rm leaves the lease to expire, as a worker's does.
        self.kubo.pin_rm(listed)
        self.r.holds.released(node_id, cid_key, token)
        self.report.reclaimed += 1
        self.report.bytes_reclaimed += size
        logger.warning(
            "leaked pin reclaimed",
            extra={"node_id": node_id, "cid": listed, "unheld_since_ms": sighting.since_ms, "dag_size": size},
        )

    def _size(self, listed: str) -> int:
        try:
            return self.kubo.dag_size(listed)
        except KuboError:
            return 0  # unknown: the pin goes all the same


def _key(listed: str) -> str:
    """The canonical key holds use for a CID as Kubo spells it; one the
    service would refuse is nobody's, and stays as spelled."""
    try:
        return parse_cid(listed).key
    except InvalidCid:
        return listed
