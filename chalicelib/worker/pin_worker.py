"""Turns queue messages into pins held on the right Kubo nodes.

Every step is safe to repeat: a message may arrive twice, a worker may die
between Kubo's answer and the database write, and the next delivery of the
message (SQS hands a dead worker's messages out again; the outbox sweep
re-sends any that were never sent) picks up from what the nodes and the
table say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from chalicelib.config import Settings
from chalicelib.fleet.holds import PinHolds
from chalicelib.fleet.placement import place, usable
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.kubo.client import KuboClient
from chalicelib.kubo.errors import KuboError, KuboRequestError, KuboServerError, PinInterrupted
from chalicelib.pins.multiaddrs import parse_peer_multiaddr
from chalicelib.pins.sizes import format_bytes
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import DrainNode, PinRequested, QueueMessage, ReleasedPin, Rereplicate, UnpinRequested
from chalicelib.storage.node_record import NodeRecord
from chalicelib.storage.pin_record import PinRecord, plain_map
from chalicelib.storage.pin_store import PinStore, StaleRecord
from chalicelib.worker.drain import Drainer
from chalicelib.worker.outcomes import Done, Later, Outcome

logger = logging.getLogger("pinning.worker")

# Progress is written at most this often per pin: each write is a DynamoDB
# transaction (2 write units per KiB of the pin's item)...
_PROGRESS_INTERVAL_S = 5.0
# ...and the first only this long after the fetch began: a pin done sooner
# costs no progress write, and one that takes longer shows its progress soon.
# A pin fetched for T > 1 s thus costs 1 + (T - 1) / 5 writes.
_FIRST_PROGRESS_S = 1.0
_CONTINUING = "; continuing shortly"


KuboFactory = Callable[[NodeRecord], KuboClient]


class PinWorker:
    def __init__(
        self,
        settings: Settings,
        store: PinStore,
        registry: NodeRegistry,
        holds: PinHolds,
        kubo: KuboFactory,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self._holds = holds
        self._kubo = kubo
        self._clock = clock
        self._node_slots: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(settings.node_concurrency)
        )
        self._slots_lock = threading.Lock()
        self._drainer = Drainer(settings, store, registry, holds, self.copy_to, self._release, self._origins, clock)

    def handle(self, message: QueueMessage, token: str, deadline: float) -> Outcome:
        """Do the message's work before `deadline` (time.monotonic()).

        `token` identifies this message across redeliveries. Raises on
        faults worth a retry (node unreachable, Kubo errors).
        """
        if isinstance(message, UnpinRequested):
            self._release(message.cid, message.node_ids, message.tenant_id, message.request_id, token)
            return Done()
        if isinstance(message, DrainNode):
            return self._drainer.drain(message)
        if isinstance(message, Rereplicate):
            return self._drainer.rereplicate(message, token, deadline)
        try:
            return self._pin(message, token, deadline)
        except KuboError as error:
            self._note(message, f"retrying after a storage node error: {error}")
            raise

    def give_up(self, message: QueueMessage, token: str) -> None:
        """A message that failed every delivery (read from the dead-letter queue)."""
        if isinstance(message, UnpinRequested):
            logger.error(
                "unpin abandoned; the node keeps the content until an operator removes it",
                extra={"request_id": message.request_id, "cid": message.cid, "node_ids": list(message.node_ids)},
            )
            return
        if isinstance(message, (DrainNode, Rereplicate)):
            self._drainer.give_up(message)
            return
        record = self._store.get(message.tenant_id, message.created_ms)
        if record is None or record.request_id != message.request_id:
            try:  # deleted or replaced: nothing may stay pinned for it, or for what it replaced
                self._pin(message, token, time.monotonic())
            except KuboError:
                logger.exception("could not release a vanished pin's holds", extra={"request_id": message.request_id})
            return
        if record.status in ("pinned", "failed"):
            return
        last = plain_map(record.info).get("status_details")
        reason = "gave up after repeated storage node errors" + (f" (last: {last})" if last else "")
        try:
            self._fail(record, message, token, reason)
        except KuboError:
            logger.exception("could not release a failed pin's holds", extra={"request_id": message.request_id})

    def _note(self, message: PinRequested, details: str) -> None:
        record = self._store.get(message.tenant_id, message.created_ms)
        if record is None or record.request_id != message.request_id or record.status in ("pinned", "failed"):
            return
        try:
            self._store.set_status(record, record.status, {**plain_map(record.info), "status_details": details})
        except StaleRecord:
            pass

    # -- pinning -------------------------------------------------------------

    def _pin(self, message: PinRequested, token: str, deadline: float) -> Outcome:
        record = self._store.get(message.tenant_id, message.created_ms)
        if record is None or record.request_id != message.request_id:
            return self._forget(message, token)
        if record.status in ("pinned", "failed"):
            self._release_replaced(message, token)
            return Done()
        if self._past_deadline(record):
            last = plain_map(record.info).get("status_details")
            return self._fail(record, message, token, self._deadline_reason(record, last))
        targets = self._targets(message.cid)
        if len(targets) < self._settings.replication_factor:
            details = (
                f"waiting for {self._settings.replication_factor} healthy storage nodes ({len(targets)} available)"
            )
            return self._wait(record, message, token, details)
        pinning = self._start_pinning(record, message, targets)
        if pinning is None:
            return self._pin(message, token, deadline)  # re-read: deleted, or moved by another delivery
        busy = self._hold(targets, message)
        if busy is not None:
            return busy
        progress = _Progress(self._store, pinning, self._clock)
        unfinished = self._copy_everywhere(targets, message, token, deadline, progress)
        if unfinished is not None:
            return unfinished
        return self._record_pinned(progress.record, message, token, deadline, targets)

    def _forget(self, message: PinRequested, token: str) -> Outcome:
        """Deleted or replaced meanwhile: take back whatever we held for it,
        and any pin this message made on Kubo after its hold was let go."""
        nodes = sorted({*message.node_ids, *(node.node_id for node in self._targets(message.cid))})
        self._release(message.cid, nodes, message.tenant_id, message.request_id, token, force=True)
        self._release_replaced(message, token)
        return Done()

    def _start_pinning(
        self, record: PinRecord, message: PinRequested, targets: Sequence[NodeRecord]
    ) -> PinRecord | None:
        """The record moved to `pinning` on `targets` (and the nodes it was on
        before); None when it changed since it was read."""
        node_ids = sorted({*record.node_ids, *(node.node_id for node in targets)})
        was = record.status
        try:
            pinning = self._store.set_status(record, "pinning", {"status_details": "fetching"}, node_ids=node_ids)
        except StaleRecord:
            return None
        if was != "pinning":
            logger.info("pinning", extra={"request_id": message.request_id, "cid": message.cid, "nodes": node_ids})
        return pinning

    def _hold(self, targets: Sequence[NodeRecord], message: PinRequested) -> Outcome | None:
        """Take this request's hold on the CID on every target; Later while a
        node is still removing the CID for its last former holder."""
        for node in targets:
            if not self._holds.hold(node.node_id, message.cid, message.tenant_id, message.request_id):
                return Later(self._settings.continue_delay_seconds, f"{node.node_id} is still removing {message.cid}")
        return None

    def _copy_everywhere(
        self,
        targets: Sequence[NodeRecord],
        message: PinRequested,
        token: str,
        deadline: float,
        progress: _Progress,
    ) -> Outcome | None:
        """Pin on every target at once; None once all hold it, else what comes next."""
        origins = self._origins(message.origins)
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            futures = [pool.submit(self._pin_on, node, message, origins, deadline, progress) for node in targets]
            errors = [error for error in (future.exception() for future in futures) if error is not None]
        refused = [error for error in errors if isinstance(error, KuboRequestError)]
        if refused:
            # Kubo refused the CID itself: no retry will change that.
            return self._fail(progress.record, message, token, f"the node refused the CID: {refused[0]}")
        faults = [error for error in errors if not isinstance(error, PinInterrupted)]
        if faults:
            raise faults[0]
        if errors:  # stalled, or cut short by the invocation's deadline: continue later
            return self._wait(progress.record, message, token, progress.details(waiting=True))
        return None

    def _record_pinned(
        self, record: PinRecord, message: PinRequested, token: str, deadline: float, targets: Sequence[NodeRecord]
    ) -> Outcome:
        dag_size = self._kubo(targets[0]).dag_size(message.cid)
        replicas = [node.node_id for node in targets]
        info = {
            "dag_size": str(dag_size),
            "replicas": ",".join(replicas),
            "status_details": f"pinned on {len(targets)} nodes",
        }
        try:
            self._store.set_status(record, "pinned", info)
        except StaleRecord:
            return self._pin(message, token, deadline)
        logger.info("pinned", extra={"request_id": message.request_id, "cid": message.cid, "dag_size": dag_size})
        # Nodes that held it before a re-placement no longer need to.
        moved = [node_id for node_id in record.node_ids if node_id not in replicas]
        self._release(message.cid, moved, message.tenant_id, message.request_id, token)
        self._release_replaced(message, token)
        return Done()

    def _pin_on(
        self, node: NodeRecord, message: PinRequested, origins: Sequence[str], deadline: float, progress: _Progress
    ) -> None:
        def update_first(kubo: KuboClient) -> None:
            replaced = message.replaces
            if (
                replaced
                and node.node_id in replaced.node_ids
                and replaced.cid != message.cid
                and kubo.is_pinned(replaced.cid)
            ):
                # Walks only what the new version adds; the old pin stays (and
                # protects the shared blocks) until its last holder lets go.
                budget = min(self._settings.stall_seconds, deadline - time.monotonic())
                try:
                    kubo.pin_update(replaced.cid, message.cid, seconds=budget)
                except KuboServerError:
                    logger.info("pin/update gave up; pin/add continues", extra={"cid": message.cid})

        self.copy_to(
            node,
            message.cid,
            origins,
            deadline,
            on_progress=lambda blocks, size: progress.report(node.node_id, blocks, size),
            before=update_first,
        )

    def copy_to(
        self,
        node: NodeRecord,
        cid: str,
        sources: Sequence[str],
        deadline: float,
        on_progress: Callable[[int, int], None] | None = None,
        before: Callable[[KuboClient], None] | None = None,
    ) -> None:
        """Pin `cid` on `node`, dialing `sources` (multiaddrs) first; `before`
        runs on the node's client after the dials."""
        kubo = self._kubo(node)
        with self._slot(node.node_id):
            with ThreadPoolExecutor(max_workers=max(1, len(sources))) as dials:
                list(dials.map(kubo.swarm_connect, sources))
            if before is not None:
                before(kubo)
            kubo.pin_add(cid, stall_seconds=self._settings.stall_seconds, deadline=deadline, on_progress=on_progress)

    def _slot(self, node_id: str) -> threading.BoundedSemaphore:
        with self._slots_lock:
            return self._node_slots[node_id]

    def _targets(self, cid_key: str) -> list[NodeRecord]:
        minimum = self._settings.min_free_bytes
        # Filtered first: unlike the API, the worker waits rather than fall back.
        fit = [node for node in self._registry.nodes() if usable(node, minimum)]
        return place(cid_key, fit, self._settings.replication_factor, minimum)

    def _origins(self, origins: Sequence[str]) -> list[str]:
        if self._settings.allow_private_origins:
            return list(origins)
        # Our nodes must not become a way to probe private networks.
        return [origin for origin in origins if parse_peer_multiaddr(origin).is_public]

    def _past_deadline(self, record: PinRecord) -> bool:
        return self._clock() > record.created_ms + self._settings.pin_deadline_seconds * 1000

    def _wait(self, record: PinRecord, message: PinRequested, token: str, details: str) -> Outcome:
        if self._past_deadline(record):
            return self._fail(record, message, token, self._deadline_reason(record, details))
        try:
            self._store.set_status(record, record.status, {**plain_map(record.info), "status_details": details})
        except StaleRecord:
            pass  # the next delivery re-reads it
        return Later(self._settings.continue_delay_seconds, details)

    def _fail(self, record: PinRecord, message: PinRequested, token: str, reason: str) -> Outcome:
        try:
            self._store.set_status(record, "failed", {"failed_reason": reason, "status_details": reason})
        except StaleRecord:
            return Done()
        logger.info("failed", extra={"request_id": message.request_id, "cid": message.cid, "reason": reason})
        self._release(message.cid, record.node_ids, message.tenant_id, message.request_id, token)
        self._release_replaced(message, token)
        return Done()

    def _deadline_reason(self, record: PinRecord, last: str | None = None) -> str:
        seconds = self._settings.pin_deadline_seconds
        within = f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds} seconds"
        reason = f"not pinned within {within} of the request"
        if last:
            reason += f" (last: {last.removesuffix(_CONTINUING)})"
        return reason

    # -- releasing -----------------------------------------------------------

    def _release_replaced(self, message: PinRequested, token: str) -> None:
        replaced: ReleasedPin | None = message.replaces
        if replaced is not None:
            self._release(replaced.cid, replaced.node_ids, message.tenant_id, replaced.request_id, token)

    def _release(
        self, cid: str, node_ids: Sequence[str], tenant_id: str, request_id: str, token: str, force: bool = False
    ) -> None:
        nodes = {node.node_id: node for node in self._registry.nodes()}
        for node_id in node_ids:
            if not self._holds.release(node_id, cid, tenant_id, request_id, token, force=force):
                continue
            node = nodes.get(node_id)
            if node is not None:  # a node removed from the fleet took its pins with it
                with self._slot(node_id):
                    self._kubo(node).pin_rm(cid)
            self._holds.released(node_id, cid, token)


