"""The Filecoin copies of a CID as the rest of the service sees them: the
archiver records what each holding request wants (and lets it go), the
API reads the receipts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chalicelib.filecoin.backend import Receipt
from chalicelib.filecoin.repository import CopyRepository, Want
from chalicelib.filecoin.wanted import WantedCopies
from chalicelib.pins.timestamps import now_ms


@dataclass(frozen=True)
class CopyReceipt:
    """One copy's receipt, with when it was begun and last changed."""

    receipt: Receipt
    created_ms: int
    updated_ms: int


class CopyWants:
    """The archiver's side: a holder's want recorded, or let go; either makes
    the CID due for the tracker (chalicelib.filecoin.tracker) now."""

    def __init__(self, copies: CopyRepository, wanted: WantedCopies, clock: Callable[[], int] = now_ms) -> None:
        self._copies = copies
        self._wanted = wanted
        self._clock = clock

    def held(self, cid: str, tenant_id: str, request_id: str, meta: Mapping[str, str]) -> None:
        """Request `request_id` holds the CID's archived CAR."""
        want = Want(tenant_id, request_id, self._wanted.of_request(tenant_id, meta))
        self._copies.want(cid, want, self._clock())

    def let_go(self, cid: str, tenant_id: str, request_id: str) -> None:
        """The request no longer holds the archive (idempotent)."""
        self._copies.unwant(cid, tenant_id, request_id, self._clock())


def receipts_of(copies: CopyRepository, cid: str) -> list[CopyReceipt]:
    """Every copy of the CID ever begun, oldest first: live, lost and ended."""
    return [CopyReceipt(record.receipt, record.created_ms, record.updated_ms) for record in copies.copies(cid)]
