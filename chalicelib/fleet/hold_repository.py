"""Where holds on (node, CID) pins are kept: atomic steps that PinHolds combines.

The state of a (node, CID) pin - its holder count and release lease - is
written by many workers at once, but only by atomic steps (an ADD to the
count, a lease set or removed under a condition on what is stored, never on
what was read), and holder items are created if absent or deleted if present:
nothing here is read-modify-written, so nothing carries a version.
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


class Added(Enum):
    ADDED = "added"
    ALREADY_HELD = "already held"
    # Not added: the pin is being removed (an active lease).
    RELEASING = "releasing"


class Removed(Enum):
    REMOVED = "removed"
    NOT_HELD = "not held"
    # Not removed: it is not the last hold, or the pin is being removed.
    NOT_LAST = "not last"


class HoldRepository(Protocol):
    def add(self, hold: Hold, now_ms: int) -> Added:
        """Add the hold and count it, unless already there or the pin is
        being removed at `now_ms`."""

    def remove(self, hold: Hold, now_ms: int, lease: Lease | None) -> Removed:
        """Delete the hold and uncount it. With `lease`, only if it is the
        last hold and no removal is active at `now_ms`, setting `lease` in
        the same step."""

    def lease(self, node_id: str, cid_key: str) -> Lease | None:
        """The pin's release lease as stored now, active or not."""

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
