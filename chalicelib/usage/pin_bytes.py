"""What a pin adds to its tenant's bytes pinned: its DAG's size once pinned.

The worker records the size in the pin's `info` (`dag_size`, from the node's
`dag/stat`) in the write that makes it pinned, so every write that moves a
pin into or out of `pinned` knows the bytes it adds or removes, without a
read (chalicelib.storage.usage_changes).
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.pins.pin import Pin

DAG_SIZE = "dag_size"


def pinned_bytes(status: str | None, info: Mapping[str, str]) -> int:
    """A pin's bytes in its tenant's usage: its DAG size while pinned, else 0."""
    if status != "pinned":
        return 0
    size = info.get(DAG_SIZE, "")
    return int(size) if size.isdigit() else 0


def bytes_change(before: Pin | None, after: Pin | None) -> int:
    """How a write from `before` to `after` (None: no pin) changes the tenant's bytes pinned."""
    was = 0 if before is None else pinned_bytes(before.status, before.info)
    now = 0 if after is None else pinned_bytes(after.status, after.info)
    return now - was
