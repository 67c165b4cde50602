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
from dataclasses import replace
from typing import TYPE_CHECKING

from chalicelib.cold.restorer import HANDED_OFF, LongRestore, Replicated, copy_or_restore, restored_details
from chalicelib.cold.tiers import COLD_OFF
from chalicelib.config import Settings
from chalicelib.fleet.hold_repository import Hold
from chalicelib.fleet.holds import PinHolds
from chalicelib.fleet.node import Node
from chalicelib.fleet.placement import place, usable
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.kubo.client import KuboClient
from chalicelib.kubo.errors import KuboError, KuboRequestError, KuboServerError, PinCancelled, PinInterrupted
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import PinRepository, StaleRecord
from chalicelib.pins.sizes import format_bytes
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import (
    ArchiveRequested,
    DrainNode,
    FilecoinCopyRequested,
    PinRequested,
    QueueMessage,
    ReleasedPin,
    Rereplicate,
    RestoreRequested,
    UnpinRequested,
)
from chalicelib.worker.batch import TenantShare
from chalicelib.worker.drain import Drainer
from chalicelib.worker.origins import OriginResolver
from chalicelib.worker.outcomes import Done, Later, Outcome, retried_on_stale

if TYPE_CHECKING:  # the cold tier loads only where archiving is configured
    from chalicelib.cold.archiver import Archiver
    from chalicelib.cold.restorer import Restorer
    from chalicelib.cold.tiering import Tiering
    from chalicelib.filecoin.copy_maker import CopyMaker
    from chalicelib.usage.quotas import QuotaCheck

logger = logging.getLogger("pinning.worker")

# Progress is written at most this often per pin: each write is a DynamoDB
# transaction (2 write units per KiB of the pin's item)...
_PROGRESS_INTERVAL_S = 5.0
# ...and the first only this long after the fetch began: a pin done sooner
# costs no progress write, and one that takes longer shows its progress soon.
# A pin fetched for T > 1 s thus costs 1 + (T - 1) / 5 writes.
_FIRST_PROGRESS_S = 1.0
_CONTINUING = "; continuing shortly"
# While a pin is fetched, whether its request still exists is read this often
# (0.5 read units each, only for pins that take longer): one deleted or
# replaced meanwhile stops fetching then, not at its stall or its turn's end,
# freeing its nodes' slots and its tenant's invocation for the tenant's next pins.
_WANTED_CHECK_S = 10.0


KuboFactory = Callable[[Node], KuboClient]


