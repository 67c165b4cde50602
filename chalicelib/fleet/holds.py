"""Reference counting of Kubo pins shared by requests on one node.

A request takes a hold on (node, CID) before pinning there and gives it up
when it is deleted, replaced or failed; the pin is removed from the node only
by whoever gives up the last hold, under a lease that tells new holders not
to trust the pin until the removal is over. A release is conditioned on the
count it read, so of requests letting go at the same instant exactly one
sees that none is left.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.busy import StorageBusy
from chalicelib.fleet.hold_repository import Added, Cursor, Hold, Holder, HoldRepository, Lease, Removed
from chalicelib.pins.timestamps import now_ms

# Reads of the count for one release: each after the first follows another
# holder's change of it, so only a crowd letting go of one CID at once runs
# out (the message is then retried).
RECOUNTS = 10


class PinHolds:
    def __init__(self, holds: HoldRepository, lease_seconds: int, clock: Callable[[], int] = now_ms) -> None:
        self._holds = holds
        self._lease_ms = lease_seconds * 1000
        self._clock = clock

    def hold(self, node_id: str, cid_key: str, tenant_id: str, request_id: str) -> bool:
        """Take the request's hold. False while the pin is being removed:
        the caller must come back later (a hold is then not taken)."""
        now = self._clock()
        added = self._holds.add(Hold(node_id, cid_key, tenant_id, request_id), now)
        if added is Added.ALREADY_HELD:
            # A repeated message: only the lease matters.
            lease = self._holds.state(node_id, cid_key).lease
            return lease is None or not lease.active(now)
        return added is Added.ADDED

    def holding(self, node_id: str, cid_key: str, tenant_id: str, request_id: str) -> bool:
        """Whether the request holds `cid_key` on the node now."""
        return self._holds.held(Hold(node_id, cid_key, tenant_id, request_id))

    def release(
        self, node_id: str, cid_key: str, tenant_id: str, request_id: str, token: str, force: bool = False
    ) -> bool:
        """Give up the request's hold. True when no hold is left and the
        caller now owns the removal: unpin, then call `released`. A repeat
        with the same token (a retried message) owns it again while its
        removal is unfinished; any other repeat owns nothing. `force` also
        takes the removal when the request held nothing (a pin made on Kubo
        after its request was gone)."""
        hold = Hold(node_id, cid_key, tenant_id, request_id)
        now = self._clock()
        lease = Lease(token, now + self._lease_ms)
        removed = self._remove(hold, lease)
        if removed is not Removed.NOT_HELD:
            # Whoever takes the count to 0 took the removal in the same step.
            return removed is Removed.LAST
        # Not a holder (any more): own the removal only if it is ours and unfinished, or forced.
        return self._holds.take_lease(node_id, cid_key, lease, now, force)

    def _remove(self, hold: Hold, lease: Lease) -> Removed:
        for _ in range(RECOUNTS):
            # A stored hold is counted: a count below 1 is wrong, and left
            # for the reconciler to correct (this release is then retried).
            holders = max(self._holds.state(hold.node_id, hold.cid_key).holders, 1)
            removed = self._holds.remove(hold, holders, lease)
            if removed is not Removed.RECOUNT:
                return removed
        raise StorageBusy(f"the holders of {hold.cid_key} on {hold.node_id} kept changing")

    def drop(self, node_id: str, cid_key: str, tenant_id: str, request_id: str, token: str) -> None:
        """Give up the request's hold on a node that left the fleet: its pins
        went with it, so there is nothing to unpin (and no RPC to call)."""
        if self.release(node_id, cid_key, tenant_id, request_id, token, force=True):
            self.released(node_id, cid_key, token)

    def released(self, node_id: str, cid_key: str, token: str) -> None:
        """The pin is gone from the node: end the lease."""
        self._holds.end_lease(node_id, cid_key, token)

    def holders_on(self, node_id: str, after: Cursor | None, limit: int) -> tuple[list[Holder], Cursor | None]:
        """A page of the requests holding pins on `node_id` (see HoldRepository)."""
        return self._holds.holders_on(node_id, after, limit)

    def take_turn(self, tenant_id: str, request_id: str, turn: int, owner: str) -> bool:
        """Whether message `owner` carries the request's work at `turn` (see HoldRepository)."""
        return self._holds.take_turn(tenant_id, request_id, turn, owner)

    def end_turns(self, tenant_id: str, request_id: str) -> None:
        self._holds.end_turns(tenant_id, request_id)
