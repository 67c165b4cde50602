"""The bytes change a pin write records, in the write's own transaction
(pin_store): one item, of the pin's own, only when the write moves bytes
(into or out of `pinned`, a pinned pin deleted or replaced, an archive or
Filecoin copies recorded in its `info`, an archived request deleted). One
that starts or ends the request's hold of its CID names the CID, for the
operator's unique bytes (chalicelib.usage.unique)."""

from __future__ import annotations

from chalicelib.pins.pin import Pin
from chalicelib.storage.usage_item import UsageItem
from chalicelib.storage.usage_keys import usage_change_key
from chalicelib.usage.pin_bytes import bytes_change, cold_change, filecoin_change, hold_change


def usage_change_items(shard: str, before: Pin | None, after: Pin | None, at_ms: int) -> list[UsageItem]:
    """The item recording how the write from `before` to `after` (None: no
    pin) changes the tenant's bytes, at the pin's version after the write."""
    delta, cold, filecoin = bytes_change(before, after), cold_change(before, after), filecoin_change(before, after)
    if not delta and not cold and not filecoin:
        return []
    if after is not None:
        created_ms, request_id, version = after.created_ms, after.request_id, after.version
    elif before is not None:
        created_ms, request_id, version = before.created_ms, before.request_id, before.version + 1
    else:
        return []
    key = usage_change_key(created_ms, request_id, version)
    item = UsageItem(shard, key, delta=delta, cold_delta=cold or None, filecoin_delta=filecoin or None, at_ms=at_ms)
    hold = hold_change(before, after)
    if hold is not None:
        # The request's hold of its CID starts or ends (chalicelib.usage.unique).
        item.cid, item.hold, item.size = hold
    return [item]
