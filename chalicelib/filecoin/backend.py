"""The interface every Filecoin storage backend implements.

A copy is one storage provider keeping one piece (the CAR of a pinned CID,
chalicelib.cold) and proving it. The service decides how many copies and
with whom; a backend only knows how to make, follow and end one copy. PDP
on Filecoin Onchain Cloud is the first (chalicelib.filecoin.pdp); Boost
market deals or an aggregator would be others, with their own states mapped
onto CopyState.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class CopyState(StrEnum):
    """Where one copy stands. The backend's and the chain's own states map
    onto these; a request's `status` never depends on them."""

    # Chosen and recorded; nothing sent to the provider yet.
    PENDING = "pending"
    # Uploaded, and the transaction adding it to a data set submitted.
    ADDING = "adding"
    # On chain and proven within its proving period.
    PROVING = "proving"
    # On chain, but a proving deadline passed without a proof: repaired
    # with another provider if it does not recover.
    LAPSED = "lapsed"
    # Ended by the provider, the chain or its payment rail: repaired.
    TERMINATED = "terminated"
    # Could not be made (refused, upload cut, transaction reverted): repaired.
    FAILED = "failed"
    # Ended by the service because no request wants it any more.
    ENDED = "ended"

    @property
    def live(self) -> bool:
        """Counts towards the copies a CID has (or is about to have)."""
        return self in (CopyState.PENDING, CopyState.ADDING, CopyState.PROVING)


@dataclass(frozen=True)
class Provider:
    """A storage provider as the backend's registry lists it."""

    provider_id: str
    name: str
    service_url: str
    # An ISO 3166 country or a region name when the registry tells one.
    region: str | None = None
    active: bool = True


@dataclass(frozen=True)
class Piece:
    """What a copy stores: the archive of one pinned CID."""

    cid: str
    # FRC-0069 piece CID v2 (what PDP contracts want) and v1 (CommP).
    piece_cid: str
    piece_cid_v1: str
    padded_size: int
    car_bytes: int


class PieceBytes(Protocol):
    """The CAR of a piece, streamed (it may be many GiB)."""

    def chunks(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Receipt:
    """Everything known of one copy: what a user is shown as its receipt.

    Backend-specific identifiers are strings so other backends fit (a PDP
    data set id and piece id; a market deal id would be another).
    """

    provider_id: str
    piece_cid: str
    state: CopyState
    data_set_id: str | None = None
    piece_id: str | None = None
    # Hashes of the transactions that made or changed the copy, oldest first.
    transactions: tuple[str, ...] = field(default_factory=tuple)
    last_proven_epoch: int | None = None
    # The chain epoch after which the copy is no longer paid for or kept, if any.
    ends_epoch: int | None = None
    # Why the copy is in its state, in words (a refusal, a revert, a lapse).
    detail: str = ""


@dataclass(frozen=True)
class Funds:
    """The service wallet's money as the backend's payment system sees it,
    in the token's smallest unit (USDFC has 18 decimals)."""

    available: int
    # What the copies held now lock up; new copies need available above it.
    locked: int
    # Epochs the available funds keep the current copies paid for.
    runway_epochs: int | None = None


class BackendUnavailable(Exception):
    """The chain RPC or the provider could not be reached or answered
    wrongly: nothing changed, try again later."""


class CopyRefused(Exception):
    """This provider will not (or cannot) make this copy: choose another."""


class FilecoinBackend(Protocol):
    """Makes, follows and ends copies with one kind of storage provider."""

    # Names the backend in receipts and configuration ("pdp").
    name: str

    def providers(self) -> list[Provider]:
        """The providers a copy may be made with (active ones), from the
        backend's registry. Raises BackendUnavailable."""

    def store(self, provider: Provider, piece: Piece, data: PieceBytes, deadline: float) -> Receipt:
        """Uploads the piece to the provider and submits what adds it to the
        service's data set there (creating the data set if it has none).
        Returns the receipt in ADDING (or PROVING if already there). Must
        end by `deadline` (time.monotonic()). Raises CopyRefused or
        BackendUnavailable; a retry of the same provider and piece must not
        make a second copy."""

    def follow(self, receipt: Receipt) -> Receipt:
        """The copy's state now, from the provider and the chain: ADDING
        until its transaction is final, then PROVING, LAPSED or TERMINATED
        (or FAILED if the transaction reverted). Raises BackendUnavailable."""

    def end(self, receipt: Receipt) -> Receipt:
        """Asks for the copy to be removed (it is no longer wanted); returns
        it ENDED. Raises BackendUnavailable."""

    def funds(self) -> Funds:
        """The wallet's funds for copies. Raises BackendUnavailable."""

    def cost_per_epoch(self, piece: Piece) -> int:
        """What keeping one copy of the piece costs per epoch, in the
        token's smallest unit (for the spend cap)."""
