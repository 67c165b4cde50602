"""The Filecoin tracker: keeps each archived CID at the copies its holders want.

**Scheduling.** A CID is due when a holder's want is recorded or let go
(chalicelib.filecoin.copies), when the copy maker recorded a receipt, and
whenever one of its copies is next to be checked. Its state item's due time
keys a sparse index read oldest first (never a Scan): a run (`run`, every
minute, bounded by a deadline and a count) goes on where the last one
stopped.

**A visit** reads the CID's wants, copies and archive, then:
1. follows each copy due for a check with the backend: ADDING and LAPSED
   ones every FILECOIN_ADDING_CHECK_SECONDS, PROVING ones every
   FILECOIN_CHECK_SECONDS; re-sends the message of a copy PENDING longer
   than FILECOIN_RESEND_SECONDS (its message lost);
2. ends a copy LAPSED longer than FILECOIN_LAPSE_GRACE_SECONDS (it no longer
   counts and is no longer paid for; its provider is not used for the CID
   again, as one whose copy FAILED or was TERMINATED);
3. counts the live copies (pending, adding, proving, lapsed within the
   grace); one whose `ends_epoch` is within FILECOIN_RENEW_EPOCHS of the
   chain's head is renewing: a replacement is made for it, and it is ended
   once enough others prove;
4. more than wanted (the most any holder wants; 0 once the last let go or
   the archive is gone): ends the surplus, newest first;
5. fewer: chooses providers (chalicelib.filecoin.selection), checks the
   wallet's funds and reserves the term's cost under the month's spend cap
   (chalicelib.filecoin.spend), records the copy PENDING and sends a
   `filecoin_copy` message, which the archive function's long turns upload
   (chalicelib.filecoin.copy_maker). Funds or cap short: the CID waits,
   and says why;
6. shows each holder its copies in `info`: `filecoin_copies`
   ("<proving>/<wanted>") and `filecoin` (off, pending, proving, repairing,
   "waiting: <why>"), and `filecoin_quota` when its tenant's plan caps the
   copies it asked for, written only when they change;
7. writes the state: when to visit next, why it waits, what it showed.

**Quota.** A holder's want counts for no more copies than its tenant's
`filecoin_copies` quota (chalicelib.usage.quotas, read at each visit through
the container's plan cache): a plan lowered later caps the CID at its next
visit, which ends the copies beyond it, newest first, as any surplus.

**Races.** Every write of the state and every new copy is conditioned on the
state's version read at the start of the visit, and every write of a copy
on the copy's version: a second tracker visiting the same CID at once (or a
want recorded meanwhile) makes the later writer stop, so no more copies
than wanted are ever begun. A copy's message delivered twice finds it no
longer pending.

**Faults.** The backend unreachable (BackendUnavailable) ends the visit
with nothing written; the CID stays due, so the next run comes back to it
first. After a few such visits in a row the run stops.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

from chalicelib.cold.archive_repository import ARCHIVED, ArchivedCar, ArchiveRepository
from chalicelib.cold.archiver import merge_info
from chalicelib.config import Settings
from chalicelib.filecoin.backend import BackendUnavailable, CopyState, FilecoinBackend, Piece, Receipt
from chalicelib.filecoin.repository import CidState, CopyRecord, CopyRepository, Want
from chalicelib.filecoin.selection import ProviderRule, choose, id_list
from chalicelib.filecoin.spend import epoch_at, period_of, term_cost
from chalicelib.metrics import emit_metrics
from chalicelib.pins.repository import PinRepository
from chalicelib.pins.request_ids import created_ms_of
from chalicelib.pins.timestamps import now_ms
from chalicelib.queue.messages import FilecoinCopyRequested, QueueMessage

logger = logging.getLogger("pinning.filecoin")

# The request's `info` keys the tracker owns (strings, as the spec wants).
INFO_KEYS = ("filecoin", "filecoin_copies", "filecoin_quota")
OFF, PENDING, PROVING, REPAIRING = "off", "pending", "proving", "repairing"
SPEND_CAP_REACHED = "spend cap reached"
FUNDS_EXHAUSTED = "wallet funds exhausted"
NO_PROVIDER = "no provider available"
# Due CIDs read from the index at a time.
PAGE = 100
# Visits in a row that found the backend unreachable before a run stops.
UNAVAILABLE_IN_A_ROW = 3


@dataclass(frozen=True)
class TrackerSettings:
    rule: ProviderRule = field(default_factory=ProviderRule)
    check_seconds: int = 3600
    adding_check_seconds: int = 60
    lapse_grace_seconds: int = 2 * 24 * 3600
    # A pending copy's message is sent again after this long: longer than a
    # turn of the archive function (15 min) and a delayed redelivery.
    resend_seconds: int = 3600
    # A CID waiting for funds, the cap or a provider is looked at again after this long.
    wait_seconds: int = 600
    term_epochs: int = 86_400
    spend_cap: int = 0
    renew_epochs: int = 20_160
    genesis_unix: int = 1598306400

    @classmethod
    def of(cls, settings: Settings) -> TrackerSettings:
        """The stage's (chalicelib.config)."""
        rule = ProviderRule(
            id_list(settings.filecoin_providers),
            id_list(settings.filecoin_excluded_providers),
            id_list(settings.filecoin_regions),
        )
        return cls(
            rule=rule,
            check_seconds=settings.filecoin_check_seconds,
            adding_check_seconds=settings.filecoin_adding_check_seconds,
            resend_seconds=settings.filecoin_resend_seconds,
            lapse_grace_seconds=settings.filecoin_lapse_grace_seconds,
            term_epochs=settings.filecoin_term_epochs,
            spend_cap=settings.filecoin_spend_cap,
            renew_epochs=settings.filecoin_renew_epochs,
            genesis_unix=settings.filecoin_genesis_unix,
        )


