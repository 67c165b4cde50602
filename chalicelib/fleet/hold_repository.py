"""Where holds on (node, CID) pins are kept: atomic steps that PinHolds combines.

The state of a (node, CID) pin - its holder count and release lease - is
written by many workers at once, but only by atomic steps, each changing a
holder item and the count together so the count is always exact: a hold is
added (and counted) under a condition on what is stored; a hold is removed
(and uncounted) only if the count is still the one its caller read, so the
caller whose removal leaves no holder knows it, and owns the pin's removal.

Beside them, a request's pin work keeps the turn of its continuation (see
PinWorker's turns): one conditional write per continued message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol


@dataclass(frozen=True)
class Hold:
    """Request `request_id` of `tenant_id` holding `cid_key` on `node_id`."""

    node_id: str
    cid_key: str
    tenant_id: str
    request_id: str


@dataclass(frozen=True)
class Holder:
    """One request holding `cid_key` on a node (a page of a node's holders)."""

    cid_key: str
    tenant_id: str
    request_id: str


# Where a page of a node's holders ends: opaque to the caller, given back for the next page.
Cursor = tuple[str, str]


@dataclass(frozen=True)
class Lease:
    """A worker (`token`) removing the pin from its node, until `until_ms`."""

    token: str
    until_ms: int

    def active(self, now_ms: int) -> bool:
        return self.until_ms >= now_ms


@dataclass(frozen=True)
class PinState:
    """A (node, CID) pin as stored: how many requests hold it, and its release lease."""

    holders: int
    lease: Lease | None


class Added(Enum):
    ADDED = "added"
    ALREADY_HELD = "already held"
    # Not added: the pin is being removed (an active lease).
    RELEASING = "releasing"


class Removed(Enum):
    # The last hold: the lease is set, and the caller removes the pin.
    LAST = "last"
    # Other holds remain.
    REMOVED = "removed"
    NOT_HELD = "not held"
    # Not removed: the count is no longer the one read.
    RECOUNT = "recount"


class HoldRepository(Protocol):
    def add(self, hold: Hold, now_ms: int) -> Added:
        """Add the hold and count it, unless already there or the pin is
        being removed at `now_ms`."""

    def state(self, node_id: str, cid_key: str) -> PinState:
        """The pin's count and lease (active or not) as stored now."""

    def remove(self, hold: Hold, holders: int, lease: Lease) -> Removed:
        """Delete the hold and count `holders - 1`, only if the hold is
        stored and the count is still `holders`; when none is left, set
        `lease` in the same step. (While holds are stored, no lease is
        active: `add` refuses during one, so a lease still stored is over.)"""

    def held(self, hold: Hold) -> bool:
        """Whether the hold is stored now (strongly consistent)."""

    def take_lease(self, node_id: str, cid_key: str, lease: Lease, now_ms: int, force: bool) -> bool:
        """Set `lease` when the pin has no holds and the stored lease is
        `lease.token`'s, or (with `force`) when no removal is active at
        `now_ms`. False, writing nothing, otherwise."""

    def end_lease(self, node_id: str, cid_key: str, token: str) -> None:
        """Remove the lease if `token` holds it; nothing otherwise."""

    def holders_on(self, node_id: str, after: Cursor | None, limit: int) -> tuple[list[Holder], Cursor | None]:
        """Up to `limit` holders on `node_id` after `after`, and the cursor of
        the next page (None at the end). Eventually consistent: a hold taken
        just now may show late."""

    def take_turn(self, tenant_id: str, request_id: str, turn: int, owner: str) -> bool:
        """Record that message `owner` carries turn `turn` of the request's
        work, unless a later turn, or this one by another message, is
        recorded. False, writing nothing, otherwise."""

    def end_turns(self, tenant_id: str, request_id: str) -> None:
        """Forget the request's turns (its work is over)."""
