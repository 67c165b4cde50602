"""Where the archives of CIDs are recorded: atomic steps the archiver combines.

One archive per CID (a CAR and its block index in S3), shared by every
request of every tenant that pinned the CID, refcounted like the hot holds
(chalicelib.fleet.hold_repository): each request has a holder item, the
state item counts them. A hold is added and counted in one step; a hold is
removed and uncounted only at the count its caller read, so the caller that
leaves none knows it, and the archive is then marked orphaned at that
moment in the same step (its deletion waits out a grace, see
chalicelib.cold.archive_sweep). Archiving itself runs under a lease on the
state item, so one archiver exports and uploads a CID at a time.

A cold-only tenant's hold also says when its request's hot copies are due
to be released (`cools_at_ms`, chalicelib.cold.tiering): the holds due are
found by time, never by a Scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

ARCHIVING = "archiving"
ARCHIVED = "archived"
FAILED = "failed"
# The sweep is deleting the S3 objects: no hold is taken until the state is gone.
DELETING = "deleting"


@dataclass(frozen=True)
class ArchiveHolder:
    """Request `request_id` of `tenant_id` holding the archive of `cid`."""

    cid: str
    tenant_id: str
    request_id: str


@dataclass(frozen=True)
class ArchiveHold:
    """A holder as stored: `cools_at_ms` is when its request's hot copies are
    due to be released (a cold-only tenant's); None when not scheduled."""

    holder: ArchiveHolder
    cools_at_ms: int | None = None


@dataclass(frozen=True)
class ArchiveLease:
    """An archiver (`by`, its message) exporting and uploading until `until_ms`."""

    by: str
    until_ms: int

    def active(self, now_ms: int) -> bool:
        return self.until_ms >= now_ms


@dataclass(frozen=True)
class ArchivedCar:
    """What an archive is, once uploaded."""

    car_key: str
    index_key: str
    car_bytes: int
    car_sha256: str  # hex
    piece_cid_v1: str
    piece_cid_v2: str
    padded_size: int
    archived_ms: int


@dataclass(frozen=True)
class ArchiveState:
    cid: str
    state: str  # ARCHIVING, ARCHIVED, FAILED or DELETING
    holders: int
    # Holds added and removed so far: a sweep's delete is conditioned on it.
    changes: int
    lease: ArchiveLease | None = None
    # Leases taken (each an export and upload begun).
    attempts: int = 0
    last_error: str | None = None
    car: ArchivedCar | None = None
    # When the last holder left (None while held).
    orphaned_ms: int | None = None


class Held(Enum):
    ADDED = "added"
    ALREADY_HELD = "already held"
    # Not added: the sweep is deleting the archive; come back once it is gone.
    DELETING = "deleting"


class Left(Enum):
    # The last hold: the archive is orphaned as of the step's time.
    LAST = "last"
    REMOVED = "removed"
    NOT_HELD = "not held"
    # Not removed: the count is no longer the one read.
    RECOUNT = "recount"


@dataclass(frozen=True)
class Orphan:
    cid: str
    orphaned_ms: int


class ArchiveRepository(Protocol):
    def hold(self, holder: ArchiveHolder, cools_at_ms: int | None = None) -> Held:
        """Add the holder (due to cool at `cools_at_ms`, if given) and count
        it (creating the state, ARCHIVING, for a new CID; clearing
        `orphaned_ms`), unless it is already stored or the archive is being
        deleted."""

    def hold_of(self, holder: ArchiveHolder) -> ArchiveHold | None:
        """The holder as stored now (strongly consistent), or None."""

    def holds_of(self, cid: str, tenant_id: str) -> list[ArchiveHold]:
        """The tenant's holders of the CID's archive (one read; eventually consistent)."""

    def due_to_cool(self, before_ms: int, limit: int) -> list[ArchiveHold]:
        """Up to `limit` holders due to cool before `before_ms`, soonest
        first. Eventually consistent: check each with `hold_of`."""

    def set_cooling(self, holder: ArchiveHolder, expected_ms: int | None, cools_at_ms: int | None) -> bool:
        """Make the holder due to cool at `cools_at_ms` (None: not at all),
        if it is stored and still due at `expected_ms` (None: not due)."""

    def state(self, cid: str) -> ArchiveState | None:
        """The archive's state as stored now (strongly consistent)."""

    def leave(self, holder: ArchiveHolder, holders: int, now_ms: int) -> Left:
        """Delete the holder and count `holders - 1`, only if the holder is
        stored and the count is still `holders`; when none is left, set
        `orphaned_ms` to `now_ms` in the same step."""

    def take_lease(self, cid: str, lease: ArchiveLease, now_ms: int) -> ArchiveState | None:
        """Set `lease` and count an attempt, if the archive is ARCHIVING and
        no other archiver's lease is active at `now_ms` (a repeat by the same
        `lease.by` takes it again). The state as now stored, or None, writing
        nothing."""

    def record_archived(self, cid: str, by: str, car: ArchivedCar) -> bool:
        """ARCHIVED with `car`, the lease ended, if `by` holds the lease."""

    def record_failure(self, cid: str, by: str | None, error: str, failed: bool) -> bool:
        """Note `error` and end the lease, if `by` holds it (None: whoever
        does, or nobody, while ARCHIVING); `failed` also makes the archive
        FAILED. False, writing nothing, otherwise."""

    def orphaned(self, before_ms: int, limit: int) -> list[Orphan]:
        """Up to `limit` archives orphaned before `before_ms`, oldest first.
        Eventually consistent: check each with `state`."""

    def start_deleting(self, cid: str, orphaned_ms: int, changes: int) -> bool:
        """DELETING, if no holder came back since the state was read (its
        `orphaned_ms` and `changes` are still those)."""

    def forget(self, cid: str) -> bool:
        """Delete the state item, if DELETING with no holder."""
