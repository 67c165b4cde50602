"""Cold-only tiers at work: hot copies released once unretrieved for N days,
made hot again when retrieved or pinned again (chalicelib.cold.tiers).

**Scheduling.** A cold-only tenant's request holds its CID's archive with a
time it is due to cool (`cools_at`: N days after the hold, which the
archiver takes as the request is pinned). That time keys a sparse index of
the archive holder items, so the due ones are read by time, never by a Scan.

**The sweep** (`cool`, a scheduled run bounded by a deadline; the index is
its resumption point) takes the holds due, soonest first, and for each one
still due (a consistent read: a retrieval may have moved it), whose tenant
is still cold-only, whose request is still `pinned` and whose archive is
archived: marks the request `cooling` (a versioned write: a replace, a
drain or a restore that wrote it meanwhile makes it wait for the next run),
lets its hot holds go through the worker's release (a node's pin is
removed only with its last holder), then writes it cold (`tier` cold,
`replicas` and its nodes empty, still `pinned`) and clears the hold's time.
A run cut short, or a node whose unpin failed, leaves it `cooling` and due:
a later run finishes it with the same release token, which still owns the
removals it began. A restore of the request (RestoreRequested) must come
back later while it is `cooling`: it would take the very holds the sweep
lets go.

**Retrievals** (`touch_retrieved`) push the time forward, written at most
once a day per request: a retrieval within a day of the last costs one read
(the tenant's holds of the CID) and no write. **A new request** for the CID
(`repinned`, when it is pinned) does the same for the tenant's other
requests. Either way a request found cold is made hot again by a
RestoreRequested (one retrieved or pinned again while it cooled was served
hot: the sweep leaves it not due, so the next retrieval restores it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from chalicelib.cold.archive_repository import ARCHIVED, ARCHIVING, ArchiveHold, ArchiveHolder, ArchiveRepository
from chalicelib.cold.tiers import COLD, COLD_DETAILS, COOLING, DAY_MS, TIER_KEY, TierPolicies, TierPolicy
from chalicelib.pins.pin import Pin
from chalicelib.pins.repository import PinRepository, StaleRecord
from chalicelib.pins.request_ids import created_ms_of
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import QueueMessage, RestoreRequested

logger = logging.getLogger("pinning.tiering")

# Holds read from the index at a time.
PAGE = 100
# A hold that could not cool yet (archive not archived, a node's unpin
# failed, the request not pinned) is looked at again this much later.
RETRY_MS = 3600 * 1000

# Gives up the request's hot holds on `node_ids` (a node's pin goes with its
# last holder) under `token`; False when some node failed to unpin: the
# removals it began stay `token`'s, for a retry with it.
ReleaseHot = Callable[[str, Sequence[str], str, str, str], bool]


@dataclass
class CoolingReport:
    """What one run of the sweep did, by outcome."""

    cooled: int = 0
    # Due again later: not archived yet, a node's unpin failed, the request being written.
    later: int = 0
    # No longer due: tenant not cold-only, request gone, archive failed or gone, already cold.
    dropped: int = 0
    seen: set[ArchiveHolder] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {"cooled": self.cooled, "later": self.later, "dropped": self.dropped}


class Tiering:
    def __init__(
        self,
        archives: ArchiveRepository,
        policies: TierPolicies,
        store: PinRepository,
        release: ReleaseHot | None = None,
        send: Callable[[QueueMessage], None] | None = None,
        clock: Callable[[], int] = now_ms,
        page: int = PAGE,
    ) -> None:
        self._archives = archives
        self._policies = policies
        self._store = store
        # The sweep's (the worker's release path); the retrievals' and re-pins' (the queue).
        self._release = release
        self._send = send
        self._clock = clock
        self._page = page

    # -- the tenant's policy ---------------------------------------------------

    def archives(self, tenant_id: str) -> bool:
        """Whether the tenant's pinned requests are archived (not hot-only)."""
        return self._policies.policy_for(tenant_id).archives

    def cools_at(self, tenant_id: str) -> int | None:
        """When a hold the tenant's request takes now is due to cool; None: never."""
        policy = self._policies.policy_for(tenant_id)
        return self._clock() + policy.cold_after_ms if policy.cools else None

    # -- back to hot -----------------------------------------------------------

    def touch_retrieved(self, tenant_id: str, cid_key: str) -> None:
        """The tenant retrieved `cid_key` (canonical CIDv1, as archives are
        keyed): its requests' cooling moves forward, a cold one is restored.
        Never raises: a retrieval served is not failed by its bookkeeping."""
        try:
            for restore in self._warm(tenant_id, cid_key, "retrieved"):
                self._sent(restore)
        except Exception:
            logger.warning("retrieval not recorded for tiering", exc_info=True, extra={"cid": cid_key})

    def repinned(self, tenant_id: str, cid_key: str, request_id: str) -> list[RestoreRequested]:
        """Request `request_id` pinned `cid_key` again: the tenant's other
        requests for it move their cooling forward; the cold ones' restores."""
        return self._warm(tenant_id, cid_key, "pinned again", skip=request_id)

    def _warm(self, tenant_id: str, cid_key: str, reason: str, skip: str | None = None) -> list[RestoreRequested]:
        policy = self._policies.policy_for(tenant_id)
        if not policy.cools:
            return []
        now = self._clock()
        fresh_ms = now + policy.cold_after_ms - DAY_MS
        restores = []
        for hold in self._archives.holds_of(cid_key, tenant_id):
            holder = hold.holder
            if holder.request_id == skip or (hold.cools_at_ms is not None and hold.cools_at_ms >= fresh_ms):
                continue  # moved forward within the day: no write
            if not self._archives.set_cooling(holder, hold.cools_at_ms, now + policy.cold_after_ms):
                continue  # another retrieval or the sweep wrote it meanwhile
            pin = self._pin(holder)
            if pin is not None and is_cold(pin):
                restores.append(RestoreRequested(tenant_id, holder.request_id, pin.created_ms, cid_key, reason))
        return restores

    # -- the sweep -------------------------------------------------------------

    def cool(self, deadline: float, limit: int) -> CoolingReport:
        """Release the hot copies of the requests due, up to `limit` holds
        looked at, until `deadline` (time.monotonic()) or none is due. What
        is left stays due: the next run goes on from it."""
        report = CoolingReport()
        while time.monotonic() < deadline and len(report.seen) < limit:
            due = self._archives.due_to_cool(self._clock() + 1, min(self._page, limit - len(report.seen)))
            fresh = [hold for hold in due if hold.holder not in report.seen]
            if not fresh:  # none due, or only those this run saw (the index lags)
                break
            for hold in fresh:
                if time.monotonic() >= deadline:
                    break
                report.seen.add(hold.holder)
                self._cool_one(hold, report)
        return report

    def _cool_one(self, hold: ArchiveHold, report: CoolingReport) -> None:
        holder, due_ms = hold.holder, hold.cools_at_ms
        stored = self._archives.hold_of(holder)
        if stored is None or stored.cools_at_ms != due_ms:
            return  # let go, or moved forward by a retrieval
        pin = self._pin(holder)
        wait = 0 if pin is None else self._wait(self._policies.policy_for(holder.tenant_id), pin, holder.cid)
        if pin is None or wait is not None:
            self._reschedule(holder, due_ms, wait or 0, report)
            return
        try:
            cooled = self._release_hot(pin, holder)
        except StaleRecord:
            cooled = False  # written meanwhile: the next run reads it again
        if not cooled:
            self._reschedule(holder, due_ms, self._clock() + RETRY_MS, report)
            return
        report.cooled += 1
        logger.info("hot copies released", extra={"cid": holder.cid, "request_id": holder.request_id})
        if not self._archives.set_cooling(holder, due_ms, None):
            # Retrieved or pinned again while it cooled (served hot then): not
            # due any more, so the next retrieval or re-pin finds it cold and restores it.
            moved = self._archives.hold_of(holder)
            if moved is not None:
                self._archives.set_cooling(holder, moved.cools_at_ms, None)

    def _wait(self, policy: TierPolicy, pin: Pin, cid: str) -> int | None:
        """When to look at the hold again instead of cooling it now (0: never)."""
        tier = pin.info.get(TIER_KEY)
        if tier == COOLING:
            return None  # begun by an earlier run: finish it, whatever the tier now
        if is_cold(pin) or not policy.cools:
            return 0
        state = self._archives.state(cid)
        if state is None or state.state not in (ARCHIVING, ARCHIVED):
            return 0  # no archive holds it: it stays hot
        if pin.status != "pinned" or state.car is None:
            return self._clock() + RETRY_MS
        if state.state == ARCHIVED and state.car.archived_ms + policy.cold_after_ms > self._clock():
            return state.car.archived_ms + policy.cold_after_ms  # archived later than it was held
        return None

    def _reschedule(self, holder: ArchiveHolder, due_ms: int | None, wait: int, report: CoolingReport) -> None:
        if wait:
            report.later += 1
        else:
            report.dropped += 1
        self._archives.set_cooling(holder, due_ms, wait or None)

    def _release_hot(self, pin: Pin, holder: ArchiveHolder) -> bool:
        """`cooling`, the hot holds let go, then cold; False if a node's
        unpin failed. Raises StaleRecord when the pin was written meanwhile."""
        if self._release is None:
            raise RuntimeError("this Tiering was built without the worker's release")
        if pin.info.get(TIER_KEY) != COOLING:
            pin = self._store.update(pin, info={**pin.info, TIER_KEY: COOLING})
        # The same for every run cooling this request: a retry owns the removals an earlier run began.
        token = f"cool#{holder.tenant_id}#{holder.request_id}"
        if not self._release(holder.cid, pin.node_ids, holder.tenant_id, holder.request_id, token):
            logger.warning("a node failed to unpin; cooling again later", extra={"cid": holder.cid})
            return False
        self._store.update(pin, info=cold_info(pin.info), node_ids=())
        return True

    # -- helpers ---------------------------------------------------------------

    def _pin(self, holder: ArchiveHolder) -> Pin | None:
        created_ms = created_ms_of(holder.request_id)
        pin = None if created_ms is None else self._store.get(holder.tenant_id, created_ms)
        return pin if pin is not None and pin.request_id == holder.request_id else None

    def _sent(self, restore: RestoreRequested) -> None:
        if self._send is None:
            raise RuntimeError("this Tiering was built without a queue")
        self._send(restore)
        logger.info("restore requested", extra={"cid": restore.cid, "request_id": restore.request_id})


def is_cold(pin: Pin) -> bool:
    """Whether only the archive holds the pinned request: cold, and on no node
    (a restore records the nodes it made it hot on)."""
    return pin.status == "pinned" and pin.info.get(TIER_KEY) == COLD and not pin.node_ids


def cold_info(info: Mapping[str, str]) -> dict[str, str]:
    """A cooled request's `info`: where it lives now; its other keys (the archive's among them) kept."""
    kept = {key: value for key, value in info.items() if key not in ("replicas", "status_details")}
    return {**kept, TIER_KEY: COLD, "replicas": "", "status_details": COLD_DETAILS}
