"""What the fleet reconciler reads and writes beside the holds (see
chalicelib/fleet/reconciler.py): a (node, CID) pin's holds as counted and
as stored, the first sighting of a pin nothing holds, the first sighting of
a hold whose request is gone or failed (an orphan), and each node's place in
its pass.

Every write that depends on what was read is conditioned on the pin's
`changes`, which each hold added or removed moves on (HoldRepository's add
and remove): so no hold can come or go between a read and the write that
acts on it, in any order of the two (a count read before a concurrent add
and written after it, or a pin seen unheld before a hold came and went).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.fleet.hold_repository import Cursor, Holder, Lease


@dataclass(frozen=True)
class Sighting:
    """The pin was first seen with no hold at `since_ms`, at `changes`."""

    since_ms: int
    changes: int


@dataclass(frozen=True)
class Tally:
    """A (node, CID) pin as stored: its count, the holds it counts, and
    what the reconciler noted about it."""

    # The state item's count (what releases trust)...
    holders: int
    # ...and the holder items there are.
    held_by: int
    # Holds added and removed so far (and counts corrected).
    changes: int
    lease: Lease | None
    unheld: Sighting | None


@dataclass(frozen=True)
class ReconcileCursor:
    """Where a node's pass is: the holders already compared with Kubo, the
    pins of Kubo's listing already compared with the holds, and the repairs
    that did not finish (tried again first)."""

    held_after: Cursor | None = None
    listed: int = 0
    repairs: tuple[Holder, ...] = ()


class ReconcileRepository(Protocol):
    def tally(self, node_id: str, cid_key: str) -> Tally:
        """The pin's state, then its holder items counted (strongly
        consistent reads, in that order)."""

    def recount(self, node_id: str, cid_key: str, tally: Tally) -> bool:
        """Store `tally.held_by` as the count (one more change), only if the
        pin's changes are still `tally.changes`. False, writing nothing, otherwise."""

    def sight(self, node_id: str, cid_key: str, tally: Tally, now_ms: int) -> bool:
        """Note the pin as unheld since `now_ms` at `tally.changes`, only if
        its changes are still those. False, writing nothing, otherwise."""

    def take_unheld(self, node_id: str, cid_key: str, sighting: Sighting, lease: Lease, now_ms: int) -> bool:
        """Set `lease` (and forget the sighting) only if the pin is still as
        sighted - no hold counted, its changes and sighting unchanged - and no
        removal is active at `now_ms`. False, writing nothing, otherwise."""

    def orphans(self, node_id: str, holders: Sequence[Holder]) -> dict[Holder, int]:
        """When each of `holders` (on the node) was first seen orphaned, for
        those noted so: one strongly consistent read of their holder items.
        A hold given up and taken again since is another, not noted."""

    def note_orphan(self, node_id: str, holder: Holder, now_ms: int) -> bool:
        """Note the hold as orphaned since `now_ms`, only if it is stored and
        not noted yet. False, writing nothing, otherwise."""

    def forget_orphan(self, node_id: str, holder: Holder) -> None:
        """Forget that the hold was seen orphaned (its request is back); nothing
        when the hold is gone."""

    def cursor(self, node_id: str) -> ReconcileCursor:
        """The node's cursor; a fresh one when none is stored."""

    def save_cursor(self, node_id: str, cursor: ReconcileCursor) -> None:
        """Store the node's cursor in place of the last."""
