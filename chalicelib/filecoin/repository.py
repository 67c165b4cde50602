"""Where the Filecoin copies of CIDs are recorded: plain values and the
atomic steps the tracker and the copy maker combine.

Per CID: what each holding request wants (a `Want`), every copy ever begun
(a `CopyRecord`: its receipt and bookkeeping), and one `CidState` whose
`version` every step the tracker takes is conditioned on, so two trackers
visiting one CID at once never both add a copy (chalicelib.filecoin.tracker).
`due_ms` puts the CID in a sparse index read by time, never by a Scan.
Per calendar month a spend ledger, added to only below its cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.filecoin.backend import Receipt


@dataclass(frozen=True)
class Want:
    """Request `request_id` of `tenant_id` holds the CID's archive and wants `copies`."""

    tenant_id: str
    request_id: str
    copies: int


@dataclass(frozen=True)
class CopyRecord:
    """One copy as recorded: `n` numbers the copies ever begun with one
    provider for one CID (a later copy there after one ended is another)."""

    cid: str
    n: int
    receipt: Receipt
    created_ms: int
    updated_ms: int
    # Stores begun by the copy maker (a message delivered again is another).
    attempt: int = 0
    # When the copy was last followed with the backend (None: never).
    checked_ms: int | None = None
    # Since when it has been LAPSED without a break (None: it is not).
    lapsed_ms: int | None = None
    # Steps written: each write of a copy is conditioned on the one read.
    version: int = 0

    @property
    def provider_id(self) -> str:
        return self.receipt.provider_id

    @property
    def key(self) -> tuple[str, int]:
        return self.receipt.provider_id, self.n


@dataclass(frozen=True)
class CidState:
    """The tracker's record of one CID."""

    cid: str
    # Every write of the state adds one; a write states the version it read.
    version: int = 0
    # When the tracker visits it next (None: not until something changes).
    due_ms: int | None = None
    # Why copies are not being made ("spend cap reached"), or "".
    waiting: str = ""
    # The summary last written on the holding requests' `info` ("1/2 proving").
    shown: str = ""


@dataclass(frozen=True)
class CidRecords:
    """Everything recorded of one CID, read at once."""

    state: CidState | None
    wants: list[Want]
    copies: list[CopyRecord]


@dataclass(frozen=True)
class Due:
    cid: str
    due_ms: int


class CopyRepository(Protocol):
    def want(self, cid: str, want: Want, now_ms: int) -> None:
        """Store the request's want and make the CID due at `now_ms` (as
        `mark_due`), in one step."""

    def unwant(self, cid: str, tenant_id: str, request_id: str, now_ms: int) -> None:
        """Delete the request's want, if stored, and make the CID due at
        `now_ms` (as `mark_due`), in one step."""

    def copies(self, cid: str) -> list[CopyRecord]:
        """Every copy of the CID ever begun, oldest first (strongly consistent)."""

    def copy(self, cid: str, provider_id: str, n: int) -> CopyRecord | None:
        """One copy as stored now, or None."""

    def records(self, cid: str) -> CidRecords:
        """The CID's state, wants and copies (oldest first) in one strongly
        consistent read: what a tracker's visit starts from."""

    def due(self, before_ms: int, limit: int) -> list[Due]:
        """Up to `limit` CIDs due before `before_ms`, soonest first.
        Eventually consistent: the tracker reads each one's state."""

    def add_copy(self, record: CopyRecord, expected_version: int) -> bool:
        """Store a new copy and count a step of the CID's state, only if no
        copy has that key and the state is still at `expected_version`."""

    def save_copy(self, record: CopyRecord) -> bool:
        """Write the copy as given (its version one on), only if it is stored
        at `record.version - 1`."""

    def set_state(self, state: CidState) -> bool:
        """Write the state as given, only if it is stored at `state.version - 1`
        (version 1: only if none is stored)."""

    def mark_due(self, cid: str, now_ms: int) -> None:
        """Make the CID due at `now_ms`, a step of its state: a tracker that
        read it before then writes nothing over it."""

    def reserve_spend(self, period: str, amount: int, cap: int) -> bool:
        """Add `amount` to the period's spend only if the total stays within `cap`."""

    def release_spend(self, period: str, amount: int) -> None:
        """Take back `amount` reserved in the period (a copy that was not begun)."""

    def spent(self, period: str) -> int:
        """The period's spend so far."""
