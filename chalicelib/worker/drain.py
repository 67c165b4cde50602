"""Re-replication of the pins a removed node held.

A `drain` message walks the node's holders (the node-pins table's node
index) a page at a time and hands each holding request a `rereplicate`
message; passes repeat until a pass finds no holder left. The holder items
are the drain's durable to-do list: a holder goes only once its request has
a replacement replica recorded (or no longer needs one), so a worker dying
anywhere, a lost or repeated message, loses nothing and adds nothing
(placement is deterministic, holds and pins are idempotent).

A request keeps its `pinned` status while at least one replica survives;
`info.replicas` names the surviving and new replicas and
`info.status_details` says what is going on. With no replica left, the
content is fetched again from the request's origins (and the network); if
that stalls, or no healthy node is left, the request fails with a reason
rather than claim a pin that no node holds. With a cold tier, the surviving
replicas are first asked whether they still pin it; when none does and the
CID has an archive, the new nodes get it from the archive instead
(chalicelib.cold.restorer), and a request with an archive but no healthy
node left waits for one rather than fail.

`restore` messages (a cold-only request retrieved or re-pinned) take the
same path: the request's CID is put back on its placement nodes, from a
live copy or the archive, and the replicas recorded. They are also where a
restore too long for a pin worker's turn goes (`hand_off`): the archive
function works them in its 15-minute turns. A rereplicate handing off stays
until the restored replicas are recorded (its hold on the removed node with
it); a pin message handing off (its request still `pinning`) has the restore
made on its placement nodes and records the pin itself once they hold it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from chalicelib.cold.restorer import (
    HANDED_OFF,
    LongRestore,
    Replicated,
    Restorer,
    RestoreWait,
    copy_or_restore,
    hand_off,
    restored_details,
)
from chalicelib.cold.tiers import COLD, COOLING, TIER_KEY
from chalicelib.config import Settings
from chalicelib.fleet.holds import PinHolds
from chalicelib.fleet.node import Node
from chalicelib.fleet.placement import place, usable
from chalicelib.fleet.registry import NodeRegistry
from chalicelib.kubo.errors import PinDeadline, PinInterrupted, PinStalled
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import PinRepository, StaleRecord
from chalicelib.pins.request_ids import created_ms_of
from chalicelib.queue.messages import DrainNode, Rereplicate, RestoreRequested
from chalicelib.worker.outcomes import Done, Later, Outcome, retried_on_stale

logger = logging.getLogger("pinning.worker")

# Holders per drain message: one Query of at most this many keys, as many sends.
PAGE = 50
# Passes are this many continue delays apart (5 minutes by default), so most
# re-pins of a pass finish before the next pass asks for them again.
PASS_DELAYS = 10
# The node index is eventually consistent: a hold taken just now may show late.
INDEX_LAG_SECONDS = 5

CopyTo = Callable[[Node, str, Sequence[str], float], None]
# Releases the request's holds; returns the retries of nodes that failed to unpin.
Release = Callable[..., tuple[Later, ...]]


@dataclass(frozen=True)
class _Plan:
    """Where a request of the removed node goes."""

    info: dict[str, str]
    # Its surviving replicas, still registered.
    keep: list[str]
    # New nodes to copy it to, to make up the replication factor.
    extra: list[Node]

    @property
    def extra_ids(self) -> list[str]:
        return [node.node_id for node in self.extra]


def _copying_details(plan: _Plan, message: Rereplicate) -> str:
    targets = ", ".join(plan.extra_ids)
    if plan.keep:
        return f"re-replicating: {message.node_id} left the fleet; copying to {targets}"
    return f"re-replicating: every node holding it left the fleet; fetching it again for {targets}"


class Drainer:
    def __init__(
        self,
        settings: Settings,
        store: PinRepository,
        registry: NodeRegistry,
        holds: PinHolds,
        copy_to: CopyTo,
        release: Release,
        origins: Callable[[Sequence[str]], list[str]],
        clock: Callable[[], int],
        restorer: Restorer | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._registry = registry
        self._holds = holds
        self._copy_to = copy_to
        self._release = release
        self._origins = origins
        self._clock = clock
        # None: the stage keeps no archives; copies come from hot nodes and the network only.
        self._restorer = restorer

    # -- drain: one page of holders ------------------------------------------

    def drain(self, message: DrainNode) -> Outcome:
        node_id = message.node_id
        if self._registry.registered(node_id):
            logger.info("node registered again; its drain stops", extra={"node_id": node_id})
            return Done()
        holders, after = self._holds.holders_on(node_id, message.after, PAGE)
        spawned = tuple(
            Rereplicate(holder.tenant_id, holder.request_id, created_ms, holder.cid_key, node_id)
            for holder in holders
            if (created_ms := created_ms_of(holder.request_id)) is not None
        )
        held = message.held + len(holders)
        if after is not None:
            return Later(0, f"draining {node_id}", next=replace(message, after=after, held=held), spawned=spawned)
        # A worker with a view of the fleet from before the removal may still
        # take a hold there: only a pass after that view expired is final.
        settled_ms = message.removed_ms + (self._settings.node_cache_seconds + INDEX_LAG_SECONDS) * 1000
        now = self._clock()
        if held == 0 and now >= settled_ms:
            logger.info("node drained", extra={"node_id": node_id})
            return Done()
        if held:
            delay = self._settings.continue_delay_seconds * PASS_DELAYS
        else:
            delay = -(-(settled_ms - now) // 1000)
        why = f"{held} pins still held on {node_id}"
        return Later(delay, why, next=DrainNode(node_id, message.removed_ms), spawned=spawned)

    # -- rereplicate: one request --------------------------------------------

    def rereplicate(self, message: Rereplicate, token: str, deadline: float) -> Outcome:
        return retried_on_stale(
            lambda: self._rereplicate_once(message, token, deadline),
            self._settings.continue_delay_seconds,
            "the re-replicated pin",
        )

    def _rereplicate_once(self, message: Rereplicate, token: str, deadline: float) -> Outcome:
        """From a fresh read of the pin; raises StaleRecord when another
        writer changed it before one of this run's writes."""
        nodes = {node.node_id: node for node in self._registry.nodes(fresh=True)}
        record = self._record_to_repair(message, nodes, token)
        if record is None:
            return Done()
        plan = self._plan(record, message, nodes)
        if not plan.keep and not plan.extra:
            if self._restorer is not None and self._restorer.archive_of(message.cid) is not None:
                why = "no healthy storage node is left to restore it from the cold archive; waiting for one"
                return self._wait(record, RestoreWait(why, self._settings.continue_delay_seconds * PASS_DELAYS))
            return self._lose(record, message, token, "no healthy storage node is left to pin it again")
        restored: list[str] = []
        if plan.extra:
            record = self._start_copying(record, plan, message)
            copied = self._copy(record, plan, nodes, message, token, deadline)
            if not isinstance(copied, Replicated):
                return copied
            restored = copied.restored
        return self._settle(record, plan, message, token, restored)

    def _record_to_repair(self, message: Rereplicate, nodes: dict[str, Node], token: str) -> Pin | None:
        """The pinned request that still holds the removed node; None when
        there is nothing to do for it (now or on this pass)."""
        if message.node_id in nodes:
            return None  # registered again: its pins are where they were
        if not self._holds.holding(message.node_id, message.cid, message.tenant_id, message.request_id):
            return None  # done already (a repeat, or a message of an earlier pass)
        record = self._store.get(message.tenant_id, message.created_ms)
        if record is None or record.request_id != message.request_id or record.status == "failed":
            # Nothing to keep for it (its unpin, if any, releases the rest).
            self._drop(message, token)
            return None
        if record.status != "pinned":
            # Its pin message is still at work and places it on registered
            # nodes; the drain's next pass comes back if it still holds here.
            return None
        return record

    def _plan(self, record: Pin, message: Rereplicate, nodes: dict[str, Node]) -> _Plan:
        info = dict(record.info)
        keep = [node_id for node_id in info.get("replicas", "").split(",") if node_id in nodes]
        wanted = self._settings.replication_factor
        minimum = self._settings.min_free_bytes
        fit = [node for node in nodes.values() if node.node_id not in keep and usable(node, minimum)]
        extra = place(message.cid, fit, wanted - len(keep), minimum) if len(keep) < wanted else []
        return _Plan(info, keep, extra)

    def _settle(self, record: Pin, plan: _Plan, message: Rereplicate, token: str, restored: list[str]) -> Outcome:
        """Record the replicas the request has now; once they are enough, its
        hold on the removed node goes."""
        wanted = self._settings.replication_factor
        replicas = plan.keep + plan.extra_ids
        complete = len(replicas) >= wanted
        if complete:
            details = f"pinned on {len(replicas)} nodes"
        else:
            # The hold on the removed node stays: the drain's next pass retries.
            details = f"pinned on {len(replicas)} of {wanted} nodes; waiting for a healthy storage node to replace {message.node_id}"
        if restored:
            details = f"{restored_details(restored)}; {details}"
        settled = {**plan.info, "replicas": ",".join(replicas), "status_details": details}
        node_ids = sorted({*record.node_ids, *replicas} - ({message.node_id} if complete else set()))
        try:
            if (settled, node_ids) != (plan.info, sorted(record.node_ids)):  # a repeat changes nothing
                self._store.update(record, status="pinned", info=settled, node_ids=node_ids)
        except StaleRecord:
            stored = self._store.get(message.tenant_id, message.created_ms)
            if stored is None or stored.request_id != message.request_id:
                # Deleted meanwhile: its unpin may not know the new replicas.
                # (A node failing this fresh copy's unpin keeps it for the reconciler.)
                self._release(message.cid, plan.extra_ids, message.tenant_id, message.request_id, token, force=True)
            raise
        if plan.extra:
            logger.info(
                "re-replicated",
                extra={"request_id": message.request_id, "cid": message.cid, "from": message.node_id, "to": replicas},
            )
        if complete:
            self._drop(message, token)
        return Done()

    def _start_copying(self, record: Pin, plan: _Plan, message: Rereplicate) -> Pin:
        """The plan's new nodes recorded before they pin, so a deletion
        meanwhile releases them too."""
        copying = {**plan.info, "replicas": ",".join(plan.keep), "status_details": _copying_details(plan, message)}
        node_ids = sorted({*record.node_ids, *plan.extra_ids})
        return self._store.update(record, status="pinned", info=copying, node_ids=node_ids)

    def _copy(
        self,
        record: Pin,
        plan: _Plan,
        nodes: dict[str, Node],
        message: Rereplicate,
        token: str,
        deadline: float,
    ) -> Outcome | Replicated:
        """Pin on the plan's new nodes: how, once done; otherwise what the
        message comes to."""
        for node in plan.extra:
            if not self._holds.hold(node.node_id, message.cid, message.tenant_id, message.request_id):
                return Later(self._settings.continue_delay_seconds, f"{node.node_id} is still removing {message.cid}")
        # The surviving replicas are the sources (asked first whether they still pin it, with a cold tier).
        keep = [nodes[node_id] for node_id in plan.keep]
        done = self._copy_or_restore(record, message.cid, plan.extra, keep, deadline)
        if isinstance(done.wait, LongRestore):
            # Back once the long turn could be over: its replicas recorded, the hold here goes.
            return self.hand_off(record, done.wait)
        if done.wait is not None:
            return self._wait(record, done.wait)
        errors = done.errors
        if any(isinstance(error, PinDeadline) for error in errors):
            return Later(0, "re-replication continues")
        stalled = [error for error in errors if isinstance(error, PinStalled)]
        if stalled and not plan.keep:
            reason = f"every node holding it left the fleet and it could not be fetched again: {stalled[0]}"
            if done.refused is not None:
                reason += f" (its cold archive could not be restored: {done.refused})"
            return self._lose(record, message, token, reason)
        if errors:
            raise errors[0]  # retried; the drain's passes send it again after its last delivery
        return done

    def _copy_or_restore(
        self, record: Pin, cid: str, targets: Sequence[Node], holders: Sequence[Node], deadline: float
    ) -> Replicated:
        """Pins on every target at once, from the holders, the origins or the archive."""
        return copy_or_restore(
            self._restorer,
            cid,
            targets,
            holders,
            self._origins(record.origins),
            deadline,
            lambda node, sources: self._copy_to(node, cid, sources, deadline),
        )

    def _wait(self, record: Pin, wait: RestoreWait) -> Outcome:
        """Come back later (an archive thawing, a turn too short, no node),
        the request still `pinned`, its `info` saying what it waits for (and,
        for a hand-off's restore message, that it is still in flight)."""
        info = {**record.info, "status_details": wait.details}
        if HANDED_OFF in info:
            info[HANDED_OFF] = str(self._clock())
        try:
            self._store.update(record, info=info)
        except StaleRecord:
            pass  # only a note: the message comes back anyway and reads the pin again
        return Later(wait.delay_seconds, wait.details)

    def hand_off(self, record: Pin, wait: LongRestore) -> Later:
        """A restore too long for this turn handed to a `restore` message (the
        archive function's long turns), unless one is in flight (the note in
        `info`, written first: of two workers reading the same pin, one
        writes it and sends). Raises StaleRecord when the pin changed."""
        handed = hand_off(record.info, wait, self._clock())
        if handed.info != dict(record.info):
            self._store.update(record, info=handed.info)
        restore = RestoreRequested(
            record.tenant_id, record.request_id, record.created_ms, record.cid_key, "too long for a short turn"
        )
        return Later(handed.delay_seconds, handed.details, spawned=(restore,) if handed.send else ())

    # -- restore: a pinned request's CID hot again ----------------------------

    def restore(self, message: RestoreRequested, token: str, deadline: float) -> Outcome:
        return retried_on_stale(
            lambda: self._restore_once(message, deadline),
            self._settings.continue_delay_seconds,
            "the restored pin",
        )

    def _restore_once(self, message: RestoreRequested, deadline: float) -> Outcome:
        """From a fresh read of the pin; raises StaleRecord as `_rereplicate_once`."""
        record = self._store.get(message.tenant_id, message.created_ms)
        if record is None or record.request_id != message.request_id or not _restorable(record):
            return Done()  # gone, or its pin message is at work (and places it)
        if record.info.get(TIER_KEY) == COOLING:
            # The cooling sweep is letting its hot holds go: taking them now
            # would be undone by it; once it is cold the restore goes ahead.
            return Later(self._settings.continue_delay_seconds, f"{message.cid} is moving to the cold tier")
        nodes = {node.node_id: node for node in self._registry.nodes(fresh=True)}
        held = self._held_targets(record, message, nodes)
        if not isinstance(held, tuple):
            return held
        record, targets = held
        replicas = [nodes[node_id] for node_id in record.info.get("replicas", "").split(",") if node_id in nodes]
        done = self._copy_or_restore(record, message.cid, targets, replicas, deadline)
        if done.wait is not None:
            return self._wait(record, done.wait)
        if any(isinstance(error, PinInterrupted) for error in done.errors):
            return Later(self._settings.continue_delay_seconds, f"making {message.cid} hot again continues")
        if done.errors:
            raise done.errors[0]
        if record.status == "pinned":  # a pin message's hand-off: it records the pin once its nodes hold it
            self._record_hot(record, targets, done.restored)
        logger.info(
            "hot again",
            extra={
                "request_id": message.request_id,
                "cid": message.cid,
                "restored": done.restored,
                "why": message.reason,
            },
        )
        return Done()

    def _record_hot(self, record: Pin, targets: Sequence[Node], restored: Sequence[str]) -> None:
        # Hot again, and no hand-off in flight any more.
        info = {key: value for key, value in record.info.items() if key not in (TIER_KEY, HANDED_OFF)}
        info["replicas"] = ",".join(node.node_id for node in targets)
        if restored or record.info.get(TIER_KEY) == COLD:
            info["status_details"] = restored_details(restored) if restored else f"pinned on {len(targets)} nodes"
        if info != dict(record.info):  # a repeat writes nothing
            self._store.update(record, info=info)

    def _held_targets(
        self, record: Pin, message: RestoreRequested, nodes: dict[str, Node]
    ) -> tuple[Pin, list[Node]] | Outcome:
        """The request's placement nodes, held for it and recorded among its
        nodes before they pin (a deletion releases them too); or what to do
        while there are none, or one is still removing the CID."""
        minimum = self._settings.min_free_bytes
        fit = [node for node in nodes.values() if usable(node, minimum)]
        targets = place(message.cid, fit, self._settings.replication_factor, minimum)
        if not targets:
            why = "waiting for a healthy storage node to make it hot again"
            return self._wait(record, RestoreWait(why, self._settings.continue_delay_seconds))
        for node in targets:
            if not self._holds.hold(node.node_id, message.cid, message.tenant_id, message.request_id):
                return Later(self._settings.continue_delay_seconds, f"{node.node_id} is still removing {message.cid}")
        node_ids = sorted({*record.node_ids, *(node.node_id for node in targets)})
        if node_ids != sorted(record.node_ids):
            record = self._store.update(record, node_ids=node_ids)
        return record, targets

    def _lose(self, record: Pin, message: Rereplicate, token: str, reason: str) -> Outcome:
        """No replica left and none can be made: the request fails, honestly."""
        self._store.update(record, status="failed", info={"failed_reason": reason, "status_details": reason})
        logger.warning(
            "pin lost with its nodes", extra={"request_id": message.request_id, "cid": message.cid, "reason": reason}
        )
        others = [node_id for node_id in record.node_ids if node_id != message.node_id]
        retries = self._release(message.cid, others, message.tenant_id, message.request_id, token)
        self._drop(message, token)
        return Done(retries)

    def _drop(self, message: Rereplicate, token: str) -> None:
        self._holds.drop(message.node_id, message.cid, message.tenant_id, message.request_id, token)

    def give_up(self, message: DrainNode | Rereplicate) -> None:
        """A drain or rereplicate message that failed every delivery."""
        if isinstance(message, DrainNode):
            logger.error(
                "node drain abandoned; resume it with `cli.admin nodes drain NODE_ID`",
                extra={"node_id": message.node_id},
            )
        else:
            logger.warning(
                "re-replication abandoned; the drain's next pass asks again",
                extra={"node_id": message.node_id, "request_id": message.request_id, "cid": message.cid},
            )


def _restorable(record: Pin) -> bool:
    """A request a restore message works on: pinned, or pinning with its pin
    message's restore handed off here."""
    return record.status == "pinned" or (record.status == "pinning" and HANDED_OFF in record.info)