class PinWorker:
    def __init__(
        self,
        settings: Settings,
        store: PinRepository,
        registry: NodeRegistry,
        holds: PinHolds,
        kubo: KuboFactory,
        clock: Callable[[], int] = now_ms,
        origins: OriginResolver | None = None,
        archiver: Archiver | None = None,
        tiering: Tiering | None = None,
        restorer: Restorer | None = None,
        copy_maker: CopyMaker | None = None,
        quotas: QuotaCheck | None = None,
    ) -> None:
        self._settings = settings
        # None: no quotas; else a pin past its tenant's bytes quota fails as it would become pinned.
        self._quotas = quotas
        # None: no Filecoin backend; copy messages are dropped.
        self._copy_maker = copy_maker
        # None: no cold tier; pins are fetched from hot nodes and the network only.
        self._restorer = restorer
        # None: archiving is off (no ARCHIVE_BUCKET), no archive message is sent.
        self._archiver = archiver
        # The tenants' storage tiers (chalicelib.cold.tiers); None: every tenant hot+cold.
        self._tiering = tiering
        self._store = store
        self._registry = registry
        self._holds = holds
        self._kubo = kubo
        self._clock = clock
        self._resolver = origins or OriginResolver()
        self._node_slots: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(settings.node_concurrency)
        )
        self._slots_lock = threading.Lock()
        # One per process, as the node slots: what one tenant may hold of them.
        self.tenant_share = TenantShare(
            settings.tenant_share, stuck_delay_seconds=settings.stalled_tenant_delay_seconds
        )
        self._drainer = Drainer(
            settings, store, registry, holds, self.copy_to, self._release, self._origins, clock, restorer=restorer
        )

    def handle(self, message: QueueMessage, token: str, deadline: float) -> Outcome:
        """Do the message's work before `deadline` (time.monotonic()).

        `token` identifies this message across redeliveries. Raises on
        faults worth a retry (node unreachable, Kubo errors).
        """
        if isinstance(message, UnpinRequested):
            # A retry of nodes an earlier release could not unpin takes over its leases.
            lease_token = message.lease_token or token
            self._release_archive(message.cid, message.tenant_id, message.request_id)
            return Done(
                self._release(message.cid, message.node_ids, message.tenant_id, message.request_id, lease_token)
            )
        if isinstance(message, ArchiveRequested):
            if self._archiver is None:
                logger.info("archive message dropped: archiving is off", extra={"cid": message.cid})
                return Done()
            return self._archiver.archive(message, token, deadline)
        if isinstance(message, DrainNode):
            return self._drainer.drain(message)
        if isinstance(message, Rereplicate):
            return self._drainer.rereplicate(message, token, deadline)
        if isinstance(message, RestoreRequested):
            return self._drainer.restore(message, token, deadline)
        if isinstance(message, FilecoinCopyRequested):
            if self._copy_maker is None:
                logger.info("Filecoin copy message dropped: no backend", extra={"cid": message.cid})
                return Done()
            return self._copy_maker.make(message, deadline)
        return self._take_turn(message, token, deadline)

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
        if isinstance(message, RestoreRequested):
            # The request stays pinned (its archive holds it); the next retrieval or re-pin asks again.
            logger.error("restore abandoned", extra={"request_id": message.request_id, "cid": message.cid})
            return
        if isinstance(message, FilecoinCopyRequested):
            if self._copy_maker is not None:  # the copy fails; the tracker repairs it elsewhere
                self._copy_maker.give_up(message)
            return
        if isinstance(message, ArchiveRequested):
            if self._archiver is None:  # the dead-letter function has no bucket: the archiver failed it already
                logger.error("archive abandoned", extra={"request_id": message.request_id, "cid": message.cid})
            else:
                self._archiver.give_up(message)
            return
        outcome = retried_on_stale(lambda: self._abandon(message, token), 0, "the pin")
        if isinstance(outcome, Later):
            logger.error("could not mark an abandoned pin failed", extra={"request_id": message.request_id})
            return
        for retry in outcome.follow_ups:
            # Nothing sends from the dead-letter queue: the nodes keep the content.
            logger.error("could not unpin an abandoned pin", extra={"request_id": message.request_id, "why": retry.why})
        if message.turn:
            self._holds.end_turns(message.tenant_id, message.request_id)

    def _abandon(self, message: PinRequested, token: str) -> Outcome:
        """Fail the request of a message that failed every delivery."""
        pin = self._store.get(message.tenant_id, message.created_ms)
        if pin is None or pin.request_id != message.request_id:
            # Deleted or replaced: nothing may stay pinned for it, or for what it replaced.
            return self._forget(message, token)
        if pin.finished:
            return Done()
        last = pin.info.get("status_details")
        reason = "gave up after repeated storage node errors" + (f" (last: {last})" if last else "")
        return self._fail(pin, message, token, reason)

    def _note(self, message: PinRequested, details: str) -> None:
        pin = self._store.get(message.tenant_id, message.created_ms)
        if pin is None or pin.request_id != message.request_id or pin.finished:
            return
        try:
            self._store.update(pin, info={**pin.info, "status_details": details})
        except StaleRecord:
            pass  # only a note: whoever wrote the pin meanwhile said something newer

    # -- pinning -------------------------------------------------------------

    def _take_turn(self, message: PinRequested, token: str, deadline: float) -> Outcome:
        """The pin work of `message`, unless another message took its turn.

        A batch that outlives the queue's visibility timeout is delivered again
        while it still runs, and each delivery would queue a continuation of
        its own (as each of those would later). So a continuation carries the
        turn it continues, and the first message of a turn to arrive takes it,
        by its message id (SQS keeps it across redeliveries, so a retry keeps
        the turn): any other message of that turn or an earlier one is dropped
        unworked, and only one message's continuations go on. A turn is taken
        on arrival, not on sending: a worker dying between taking a turn and
        sending its message would lose the pin's only message, where a message
        sent is at worst a duplicate, dropped here. (SQS's receive count tells
        deliveries apart, but not a dead worker's from one still running.) The
        first message takes no turn: a pin done in one delivery costs no write.
        """
        if message.turn and not self._holds.take_turn(message.tenant_id, message.request_id, message.turn, token):
            logger.info("continuation dropped: its turn was taken", extra={"request_id": message.request_id})
            return Done()
        try:
            outcome = self._pin(message, token, deadline)
        except KuboError as error:
            self._note(message, f"retrying after a storage node error: {error}")
            raise
        if isinstance(outcome, Later):
            return replace(outcome, next=replace(message, turn=message.turn + 1))
        if message.turn:
            self._holds.end_turns(message.tenant_id, message.request_id)
        return outcome

    def _pin(self, message: PinRequested, token: str, deadline: float) -> Outcome:
        return retried_on_stale(
            lambda: self._pin_once(message, token, deadline), self._settings.continue_delay_seconds, "the pin"
        )

    def _pin_once(self, message: PinRequested, token: str, deadline: float) -> Outcome:
        """The message's work from a fresh read of its pin; raises StaleRecord
        when another writer changed the pin before one of this run's writes."""
        pin = self._store.get(message.tenant_id, message.created_ms)
        if pin is None or pin.request_id != message.request_id:
            return self._forget(message, token)
        if pin.finished:
            # A pinned request's archive message again: the first one's send may have been lost.
            archive = self._archive_next(message) if pin.status == "pinned" else ()
            return Done(self._release_replaced(message, token) + archive)
        if self._past_deadline(pin):
            return self._fail(pin, message, token, self._deadline_reason(pin.info.get("status_details")))
        targets = self._targets(message.cid)
        if len(targets) < self._settings.replication_factor:
            details = (
                f"waiting for {self._settings.replication_factor} healthy storage nodes ({len(targets)} available)"
            )
            return self._wait(pin, message, token, details)
        pinning = self._start_pinning(pin, message, targets)
        busy = self._hold(targets, message)
        if busy is not None:
            return busy
        progress = _Progress(self._store, pinning, self._clock)
        copied = self._copy_everywhere(targets, message, token, deadline, progress)
        if not isinstance(copied, Replicated):
            return copied
        return self._record_pinned(progress.pin, message, targets, token, copied.restored)

    def _forget(self, message: PinRequested, token: str) -> Outcome:
        """Deleted or replaced meanwhile: take back whatever we held for it,
        and any pin this message made on Kubo after its hold was let go."""
        nodes = sorted({*message.node_ids, *(node.node_id for node in self._targets(message.cid))})
        retries = self._release(message.cid, nodes, message.tenant_id, message.request_id, token, force=True)
        return Done(retries + self._release_replaced(message, token))

    def _start_pinning(self, pin: Pin, message: PinRequested, targets: Sequence[Node]) -> Pin:
        """The pin moved to `pinning` on `targets` (and the nodes it was on
        before, which an unpin must release too)."""
        node_ids = sorted({*pin.node_ids, *(node.node_id for node in targets)})
        # A restore handed off to a long turn stays noted: in flight, not sent again.
        handed_off = {HANDED_OFF: pin.info[HANDED_OFF]} if HANDED_OFF in pin.info else {}
        info = {"status_details": "fetching", **handed_off}
        pinning = self._store.update(pin, status="pinning", info=info, node_ids=node_ids)
        if pin.status != "pinning":
            logger.info("pinning", extra={"request_id": message.request_id, "cid": message.cid, "nodes": node_ids})
        return pinning

    def _hold(self, targets: Sequence[Node], message: PinRequested) -> Outcome | None:
        """Take this request's hold on the CID on every target; Later while a
        node is still removing the CID for its last former holder."""
        for node in targets:
            if not self._holds.hold(node.node_id, message.cid, message.tenant_id, message.request_id):
                return Later(self._settings.continue_delay_seconds, f"{node.node_id} is still removing {message.cid}")
        return None

    def _copy_everywhere(
        self,
        targets: Sequence[Node],
        message: PinRequested,
        token: str,
        deadline: float,
        progress: _Progress,
    ) -> Outcome | Replicated:
        """Pin on every target at once: how, once all hold it; else what comes next.

        With a cold tier, the targets (where placement puts every request
        of the CID) are asked first whether they pin it: the others dial
        those that do and, when none does and it has an archive, it is
        restored rather than fetched. (Without one, nobody is asked.)"""
        done = copy_or_restore(
            self._restorer,
            message.cid,
            targets,
            targets if self._restorer is not None else (),
            self._origins(message.origins),
            deadline,
            lambda node, sources: self._pin_on(node, message, sources, deadline, progress),
        )
        if isinstance(done.wait, LongRestore) and not self._past_deadline(progress.pin):
            # Too long for this turn: a restore message imports it on these targets in a long
            # one; this message's next turn finds them holding it and records the pin.
            return self._drainer.hand_off(progress.pin, done.wait)
        if done.wait is not None:
            waiting = self._wait(progress.pin, message, token, done.wait.details)
            return replace(waiting, delay_seconds=done.wait.delay_seconds) if isinstance(waiting, Later) else waiting
        errors = done.errors
        if any(isinstance(error, PinCancelled) for error in errors):
            # Deleted or replaced while it was fetched: what its next delivery would do, now.
            return self._forget(message, token)
        refused = [error for error in errors if isinstance(error, KuboRequestError)]
        if refused:
            # Kubo refused the CID itself: no retry will change that.
            return self._fail(progress.pin, message, token, f"the node refused the CID: {refused[0]}")
        faults = [error for error in errors if not isinstance(error, PinInterrupted)]
        if faults:
            raise faults[0]
        if errors:  # stalled, or cut short by the invocation's deadline: continue later
            return self._wait(progress.pin, message, token, progress.details(waiting=True))
        return done

    def _record_pinned(
        self, pin: Pin, message: PinRequested, targets: Sequence[Node], token: str, restored: Sequence[str] = ()
    ) -> Outcome:
        dag_size = self._kubo(targets[0]).dag_size(message.cid)
        over = None if self._quotas is None else self._quotas.over_bytes(message.tenant_id, dag_size)
        if over is not None:
            return self._fail(pin, message, token, over)
        replicas = [node.node_id for node in targets]
        info = {
            "dag_size": str(dag_size),
            "replicas": ",".join(replicas),
            "status_details": restored_details(restored) if restored else f"pinned on {len(targets)} nodes",
        }
        if self._archiver is not None and self._tiering is not None and not self._tiering.archives(message.tenant_id):
            info["cold"] = COLD_OFF  # a hot-only tenant's: no archive is kept
        self._store.update(pin, status="pinned", info=info)
        logger.info("pinned", extra={"request_id": message.request_id, "cid": message.cid, "dag_size": dag_size})
        # Nodes that held it before a re-placement no longer need to.
        # The write checked the version read, so these are all the pin's nodes.
        moved = [node_id for node_id in pin.node_ids if node_id not in replicas]
        retries = self._release(message.cid, moved, message.tenant_id, message.request_id, token)
        return Done(retries + self._release_replaced(message, token) + self._archive_next(message, replicas))

    def _archive_next(self, message: PinRequested, node_ids: Sequence[str] | None = None) -> tuple[Later, ...]:
        """The request's archive message, sent once its pinned state is written.

        If that send is lost (the worker dies before it, or SQS refuses it,
        which fails this message), the pin message is delivered again, finds
        the request pinned and sends it again: the archiver's hold is idempotent.
        None for a hot-only tenant's request. A cold-only tenant's other
        requests for the CID count it as retrieved: the cold ones are restored."""
        if self._archiver is None:
            return ()
        if self._tiering is not None and not self._tiering.archives(message.tenant_id):
            return ()
        archive = ArchiveRequested(
            message.tenant_id, message.request_id, message.created_ms, message.cid, tuple(node_ids or message.node_ids)
        )
        restores = (
            () if self._tiering is None else self._tiering.repinned(message.tenant_id, message.cid, message.request_id)
        )
        return (
            Later(0, "archive the pinned DAG", next=archive),
            *(Later(0, "make a cold request for the same CID hot again", next=restore) for restore in restores),
        )

    def _pin_on(
        self, node: Node, message: PinRequested, origins: Sequence[str], deadline: float, progress: _Progress
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
            wanted=progress.still_wanted,
        )

    def copy_to(
        self,
        node: Node,
        cid: str,
        sources: Sequence[str],
        deadline: float,
        on_progress: Callable[[int, int], None] | None = None,
        before: Callable[[KuboClient], None] | None = None,
        wanted: Callable[[], bool] | None = None,
    ) -> None:
        """Pin `cid` on `node`, dialing `sources` (multiaddrs) first; `before`
        runs on the node's client after the dials; the pin stops once `wanted()` says False."""
        kubo = self._kubo(node)
        with self._slot(node.node_id):
            with ThreadPoolExecutor(max_workers=max(1, len(sources))) as dials:
                list(dials.map(kubo.swarm_connect, sources))
            if before is not None:
                before(kubo)
            kubo.pin_add(
                cid,
                stall_seconds=self._settings.stall_seconds,
                deadline=deadline,
                on_progress=on_progress,
                wanted=wanted,
            )

    def _slot(self, node_id: str) -> threading.BoundedSemaphore:
        with self._slots_lock:
            return self._node_slots[node_id]

    def _targets(self, cid_key: str) -> list[Node]:
        minimum = self._settings.min_free_bytes
        # Filtered first: unlike the API, the worker waits rather than fall back.
        fit = [node for node in self._registry.nodes() if usable(node, minimum)]
        return place(cid_key, fit, self._settings.replication_factor, minimum)

    def _origins(self, origins: Sequence[str]) -> list[str]:
        if self._settings.allow_private_origins:
            return list(origins)
        # Our nodes must not become a way to probe private networks: names are
        # resolved here and Kubo is given global addresses only (worker.origins).
        resolved = self._resolver.resolve(origins)
        for dropped in resolved.dropped:
            logger.info("origin dropped", extra={"origin": dropped.origin, "reason": dropped.reason})
        return resolved.dial

    def _past_deadline(self, pin: Pin) -> bool:
        return self._clock() > pin.created_ms + self._settings.pin_deadline_seconds * 1000

    def _wait(self, pin: Pin, message: PinRequested, token: str, details: str) -> Outcome:
        if self._past_deadline(pin):
            return self._fail(pin, message, token, self._deadline_reason(details))
        try:
            self._store.update(pin, info={**pin.info, "status_details": details})
        except StaleRecord:
            pass  # only what it waits for: the message comes back anyway and reads the pin again
        return Later(self._settings.continue_delay_seconds, details)

    def _fail(self, pin: Pin, message: PinRequested, token: str, reason: str) -> Outcome:
        """Raises StaleRecord when the pin changed since it was read: its
        nodes, which this releases, may have changed too."""
        self._store.update(pin, status="failed", info={"failed_reason": reason, "status_details": reason})
        logger.info("failed", extra={"request_id": message.request_id, "cid": message.cid, "reason": reason})
        retries = self._release(message.cid, pin.node_ids, message.tenant_id, message.request_id, token)
        return Done(retries + self._release_replaced(message, token))

    def _deadline_reason(self, last: str | None = None) -> str:
        seconds = self._settings.pin_deadline_seconds
        within = f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds} seconds"
        reason = f"not pinned within {within} of the request"
        if last:
            reason += f" (last: {last.removesuffix(_CONTINUING)})"
        return reason

    # -- releasing -----------------------------------------------------------

    def _release_replaced(self, message: PinRequested, token: str) -> tuple[Later, ...]:
        replaced: ReleasedPin | None = message.replaces
        if replaced is None:
            return ()
        self._release_archive(replaced.cid, message.tenant_id, replaced.request_id)
        return self._release(replaced.cid, replaced.node_ids, message.tenant_id, replaced.request_id, token)

    def _release_archive(self, cid: str, tenant_id: str, request_id: str) -> None:
        """Let go of the request's hold on the CID's archive (a no-op when it held none)."""
        if self._archiver is not None:
            self._archiver.release(cid, tenant_id, request_id)

    def release_hot(self, cid: str, node_ids: Sequence[str], tenant_id: str, request_id: str, token: str) -> bool:
        """The cooling sweep's (chalicelib.cold.tiering): the request's holds on
        `node_ids` let go, each node's pin removed with its last holder. False
        when a node failed to unpin: its removal stays `token`'s, for a retry
        with the same token (no unpin message is sent: that would let the
        request's archive go too)."""
        return not self._release(cid, node_ids, tenant_id, request_id, token)

    def _release(
        self, cid: str, node_ids: Sequence[str], tenant_id: str, request_id: str, token: str, force: bool = False
    ) -> tuple[Later, ...]:
        """Give up the request's hold on each node, each on its own: a node
        whose pin/rm fails holds up no other, and is retried alone, later, by
        an unpin that takes over this release's lease there (the returned
        follow-up). A node no longer registered took its pins with it: it is
        not called (its drain sees to its other holders)."""
        nodes = {node.node_id: node for node in self._registry.nodes()}
        failed = tuple(
            node_id
            for node_id in node_ids
            if not self._release_on(nodes.get(node_id), Hold(node_id, cid, tenant_id, request_id), token, force)
        )
        if not failed:
            return ()
        retry = UnpinRequested(tenant_id, request_id, cid, failed, lease_token=token)
        why = f"unpin of {cid} failed on {', '.join(failed)}"
        return (Later(self._settings.continue_delay_seconds, why, next=retry),)

    def _release_on(self, node: Node | None, hold: Hold, token: str, force: bool) -> bool:
        """False when the node failed to unpin: the lease stays `token`'s."""
        if not self._holds.release(hold.node_id, hold.cid_key, hold.tenant_id, hold.request_id, token, force=force):
            return True
        if node is not None:
            try:
                with self._slot(node.node_id):
                    self._kubo(node).pin_rm(hold.cid_key)
            except KuboError as error:
                logger.warning(
                    "unpin failed; retrying on this node alone",
                    extra={"node_id": node.node_id, "cid": hold.cid_key, "error": str(error)},
                )
                return False
        self._holds.released(hold.node_id, hold.cid_key, token)
        return True