@dataclass
class TrackReport:
    """What one run did."""

    visited: int = 0
    made: int = 0
    repaired: int = 0
    lapsed: int = 0
    failed: int = 0
    ended: int = 0
    spend_cap_reached: int = 0
    funds_low: int = 0
    unavailable: int = 0
    seen: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        names = ("visited", "made", "repaired", "lapsed", "failed", "ended", "spend_cap_reached", "funds_low")
        return {name: getattr(self, name) for name in (*names, "unavailable")}


class Stop(Exception):
    """Another writer changed the CID (or one of its copies) since this visit
    read it: the visit writes nothing more; the CID is due again."""


@dataclass
class _Visit:
    """One CID as a visit sees it; `version` follows the visit's own steps."""

    cid: str
    state: CidState
    wants: list[Want]
    copies: list[CopyRecord]
    car: ArchivedCar | None
    now: int
    version: int
    waiting: str = ""
    # The copies asked by the holders whose quota caps them (tenant, request).
    asked: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def wanted(self) -> int:
        return max((want.copies for want in self.wants), default=0) if self.car is not None else 0

    def replace_copy(self, record: CopyRecord) -> None:
        self.copies = [record if copy.key == record.key else copy for copy in self.copies]


class Tracker:
    def __init__(
        self,
        copies: CopyRepository,
        backend: FilecoinBackend,
        archives: ArchiveRepository,
        store: PinRepository,
        send: Callable[[QueueMessage], None],
        settings: TrackerSettings,
        clock: Callable[[], int] = now_ms,
        page: int = PAGE,
        quota: Callable[[str], int | None] = lambda tenant_id: None,
    ) -> None:
        # A tenant's filecoin_copies quota (None: no limit).
        self._quota = quota
        self._copies = copies
        self._backend = backend
        self._archives = archives
        self._store = store
        self._send = send
        self._settings = settings
        self._clock = clock
        self._page = page

    # -- runs ------------------------------------------------------------------

    def run(self, deadline: float, limit: int) -> TrackReport:
        """Visit the CIDs due, oldest first, up to `limit` of them, until
        `deadline` (time.monotonic()) or none is due."""
        report = TrackReport()
        in_a_row = 0
        while time.monotonic() < deadline and len(report.seen) < limit and in_a_row < UNAVAILABLE_IN_A_ROW:
            due = self._copies.due(self._clock() + 1, min(self._page, limit - len(report.seen)))
            fresh = [item.cid for item in due if item.cid not in report.seen]
            if not fresh:  # none due, or only those this run saw (the index lags)
                break
            for cid in fresh:
                if time.monotonic() >= deadline or in_a_row >= UNAVAILABLE_IN_A_ROW:
                    break
                report.seen.add(cid)
                in_a_row = 0 if self.visit(cid, report) else in_a_row + 1
        return report

    def visit(self, cid: str, report: TrackReport) -> bool:
        """One visit of the CID; False when the backend could not be reached."""
        try:
            self._visit(cid, report)
        except BackendUnavailable as error:
            report.unavailable += 1
            logger.warning("Filecoin backend unavailable", extra={"cid": cid, "error": str(error)})
            return False
        except Stop:
            logger.info("the CID changed during its visit", extra={"cid": cid})
        return True

    def end_all(self, cid: str) -> bool:
        """End every live copy of the CID (its archive is about to be
        deleted); True when none is left live."""
        try:
            for record in self._copies.copies(cid):
                if record.receipt.state.live or record.receipt.state is CopyState.LAPSED:
                    self._end(record, self._clock(), "the archive is deleted")
        except (BackendUnavailable, Stop):
            return False
        return True

    # -- a visit ---------------------------------------------------------------

    def _visit(self, cid: str, report: TrackReport) -> None:
        records = self._copies.records(cid)
        state, now = records.state, self._clock()
        if state is None or state.due_ms is None or state.due_ms > now:
            return  # the index lags, or a visit moved it meanwhile
        report.visited += 1
        archive = self._archives.state(cid)
        car = archive.car if archive is not None and archive.state == ARCHIVED else None
        visit = _Visit(cid, state, records.wants, records.copies, car, now, state.version)
        self._cap(visit)
        for record in list(visit.copies):
            visit.replace_copy(self._followed(record, now, report))
        self._end_surplus(visit, report)
        need = visit.wanted - len(self._lasting(visit))
        if need > 0 and visit.car is not None:
            self._make(visit, visit.car, need, report)
        shown = self._show(visit)
        next_state = CidState(cid, visit.version + 1, self._next_due(visit), visit.waiting, shown)
        if not self._copies.set_state(next_state):
            raise Stop(cid)

    def _cap(self, visit: _Visit) -> None:
        """Each want at most its tenant's quota; what the capped ones asked."""
        capped = []
        for want in visit.wants:
            quota = self._quota(want.tenant_id)
            if quota is not None and want.copies > quota:
                visit.asked[(want.tenant_id, want.request_id)] = want.copies
                want = replace(want, copies=quota)
            capped.append(want)
        visit.wants = capped

    # -- following -------------------------------------------------------------

    def _followed(self, record: CopyRecord, now: int, report: TrackReport) -> CopyRecord:
        state, settings = record.receipt.state, self._settings
        if state is CopyState.PENDING:
            return self._resent(record, now)
        if state in (CopyState.ADDING, CopyState.LAPSED):
            every = settings.adding_check_seconds
        elif state is CopyState.PROVING:
            every = settings.check_seconds
        else:
            return record  # failed, terminated or ended: nothing to follow
        if record.checked_ms is not None and now - record.checked_ms < every * 1000:
            return record
        receipt = self._backend.follow(record.receipt)
        lapsed_ms = (record.lapsed_ms or now) if receipt.state is CopyState.LAPSED else None
        followed = replace(record, receipt=receipt, checked_ms=now, lapsed_ms=lapsed_ms)
        # Unchanged, it is not written: the state's due time, from this check, says when to follow next.
        if receipt != record.receipt or lapsed_ms != record.lapsed_ms:
            self._count_change(record, receipt, report)
            followed = self._saved(followed, now)
        if lapsed_ms is not None and now - lapsed_ms > settings.lapse_grace_seconds * 1000:
            return self._end(followed, now, f"lapsed for longer than the grace ({receipt.detail or 'no proof'})")
        return followed

    def _count_change(self, record: CopyRecord, receipt: Receipt, report: TrackReport) -> None:
        if receipt.state is CopyState.LAPSED and record.lapsed_ms is None:
            report.lapsed += 1
            logger.warning("Filecoin copy lapsed", extra={"cid": record.cid, "provider": record.provider_id})
        if receipt.state in (CopyState.FAILED, CopyState.TERMINATED):
            report.failed += 1
            logger.warning("Filecoin copy lost", extra={"cid": record.cid, "provider": record.provider_id})

    def _resent(self, record: CopyRecord, now: int) -> CopyRecord:
        if now - record.updated_ms < self._settings.resend_seconds * 1000:
            return record
        resent = self._saved(record, now)
        self._send(FilecoinCopyRequested(record.cid, record.provider_id, record.n))
        return resent

    def _saved(self, record: CopyRecord, now: int) -> CopyRecord:
        """`record` (changed from the version read) written one version on."""
        saved = replace(record, updated_ms=now, version=record.version + 1)
        if not self._copies.save_copy(saved):
            raise Stop(record.cid)
        return saved

    # -- ending ----------------------------------------------------------------

    def _end_surplus(self, visit: _Visit, report: TrackReport) -> None:
        lasting = self._lasting(visit)
        proving = [record for record in lasting if record.receipt.state is CopyState.PROVING]
        newest_first = sorted(lasting, key=lambda record: (record.created_ms, record.key), reverse=True)
        surplus = newest_first[: max(0, len(lasting) - visit.wanted)]
        # A renewing copy goes once its replacements prove (or none is wanted).
        if len(proving) >= visit.wanted:
            surplus += [record for record in self._counted(visit) if record not in lasting]
        for record in surplus:
            visit.replace_copy(self._end(record, visit.now, "no longer wanted"))
            report.ended += 1

    def _end(self, record: CopyRecord, now: int, why: str) -> CopyRecord:
        """The copy ended at the provider (a pending one has nothing there
        yet: the copy maker ends what it made if it finds it ended)."""
        if record.receipt.state is CopyState.PENDING:
            receipt = replace(record.receipt, state=CopyState.ENDED, detail=why)
        else:
            receipt = replace(self._backend.end(record.receipt), state=CopyState.ENDED, detail=why)
        logger.info("Filecoin copy ended", extra={"cid": record.cid, "provider": record.provider_id, "why": why})
        return self._saved(replace(record, receipt=receipt), now)

    # -- making ----------------------------------------------------------------

    def _make(self, visit: _Visit, car: ArchivedCar, need: int, report: TrackReport) -> None:
        piece = Piece(visit.cid, car.piece_cid_v2, car.piece_cid_v1, car.padded_size, car.car_bytes)
        shunned = {record.provider_id for record in visit.copies}
        chosen = choose(visit.cid, self._backend.providers(), need, self._settings.rule, shunned)
        if not chosen:
            visit.waiting = NO_PROVIDER
            return
        cost = term_cost(self._backend.cost_per_epoch(piece), self._settings.term_epochs)
        available = self._backend.funds().available
        repair = any(_lost(record) for record in visit.copies)
        for provider in chosen:
            if available < cost:
                visit.waiting = FUNDS_EXHAUSTED
                report.funds_low += 1
                return
            period = period_of(visit.now)
            if not self._copies.reserve_spend(period, cost, self._settings.spend_cap):
                visit.waiting = SPEND_CAP_REACHED
                report.spend_cap_reached += 1
                return
            receipt = Receipt(provider.provider_id, piece.piece_cid, CopyState.PENDING)
            record = CopyRecord(visit.cid, 0, receipt, created_ms=visit.now, updated_ms=visit.now)
            if not self._copies.add_copy(record, visit.version):
                self._copies.release_spend(period, cost)
                raise Stop(visit.cid)
            visit.version += 1
            visit.copies.append(replace(record, version=1))
            available -= cost
            self._send(FilecoinCopyRequested(visit.cid, provider.provider_id, record.n))
            if repair:
                report.repaired += 1
            else:
                report.made += 1
            logger.info("Filecoin copy begun", extra={"cid": visit.cid, "provider": provider.provider_id})

    # -- counting --------------------------------------------------------------

    def _counted(self, visit: _Visit) -> list[CopyRecord]:
        """The copies that count: live, or lapsed within the grace."""
        return [record for record in visit.copies if record.receipt.state.live or _lapsed(record)]

    def _lasting(self, visit: _Visit) -> list[CopyRecord]:
        """The counted copies not about to end (renewing ones are replaced)."""
        head = epoch_at(visit.now, self._settings.genesis_unix)
        renew = self._settings.renew_epochs
        return [
            record
            for record in self._counted(visit)
            if record.receipt.ends_epoch is None or record.receipt.ends_epoch - head > renew
        ]

    # -- showing ---------------------------------------------------------------

    def _show(self, visit: _Visit) -> str:
        """Each holder's `info`, written where it changed; what was shown."""
        proving = sum(1 for record in self._counted(visit) if record.receipt.state is CopyState.PROVING)
        lost = any(_lost(record) for record in visit.copies)
        shown = {
            (want.tenant_id, want.request_id): _summary(min(proving, want.copies), want.copies, visit.waiting, lost)
            | _quota_note(want, visit.asked.get((want.tenant_id, want.request_id)))
            for want in visit.wants
        }
        digest = hashlib.sha256(json.dumps(sorted(shown.items())).encode()).hexdigest()[:16]
        if digest == visit.state.shown:
            return digest
        written = True
        for (tenant_id, request_id), info in shown.items():
            created_ms = created_ms_of(request_id)
            if created_ms is not None:
                written = merge_info(self._store, tenant_id, created_ms, request_id, INFO_KEYS, info) and written
        return digest if written else ""  # one kept changing: shown again next visit

    def _next_due(self, visit: _Visit) -> int | None:
        settings, times = self._settings, []
        for record in self._counted(visit):
            state, checked = record.receipt.state, record.checked_ms or visit.now
            if state is CopyState.PENDING:
                times.append(record.updated_ms + settings.resend_seconds * 1000)
            elif state is CopyState.PROVING:
                times.append(checked + settings.check_seconds * 1000)
            else:
                times.append(checked + settings.adding_check_seconds * 1000)
        if visit.waiting:
            times.append(visit.now + settings.wait_seconds * 1000)
        return min(times, default=None)


