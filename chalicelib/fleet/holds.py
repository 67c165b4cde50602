"""Reference counting of Kubo pins shared by requests on one node.

A request takes a hold on (node, CID) before pinning there and gives it up
when it is deleted, replaced or failed; the pin is removed from the node only
by whoever gives up the last hold, under a lease that tells new holders not
to trust the pin until the removal is over.
"""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.fleet.hold_repository import Added, Cursor, Hold, Holder, HoldRepository, Lease, Removed
from chalicelib.pins.timestamps import now_ms


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
            lease = self._holds.lease(node_id, cid_key)
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
        # The last holder takes the removal in the same step; any other just
        # leaves (two steps at most: the second needs no condition but the hold's).
        removed = self._holds.remove(hold, now, lease)
        if removed is Removed.REMOVED:
            return True
        if removed is Removed.NOT_LAST and self._holds.remove(hold, now, None) is Removed.REMOVED:
            return False
        # Not a holder (any more): own the removal only if it is ours and unfinished, or forced.
        return self._holds.take_lease(node_id, cid_key, lease, now, force)

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