class _Progress:
    """Shows fetch progress in `info.status_details`, written sparingly (see
    _PROGRESS_INTERVAL_S): the furthest any node got, in blocks and bytes."""

    def __init__(self, store: PinStore, record: PinRecord, clock: Callable[[], int]) -> None:
        self._store = store
        self.record = record
        self._clock = clock
        self._by_node: dict[str, tuple[int, int]] = {}
        self._due_ms = clock() + 1000 * min(_FIRST_PROGRESS_S, _PROGRESS_INTERVAL_S)
        self._lock = threading.Lock()

    def report(self, node_id: str, blocks: int, size: int) -> None:
        with self._lock:
            self._by_node[node_id] = (blocks, size)
            now = self._clock()
            if now < self._due_ms:
                return
            self._due_ms = now + 1000 * _PROGRESS_INTERVAL_S
            try:
                self.record = self._store.set_status(self.record, "pinning", {"status_details": self.details()})
            except StaleRecord:
                pass  # deleted meanwhile: the final write will notice

    def details(self, waiting: bool = False) -> str:
        if not self._by_node:
            text = "looking for providers"
        else:
            blocks = max(blocks for blocks, _ in self._by_node.values())
            size = max(size for _, size in self._by_node.values())
            # Kubo before 0.40 reports no bytes (see KuboClient.pin_add).
            text = f"fetched {blocks:,} blocks, {format_bytes(size)}" if size else f"fetched {blocks:,} blocks"
        return f"{text}{_CONTINUING}" if waiting else text