def _lapsed(record: CopyRecord) -> bool:
    """Lapsed and not yet ended for it (a lapse past the grace is ended)."""
    return record.receipt.state is CopyState.LAPSED


def _lost(record: CopyRecord) -> bool:
    """Failed, terminated, or ended after a lapse: to be repaired elsewhere."""
    state = record.receipt.state
    return state in (CopyState.FAILED, CopyState.TERMINATED) or (
        state is CopyState.ENDED and record.lapsed_ms is not None
    )


def _summary(proving: int, wanted: int, waiting: str, lost: bool) -> dict[str, str]:
    if wanted == 0:
        word = OFF
    elif proving >= wanted:
        word = PROVING
    elif waiting:
        word = f"waiting: {waiting}"
    else:
        word = REPAIRING if lost else PENDING
    return {"filecoin_copies": f"{proving}/{wanted}", "filecoin": word}


def _quota_note(want: Want, asked: int | None) -> dict[str, str]:
    if asked is None:
        return {}
    return {"filecoin_quota": f"{asked} copies asked, capped at {want.copies} by the plan's filecoin_copies quota"}


def emit_copy_metrics(report: TrackReport, stage: str, out: TextIO) -> None:
    """One run's copies as a CloudWatch embedded-metric line (alarms: infra/)."""
    counts: Sequence[tuple[str, int]] = (
        ("FilecoinCopiesMade", report.made),
        ("FilecoinCopiesRepaired", report.repaired),
        ("FilecoinCopiesLapsed", report.lapsed),
        ("FilecoinCopiesFailed", report.failed),
        ("FilecoinCopiesEnded", report.ended),
        ("FilecoinSpendCapReached", report.spend_cap_reached),
        ("FilecoinFundsLow", report.funds_low),
        ("FilecoinBackendUnavailable", report.unavailable),
    )
    emit_metrics({name: (value, "Count") for name, value in counts}, stage, out)