class _Progress:
    """Shows fetch progress in `info.status_details`, written sparingly (see
    _PROGRESS_INTERVAL_S): the furthest any node got, in blocks and bytes."""

    def __init__(self, store: PinRepository, pin: Pin, clock: Callable[[], int]) -> None:
        self._store = store
        self.pin = pin
        self._clock = clock
        self._by_node: dict[str, tuple[int, int]] = {}
        self._due_ms = clock() + 1000 * _FIRST_PROGRESS_S
        self._wanted = True
        self._wanted_due_ms = clock() + 1000 * _WANTED_CHECK_S
        self._lock = threading.Lock()

    def report(self, node_id: str, blocks: int, size: int) -> None:
        with self._lock:
            self._by_node[node_id] = (blocks, size)
            now = self._clock()
            if now < self._due_ms:
                return
            self._due_ms = now + 1000 * _PROGRESS_INTERVAL_S
            try:
                self.pin = self._store.update(self.pin, info={"status_details": self.details()})
            except StaleRecord:
                # Another writer got there first: go on from the pin as it is
                # now. Gone or finished, it stays as read: the final write
                # notices, and progress never overwrites a finished pin's info.
                stored = self._store.get(self.pin.tenant_id, self.pin.created_ms)
                if stored is not None and stored.request_id == self.pin.request_id and stored.status == "pinning":
                    self.pin = stored

    def still_wanted(self) -> bool:
        """False once the request is read deleted or replaced (every _WANTED_CHECK_S at most,
        for all the pin's nodes at once)."""
        with self._lock:
            now = self._clock()
            if not self._wanted or now < self._wanted_due_ms:
                return self._wanted
            self._wanted_due_ms = now + 1000 * _WANTED_CHECK_S
            stored = self._store.get(self.pin.tenant_id, self.pin.created_ms)
            self._wanted = stored is not None and stored.request_id == self.pin.request_id
            return self._wanted

    def details(self, waiting: bool = False) -> str:
        if not self._by_node:
            text = "looking for providers"
        else:
            blocks = max(blocks for blocks, _ in self._by_node.values())
            size = max(size for _, size in self._by_node.values())
            # Kubo before 0.40 reports no bytes (see KuboClient.pin_add).
            text = f"fetched {blocks:,} blocks, {format_bytes(size)}" if size else f"fetched {blocks:,} blocks"
        return f"{text}{_CONTINUING}" if waiting else text
